#!/usr/bin/env bash
# Installs what rust-toolchain.toml asks for and rustup does not install by
# itself when its auto-install is off (as on a fresh machine): the guest
# target x86_64-unknown-none and the rustfmt and clippy components. Safe to
# run again: silent, and without network access, when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."
# The toolchain cargo uses here: rust-toolchain.toml's, unless overridden.
if ! toolchain=$(rustup show active-toolchain 2>/dev/null); then
    # Not even the toolchain is there: install it as the file describes.
    rustup toolchain install
    toolchain=$(rustup show active-toolchain)
fi
toolchain=${toolchain%% *}
targets=$(rustup target list --installed --toolchain "$toolchain")
grep -qx x86_64-unknown-none <<<"$targets" ||
    rustup target add --toolchain "$toolchain" x86_64-unknown-none
installed=$(rustup component list --installed --toolchain "$toolchain")
for component in rustfmt clippy; do
    grep -q "^$component-" <<<"$installed" ||
        rustup component add --toolchain "$toolchain" "$component"
done
