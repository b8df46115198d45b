//! Guests that break the rules (§5, §6.6, §8, §12): each ends with the
//! documented message and exit code, and the tender is never the one that
//! crashes.

mod common;

use common::{cpl0_copy, guest, tender, Run};
use hvt_abi::hypercall::{exit, name, nr, Walltime, HALT_COOKIE_MAX, PIO_BASE, RING_KICK_PIO_BASE};

/// Guest memory of every run here, as `--mem=64` sets it.
const MEM: u64 = 64 << 20;

/// The tender's message for a refused access to `port`.
fn port_refused(port: u16) -> String {
    format!("Invalid guest port access: port={port:#x}")
}

/// The tender's message for a guest range it refused.
fn access_refused(gpa: u64, size: impl std::fmt::Display) -> String {
    format!("Invalid guest access: gpa={gpa:#x}, sz={size}")
}

fn hostile(image: &std::path::Path, action: &str) -> Run {
    let mut argv = vec![
        format!("--mem={}", MEM >> 20).into(),
        image.as_os_str().to_owned(),
    ];
    argv.extend(action.split(' ').map(Into::into));
    let run = tender(argv);
    assert!(
        !run.stderr.contains("panicked"),
        "tender panicked: {}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("survived"),
        "guest was not stopped: {}",
        run.stdout
    );
    run
}

/// Stopped by the tender with exit 1 and `message` on stderr, at both
/// privilege levels.
fn assert_tender_stops(action: &str, message: &str) {
    for image in [guest("hostile"), cpl0_copy("hostile")] {
        let run = hostile(&image, action);
        assert_eq!(run.code, 1, "{action}: {}", run.output());
        assert!(
            run.stderr.contains(message),
            "{action}: expected '{message}' in {}",
            run.stderr
        );
    }
}

#[test]
fn port_below_the_hypercall_range() {
    assert_tender_stops("port-low", &port_refused(PIO_BASE - 1));
}

#[test]
fn hypercall_number_9_is_past_the_range() {
    assert_tender_stops("hc9", &port_refused(PIO_BASE + nr::MAX));
}

#[test]
fn ring_doorbell_without_a_ring() {
    assert_tender_stops("port-ring", &port_refused(RING_KICK_PIO_BASE));
}

#[test]
fn hypercall_number_0_is_invalid() {
    assert_tender_stops("hc0", "Invalid guest hypercall: num=0");
}

#[test]
fn in_instead_of_out() {
    assert_tender_stops("in", &port_refused(PIO_BASE + nr::WALLTIME));
}

#[test]
fn eight_and_sixteen_bit_outs() {
    assert_tender_stops("out8", &port_refused(PIO_BASE + nr::WALLTIME));
    assert_tender_stops("out16", &port_refused(PIO_BASE + nr::WALLTIME));
}

#[test]
fn argument_past_the_end_of_memory() {
    // WALLTIME's argument one page past the end of memory.
    let size = size_of::<Walltime>();
    assert_tender_stops("gpa-oob", &access_refused(MEM + 0x1000, size));
}

#[test]
fn argument_ending_exactly_at_the_top_of_memory() {
    let size = size_of::<Walltime>();
    assert_tender_stops("gpa-top", &access_refused(MEM - size as u64, size));
}

#[test]
fn results_written_into_guest_code_are_refused_not_a_crash() {
    // The tender's own mapping of guest code is read-only (§2): writing a
    // WALLTIME result there must be an invalid access, never a SIGSEGV.
    assert_tender_stops(
        "gpa-text",
        &format!(
            "hypercall {}: Invalid guest access: gpa=0x10",
            name(nr::WALLTIME)
        ),
    );
}

#[test]
fn puts_with_a_huge_length() {
    let puts = name(nr::PUTS);
    assert_tender_stops(
        "puts-huge",
        &format!("hypercall {puts}: Invalid guest access: gpa=0x100000"),
    );
    // The guest names 32 bytes from 16 below the top.
    assert_tender_stops(
        "puts-past-top",
        &format!("hypercall {puts}: {}", access_refused(MEM - 16, 32)),
    );
}

#[test]
fn halt_with_a_cookie_near_the_top() {
    // The guest's cookie lies 100 bytes below the top.
    assert_tender_stops(
        "halt-cookie",
        &format!(
            "hypercall {}: {}",
            name(nr::HALT),
            access_refused(MEM - 100, HALT_COOKIE_MAX)
        ),
    );
}

#[test]
fn write_to_guest_code_is_a_translation_fault() {
    assert_tender_stops("write-text", "KVM: host/guest translation fault: rip=0x");
}

#[test]
fn hlt_at_cpl0_is_an_unhandled_exit() {
    let run = hostile(&cpl0_copy("hostile"), "hlt");
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr
            .contains("KVM: unhandled exit: exit_reason=0x5, rip=0x"),
        "{}",
        run.stderr
    );
}

#[test]
fn triple_fault_at_cpl0_is_an_unhandled_exit() {
    let run = hostile(&cpl0_copy("hostile"), "triple");
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr
            .contains("KVM: unhandled exit: exit_reason=0x8, rip=0x"),
        "{}",
        run.stderr
    );
}

/// At CPL 3 both `hlt` (privileged: #GP) and `ud2` fault with no IDT: a
/// triple fault reported with the registers, exit 255 (§12).
#[test]
fn faults_at_cpl3_report_registers_and_exit_255() {
    for action in ["hlt", "triple"] {
        let run = hostile(&guest("hostile"), action);
        assert_eq!(run.code, exit::ABORT, "{action}: {}", run.output());
        assert!(
            run.stderr
                .contains("Guest fault (triple fault at CPL 3): rip=0x"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(" rsp=0x"), "{}", run.stderr);
    }
}

#[test]
fn exit_status_is_its_low_byte() {
    for (status, code) in [
        ("0", 0),
        ("42", 42),
        ("255", 255),
        ("256", 0),
        ("300", 44),
        ("-1", 255),
    ] {
        let run = hostile(&guest("hostile"), &format!("exit {status}"));
        assert_eq!(run.code, code, "exit {status}: {}", run.output());
        assert!(
            run.stdout
                .contains(&format!("Solo5: solo5_exit({status}) called")),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn abort_and_panic_exit_255() {
    let run = hostile(&guest("hostile"), "abort");
    assert_eq!(run.code, exit::ABORT, "{}", run.output());
    assert!(
        run.stdout.contains("Solo5: solo5_abort() called"),
        "{}",
        run.stdout
    );
    let run = hostile(&guest("hostile"), "panic");
    assert_eq!(run.code, exit::ABORT, "{}", run.output());
    assert!(
        run.stdout.contains("Solo5: ABORT: panicked at"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("hostile guest panics on request"),
        "{}",
        run.stdout
    );
}
