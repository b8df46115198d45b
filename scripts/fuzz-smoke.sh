#!/usr/bin/env bash
# Fuzz smoke test: builds the cargo-fuzz targets of fuzz/ (libFuzzer,
# AddressSanitizer, debug assertions) and runs each for a short, fixed time
# from its seed corpus. Exits non-zero if any target crashes, panics, leaks
# or hangs; the input that did it is in fuzz/artifacts/TARGET/ (see
# docs/fuzzing.md to reproduce it and to fuzz for longer).
#
#   scripts/fuzz-smoke.sh                 # every target, 20 s each
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh ring
#
# Installs what it lacks, quietly: a nightly toolchain (minimal profile) and
# cargo-fuzz from crates.io. Without a nightly it uses the stable toolchain
# with RUSTC_BOOTSTRAP=1 (stable ships the sanitizer runtimes too).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-20}
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=(elf cli hypercall ring)
fi
# The fuzz workspace builds apart from the main one (other flags, other
# profile): its own directory under the main target directory.
target_dir="${CARGO_TARGET_DIR:-$root/target}/fuzz"
unset CARGO_TARGET_DIR

if rustup run nightly rustc --version >/dev/null 2>&1 ||
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    toolchain=nightly
else
    echo "fuzz-smoke: no nightly toolchain; stable with RUSTC_BOOTSTRAP=1" >&2
    toolchain=stable
    export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --quiet --locked cargo-fuzz --version '^0.13'
fi

# Release with debug assertions and overflow checks: an arithmetic
# overflow on hostile input is a finding too.
build=(--release --debug-assertions --target-dir "$target_dir")
echo "fuzz-smoke: building ${targets[*]} ($toolchain)"
mkdir -p "$target_dir"
cargo "+$toolchain" fuzz build "${build[@]}" >"$target_dir/build.log" 2>&1 || {
    tail -n 40 "$target_dir/build.log" >&2
    exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
    # New inputs go to a scratch corpus (the first directory), never into
    # the committed seeds.
    mkdir -p "$work/$target"
    log="$work/$target.log"
    if cargo "+$toolchain" fuzz run "${build[@]}" "$target" \
        "$work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
        >"$log" 2>&1; then
        runs=$(grep -m1 -o '^stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
        echo "fuzz-smoke: $target: ok, $runs runs in ${seconds}s, $cov"
    else
        echo "fuzz-smoke: $target: FAILED" >&2
        grep -v -E '^tender: adjusting memory' "$log" | tail -n 60 >&2
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz-smoke: failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
