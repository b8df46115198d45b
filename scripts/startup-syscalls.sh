#!/usr/bin/env bash
# Lists the system calls the release tender makes, from strace -f:
#
#   start-up   before each thread installed its seccomp filter (the main
#              thread's first seccomp(SECCOMP_SET_MODE_FILTER, ...) and the
#              net-ring thread's own, which comes earlier: the thread starts
#              confined during set-up);
#   confined   after it, per thread (vcpu = the main thread, net-ring = the
#              ring's I/O thread), and their union;
#   all        everything the process made: what an outer allow-list (a
#              container runtime's) must let through.
#
# Four runs: `kv` with a tap (in a throwaway network namespace), a block
# image and the ring, serving a PUT and a GET over HTTP and then stopped
# with SIGTERM; `netprobe`, a net guest that halts by itself (the ring
# thread's way out); a plain `hello`; and `idle`, whose POLLs time out.
# Then the union over the runs. docs/security.md quotes the output.
#
# Needs root (network namespace, tap), /dev/kvm, strace, curl and ip. Builds
# the release tender (`cargo build --release -p tender`) and, if
# target/guests lacks one of the four, the guests (scripts/build-guests.sh).
# Idempotent; removes the namespace, the image and the traces on any exit.
#
#   scripts/startup-syscalls.sh            # the four runs and the union
#   KEEP_TRACES=DIR scripts/...            # also copy the raw traces to DIR
#   GUEST_DIR=DIR TENDER=BIN scripts/...   # other guest images / tender binary
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

for tool in strace curl ip; do
    command -v "$tool" >/dev/null || {
        echo "startup-syscalls: needs $tool (apt-get install $tool)" >&2
        exit 1
    }
done
[ "$(id -u)" -eq 0 ] || { echo "startup-syscalls: needs root (netns, tap)" >&2; exit 1; }

if [ -z "${TENDER:-}" ]; then
    cargo build --release -p tender >&2
    # .cargo/config.toml builds for an explicit target triple.
    TENDER="${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-gnu/release/tender"
fi
GUEST_DIR=${GUEST_DIR:-$root/target/guests}
guest() {
    for candidate in "$GUEST_DIR/$1.hvt" "$GUEST_DIR/$1"; do
        [ -f "$candidate" ] && { echo "$candidate"; return; }
    done
    echo "startup-syscalls: no guest $1 in $GUEST_DIR" >&2
    exit 1
}
for name in kv netprobe hello idle; do
    if [ ! -f "$GUEST_DIR/$name.hvt" ] && [ ! -f "$GUEST_DIR/$name" ]; then
        "$root/scripts/build-guests.sh" >&2
        break
    fi
done
kv=$(guest kv)
hello=$(guest hello)

# Unique names: two copies of this script may run at once.
ns="tender-sc-$$-$RANDOM"
work=$(mktemp -d /tmp/startup-syscalls.XXXXXX)
strace_pid=
cleanup() {
    if [ -n "$strace_pid" ] && kill -0 "$strace_pid" 2>/dev/null; then
        pkill -KILL -P "$strace_pid" 2>/dev/null || true
        kill -KILL "$strace_pid" 2>/dev/null || true
        wait "$strace_pid" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
    if [ -n "${KEEP_TRACES:-}" ]; then
        mkdir -p "$KEEP_TRACES"
        cp -r "$work"/. "$KEEP_TRACES"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The system call names in strace lines (one thread's file of strace -ff).
names() {
    sed -n -E 's/^([a-z_0-9]+)\(.*/\1/p' "$@" | sort -u
}

# Splits one thread's trace at its first successful
# seccomp(SECCOMP_SET_MODE_FILTER, ..., {len=...}) (a C library probing the
# kernel with a NULL program does not count): the call itself is start-up.
split_trace() { # FILE -> FILE.startup FILE.confined
    awk -v pre="$1.startup" -v post="$1.confined" '
        BEGIN { confined = 0 }
        { print > (confined ? post : pre) }
        /^seccomp\(SECCOMP_SET_MODE_FILTER.*len=.*\) += 0$/ { confined = 1 }
    ' "$1"
    touch "$1.startup" "$1.confined"
}

show() { # TITLE FILE...
    local title=$1
    shift
    local list
    list=$(cat "$@" 2>/dev/null | sort -u | tr '\n' ' ')
    printf '%-34s %3d: %s\n' "$title" "$(echo "$list" | wc -w)" "$list"
}

# Runs the tender under strace; $1 is a label, the rest the tender's
# arguments. With RUN_IN_NS set, inside the namespace; with SERVE set, the
# function SERVE runs once the guest printed READY, then the tender gets a
# SIGTERM.
traced_run() {
    local label=$1
    shift
    local dir="$work/$label"
    mkdir -p "$dir"
    local prefix=()
    [ -n "${RUN_IN_NS:-}" ] && prefix=(ip netns exec "$ns")
    "${prefix[@]}" strace -f -ff -qq -o "$dir/trace" -- "$TENDER" "$@" \
        >"$dir/stdout" 2>"$dir/stderr" &
    strace_pid=$!
    local pid=
    if [ -n "${SERVE:-}" ]; then
        local waited=0
        until grep -q "$READY" "$dir/stdout" 2>/dev/null; do
            sleep 0.2
            waited=$((waited + 1))
            if [ "$waited" -gt 300 ] || ! kill -0 "$strace_pid" 2>/dev/null; then
                echo "startup-syscalls: $label never printed '$READY'" >&2
                cat "$dir/stdout" "$dir/stderr" >&2
                exit 1
            fi
        done
        pid=$(pgrep -P "$strace_pid" -x tender | head -n 1)
        # Which thread is which, while they run.
        for task in /proc/"$pid"/task/*; do
            echo "$(basename "$task") $(cat "$task/comm")"
        done >"$dir/threads"
        "$SERVE"
        kill -TERM "$pid"
    fi
    local status=0
    wait "$strace_pid" || status=$?
    strace_pid=
    echo "$status" >"$dir/status"
    if grep -q 'seccomp' "$dir/stderr" || grep -qs -- '--- SIGSYS' "$dir"/trace.*; then
        echo "startup-syscalls: $label made a call its filter refuses:" >&2
        cat "$dir/stderr" >&2
        exit 1
    fi
    # The main thread's trace is the one that starts with the execve.
    [ -n "$pid" ] || pid=$(grep -l -m 1 '^execve(' "$dir"/trace.* | head -n 1 | sed 's/.*\.//')
    echo "$pid" >"$dir/pid"
}

report() { # LABEL
    local dir="$work/$1"
    local pid
    pid=$(cat "$dir/pid")
    local vcpu_startup=() vcpu_confined=() other_startup=() other_confined=()
    for trace in "$dir"/trace.*; do
        case "$trace" in *.startup | *.confined | *.names) continue ;; esac
        split_trace "$trace"
        names "$trace.startup" >"$trace.startup.names"
        names "$trace.confined" >"$trace.confined.names"
        if [ "${trace##*.}" = "$pid" ]; then
            vcpu_startup+=("$trace.startup.names")
            vcpu_confined+=("$trace.confined.names")
        else
            other_startup+=("$trace.startup.names")
            other_confined+=("$trace.confined.names")
        fi
    done
    echo "== $1: tender $(cat "$dir/args") (exit $(cat "$dir/status"))"
    if [ -f "$dir/threads" ]; then
        echo "   threads: $(tr '\n' ' ' <"$dir/threads")"
    fi
    show "start-up, main thread" "${vcpu_startup[@]}"
    if [ "${#other_startup[@]}" -gt 0 ]; then
        show "start-up, net-ring (own filter)" "${other_startup[@]}"
    fi
    show "start-up, all threads" "${vcpu_startup[@]}" "${other_startup[@]}"
    show "confined, vcpu (main thread)" "${vcpu_confined[@]}"
    if [ "${#other_confined[@]}" -gt 0 ]; then
        show "confined, net-ring" "${other_confined[@]}"
    fi
    show "confined, union" "${vcpu_confined[@]}" "${other_confined[@]}"
    show "everything (outer allow-list)" "${vcpu_startup[@]}" "${other_startup[@]}" \
        "${vcpu_confined[@]}" "${other_confined[@]}"
    # KVM ioctls once confined (request numbers as strace names them).
    local ioctls
    ioctls=$(cat "${vcpu_confined[@]/%.names/}" 2>/dev/null |
        sed -n -E 's/^ioctl\([0-9]+, ([A-Z_0-9]+|0x[0-9a-f]+).*/\1/p' | sort -u | tr '\n' ' ')
    echo "   vcpu ioctls once confined: $ioctls"
    echo
}

# --- kv: net (tap + ring) + block, one PUT and one GET, then SIGTERM ------
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" addr add 10.201.0.1/24 dev tap0
ip -n "$ns" link set tap0 up
image="$work/kv.img"
truncate -s 8M "$image"

serve_kv() {
    ip netns exec "$ns" curl -sS -m 10 -X PUT --data-binary 'hello, sandbox' \
        http://10.201.0.2/key >/dev/null
    local value
    value=$(ip netns exec "$ns" curl -sS -m 10 http://10.201.0.2/key)
    [ "$value" = "hello, sandbox" ] || {
        echo "startup-syscalls: kv answered '$value'" >&2
        exit 1
    }
}
kv_args=(--net:service=tap0 --block:storage="$image" "$kv" --ipv4=10.201.0.2/24)
mkdir -p "$work/kv"
echo "--net:service=tap0 --block:storage=IMAGE kv.hvt --ipv4=10.201.0.2/24; PUT + GET; SIGTERM" \
    >"$work/kv/args"
RUN_IN_NS=1 SERVE=serve_kv READY="kv: serving on" traced_run kv "${kv_args[@]}"
grep -q 'tender: Exiting on signal 15' "$work/kv/stderr" || {
    echo "startup-syscalls: kv did not stop on SIGTERM:" >&2
    cat "$work/kv/stderr" >&2
    exit 1
}

# --- netprobe: a net guest that halts by itself (the ring thread's exit) --
mkdir -p "$work/netprobe"
echo "--net:service0=tap0 netprobe.hvt; HALT" >"$work/netprobe/args"
RUN_IN_NS=1 traced_run netprobe --mem=64 --net:service0=tap0 "$(guest netprobe)"
[ "$(cat "$work/netprobe/status")" = 0 ] || {
    echo "startup-syscalls: netprobe failed:" >&2
    cat "$work/netprobe/stderr" >&2
    exit 1
}
ip netns del "$ns"

# --- hello: no device -----------------------------------------------------
mkdir -p "$work/hello"
echo "hello.hvt" >"$work/hello/args"
traced_run hello "$hello"
[ "$(cat "$work/hello/status")" = 0 ] || {
    echo "startup-syscalls: hello failed:" >&2
    cat "$work/hello/stderr" >&2
    exit 1
}

# --- idle: POLL timeouts (the timer's expiry is read) -------------------
mkdir -p "$work/idle"
echo "idle.hvt 50" >"$work/idle/args"
traced_run idle "$(guest idle)" 50
[ "$(cat "$work/idle/status")" = 0 ] || {
    echo "startup-syscalls: idle failed:" >&2
    cat "$work/idle/stderr" >&2
    exit 1
}

echo "# $("$TENDER" --version 2>&1 | head -n 1); Linux $(uname -r); $(ldd --version | head -n 1)"
echo
report kv
report netprobe
report hello
report idle
echo "== all runs"
show "start-up, all threads" "$work"/*/trace.*.startup.names
for run in kv netprobe hello idle; do
    pid=$(cat "$work/$run/pid")
    cat "$work/$run/trace.$pid.confined.names"
    for f in "$work/$run"/trace.*.confined.names; do
        [ "$f" = "$work/$run/trace.$pid.confined.names" ] || cat "$f" >>"$work/net-ring.names"
    done
done >"$work/vcpu.names"
touch "$work/net-ring.names"
show "confined, vcpu" "$work/vcpu.names"
show "confined, net-ring" "$work/net-ring.names"
show "confined, union" "$work/vcpu.names" "$work/net-ring.names"
show "everything (outer allow-list)" "$work"/*/trace.*.names
