#!/usr/bin/env bash
# Builds every guest for x86_64-unknown-none (a cargo call of its own, with
# its own target directory) and copies each image to target/guests/NAME.hvt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/target/guest/x86_64-unknown-none/release"
"$root/scripts/setup-toolchain.sh"
(cd "$root/guest" && cargo build --release --target-dir "$root/target/guest")
mkdir -p "$root/target/guests"
for image in "$out"/*; do
    [ -f "$image" ] && [ -x "$image" ] || continue
    cp "$image" "$root/target/guests/$(basename "$image").hvt"
done
