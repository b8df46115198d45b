#!/usr/bin/env bash
# Builds everything (tender and guests) and runs the hello guest under tender.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup-toolchain.sh
cargo build --release --workspace
scripts/build-guests.sh
echo "+ target/x86_64-unknown-linux-gnu/release/tender target/guests/hello.hvt Hello_Solo5"
target/x86_64-unknown-linux-gnu/release/tender target/guests/hello.hvt Hello_Solo5
