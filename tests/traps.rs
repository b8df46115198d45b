//! The CPL 3 trap path's resume (`tender::vstate::trap`, §12.4 of
//! `docs/abi.md`), as a debugger uses it: a handler that lets `int3`
//! continue, single-steps with RFLAGS.TF set in the frame, and skips a
//! `ud2` by moving RIP. (The fault report itself: tests/hostile.rs.)

mod common;

use tender::vstate::trap::{Resume, Trap, TrapAction, TrapHandler};
use tender::vstate::vcpu::KvmVcpu;
use tender_core::error::Result;
use tender_core::memory::GuestRam;
use tender_core::modules::{self, Host};

/// Records every trap; resumes #BP (stepping `steps` instructions after
/// the first), #DB, and #UD past its two bytes.
struct Debugger {
    steps: usize,
    seen: Vec<(u8, u64)>,
}

impl TrapHandler for Debugger {
    fn trap(&mut self, trap: &Trap, _: &mut KvmVcpu, _: &GuestRam) -> Result<TrapAction> {
        self.seen.push((trap.vector, trap.frame.rip));
        assert_eq!((trap.frame.cs, trap.frame.ss), (0x0B, 0x13), "{trap:?}");
        assert_eq!(trap.registers().rip, trap.frame.rip);
        let stepped = self.seen.iter().filter(|(v, _)| *v == 1).count();
        let resume = match trap.vector {
            3 if stepped == 0 => Resume {
                single_step: Some(true),
                ..Resume::default()
            },
            3 => Resume::default(),
            1 if stepped < self.steps => Resume::default(),
            1 => Resume {
                single_step: Some(false),
                ..Resume::default()
            },
            6 => Resume {
                rip: Some(trap.frame.rip + 2),
                ..Resume::default()
            },
            _ => return Ok(TrapAction::Stop),
        };
        Ok(TrapAction::Resume(resume))
    }
}

#[test]
fn a_handler_continues_steps_and_skips_through_the_trap_path() {
    let image = common::guest("hostile");
    let mut debugger = Debugger {
        steps: 5,
        seen: Vec::new(),
    };
    let args = [
        "--seccomp=off",
        image.to_str().unwrap(),
        "int3",
        "int3",
        "ud2",
    ];
    let code = tender::main_with_traps(&args, modules::all(Host::system()), &mut debugger);
    let seen = debugger.seen;
    let count = |vector| seen.iter().filter(|(v, _)| *v == vector).count();
    assert_eq!(code, 0, "{seen:x?}");
    assert_eq!((count(3), count(1), count(6)), (2, 5, 1), "{seen:x?}");
    // Each step stops somewhere else, the first after the breakpoint.
    let steps: Vec<u64> = seen.iter().filter(|(v, _)| *v == 1).map(|s| s.1).collect();
    assert_ne!(steps[0], seen[0].1, "{seen:x?}");
    assert!(steps.windows(2).all(|w| w[0] != w[1]), "{seen:x?}");
}
