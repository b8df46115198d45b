#!/usr/bin/env bash
# Checks the guest template (guest/template) as a new user gets it: copied
# to a fresh directory outside this repository, with its hvt-runtime path
# dependency pointed at this checkout. Then, in the copy:
#   cargo build / cargo build --release   the unikernel, run under tender
#   cargo test --target HOST              its tests against the mock tender
#   cargo run --target HOST -- ARGS       the application as a host process
# and the output and exit codes are compared. Needs /dev/kvm.
# TEMPLATE_TARGET_DIR: the copy's cargo target directory (default
# target/template here, so that repeated runs reuse the dependencies).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup-toolchain.sh

host=x86_64-unknown-linux-gnu
target_dir=${TEMPLATE_TARGET_DIR:-$root/target/template}
work=$(mktemp -d "${TMPDIR:-/tmp}/hvt-template.XXXXXX")
trap 'rm -rf "$work"' EXIT
app="$work/myapp"

fail() {
    echo "check-template: $*" >&2
    exit 1
}

# expect NAME CODE EXPECTED_STDOUT COMMAND...: runs COMMAND, checks its
# exit code and that its stdout is exactly EXPECTED_STDOUT.
expect() {
    local name=$1 code=$2 expected=$3
    shift 3
    local out rc=0
    out=$("$@" 2>"$work/stderr") || rc=$?
    if [ "$rc" != "$code" ] || [ "$out" != "$expected" ]; then
        {
            echo "check-template: $name: exit $rc (expected $code)"
            echo "--- stdout:"
            printf '%s\n' "$out"
            echo "--- expected:"
            printf '%s\n' "$expected"
            echo "--- stderr:"
            cat "$work/stderr"
        } >&2
        exit 1
    fi
    echo "check-template: $name: ok"
}

# The copy, as a user makes it: the template's files (not a build of it in
# place), the dependency on this checkout by absolute path.
mkdir "$app"
tar -C guest/template --exclude=./target --exclude=./Cargo.lock -cf - . | tar -C "$app" -xf -
sed -i "s|^hvt-runtime = { path = \"../runtime\" }|hvt-runtime = { path = \"$root/guest/runtime\" }|" \
    "$app/Cargo.toml"
grep -qF "hvt-runtime = { path = \"$root/guest/runtime\" }" "$app/Cargo.toml" ||
    fail "no hvt-runtime path dependency to rewrite in guest/template/Cargo.toml"
# The versions this repository is tested with (cargo drops what is unused).
cp Cargo.lock "$app/Cargo.lock"

# The bindings' version, in the "Solo5: Bindings version" line.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

# The tender, as the root workspace builds it.
cargo build -p tender
tender="${CARGO_TARGET_DIR:-$root/target}/$host/debug/tender"
[ -x "$tender" ] || fail "no tender at $tender"
[ -c /dev/kvm ] || fail "running the unikernel needs /dev/kvm"

cd "$app"
cargo fmt -- --check
for profile in dev release; do
    cargo build --profile "$profile" --target-dir "$target_dir"
done

# What the application prints for the command line ARGS (log lines off).
app_output() {
    printf '%s\n' "Hello from myapp! Command line: '$*'" \
        "a task slept 30 ms" "a task slept 10 ms"
}
for profile in debug release; do
    image="$target_dir/x86_64-unknown-none/$profile/myapp"
    expect "tender ($profile image)" 0 "$(app_output one  two)" \
        "$tender" "$image" --solo5:quiet one two
done
expect "tender, Err" 1 "$(app_output --fail)
Error: asked to fail" "$tender" "$image" --solo5:quiet --fail
expect "tender, log lines" 0 "Solo5: Bindings version v$version (tender, Rust, CPL 3)
$(app_output x)
Solo5: solo5_exit(0) called" "$tender" "$image" x

cargo test --target "$host" --target-dir "$target_dir"
cargo clippy --target "$host" --all-targets --target-dir "$target_dir" -- -D warnings

cargo build --target "$host" --target-dir "$target_dir"
run=(cargo run -q --target "$host" --target-dir "$target_dir" --)
expect "host process" 0 "$(app_output one two)" "${run[@]}" --solo5:quiet one two
expect "host process, Err" 1 "$(app_output --fail)
Error: asked to fail" "${run[@]}" --solo5:quiet --fail
expect "host process, log lines" 0 "Solo5: Bindings version v$version (tender, Rust, host process)
$(app_output x)
Solo5: solo5_exit(0) called" "${run[@]}" x
echo "check-template: the template builds, tests and runs from $app"
