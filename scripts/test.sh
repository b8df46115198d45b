#!/usr/bin/env bash
# Every check: formatting, lints, and all tests (unit tests, and integration
# tests that boot real guests under /dev/kvm).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup-toolchain.sh
cargo fmt --all -- --check
(cd guest && cargo fmt --all -- --check)
cargo clippy --workspace --all-targets -- -D warnings
(cd guest && cargo clippy --release --target-dir "$root/target/guest" -- -D warnings)
cargo test --workspace
# The network applications again: with hypercalls only (--no-net-ring), and
# with a busy loop on each core while each guest runs (tests/net_apps.rs).
NET_TESTS=no-ring cargo test -p tender --test net_apps
NET_TESTS=hog cargo test -p tender --test net_apps
# The debugger against the release tender (static, with LTO), as users
# install it: a libc function linked only weakly there once sent --gdb to
# address 0 while every debug-build test passed.
cargo test --release -p tender --test gdb
# Guest applications with host tests (against fake disks and the in-process
# mock tender): the host target, a target directory of their own.
(cd guest/kv && cargo clippy --target x86_64-unknown-linux-gnu --all-targets \
    --target-dir "$root/target/kv-host" -- -D warnings)
(cd guest/kv && cargo test --target x86_64-unknown-linux-gnu --target-dir "$root/target/kv-host")
# The guest template as a user gets it: copied out of the repository, built
# for the guest and run under tender, tested and run on the host.
scripts/check-template.sh
# Fuzzing smoke run: each fuzz target for a short fixed time from its seeds
# (installs nightly and cargo-fuzz if missing; docs/fuzzing.md runs longer).
scripts/fuzz-smoke.sh
