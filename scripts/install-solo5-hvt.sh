#!/usr/bin/env bash
# Installs tender under upstream's name, for the engines that exec
# `solo5-hvt` (urunc looks it up on $PATH; Albatross runs the copy in its
# data directory, /var/lib/albatross):
#
#   scripts/install-solo5-hvt.sh [DIR]      # default /usr/local/bin
#
# Puts DIR/tender and DIR/solo5-hvt, a symbolic link to it: run as
# solo5-hvt, tender speaks under that name (messages, usage), as upstream.
# TENDER=path/to/tender installs that binary instead of building one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/usr/local/bin}
if [ -z "${TENDER:-}" ]; then
    "$root/scripts/setup-toolchain.sh" >/dev/null
    cargo build --release --locked -p tender --manifest-path "$root/Cargo.toml"
    TENDER="$root/target/x86_64-unknown-linux-gnu/release/tender"
fi
[ -x "$TENDER" ] || { echo "install-solo5-hvt: no tender binary at $TENDER" >&2; exit 1; }
mkdir -p "$dir"
install -m 0755 "$TENDER" "$dir/tender"
ln -sfn tender "$dir/solo5-hvt"
echo "installed $dir/tender and $dir/solo5-hvt -> tender"
"$dir/solo5-hvt" --version
