//! The CPL 3 trap path's resume (`tender::vstate::trap`, §12.4 of
//! `docs/abi.md`), as a debugger uses it: a module whose trap hook lets
//! `int3` continue, single-steps with RFLAGS.TF set in the frame, and skips
//! a `ud2` by moving RIP. (The fault report itself: tests/hostile.rs.)

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use tender_core::error::Result;
use tender_core::memory::GuestRam;
use tender_core::module::Module;
use tender_core::modules::{self, Host};
use tender_core::vm::{TrapDecision, TrapResume, Vcpu};

/// Records every trap as (vector, RIP); resumes #BP (stepping `steps`
/// instructions after the first), #DB, and #UD past its two bytes.
struct Debugger {
    steps: usize,
    seen: Rc<RefCell<Vec<(u8, u64)>>>,
}

impl Module for Debugger {
    fn name(&self) -> &'static str {
        "debugger"
    }

    fn trap(
        &mut self,
        vector: u8,
        vcpu: &mut dyn Vcpu,
        _: &GuestRam,
    ) -> Result<Option<TrapDecision>> {
        let rip = vcpu.registers()?.rip;
        let special = vcpu.special_registers()?;
        // The guest's view, not the trampoline's.
        assert_eq!(
            (special.cs.selector, special.ss.selector),
            (0x0B, 0x13),
            "vector {vector} at {rip:#x}"
        );
        let mut seen = self.seen.borrow_mut();
        seen.push((vector, rip));
        let stepped = seen.iter().filter(|(v, _)| *v == 1).count();
        let resume = match vector {
            3 if stepped == 0 => TrapResume {
                single_step: Some(true),
                ..TrapResume::default()
            },
            3 => TrapResume::default(),
            1 if stepped < self.steps => TrapResume::default(),
            1 => TrapResume {
                single_step: Some(false),
                ..TrapResume::default()
            },
            6 => TrapResume {
                rip: Some(rip + 2),
                ..TrapResume::default()
            },
            _ => return Ok(Some(TrapDecision::End)),
        };
        Ok(Some(TrapDecision::Resume(resume)))
    }
}

#[test]
fn a_module_continues_steps_and_skips_through_the_trap_path() {
    let image = common::guest("hostile");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut list = modules::all(Host::system());
    list.push(Box::new(Debugger {
        steps: 5,
        seen: seen.clone(),
    }));
    let args = [
        "--seccomp=off",
        image.to_str().unwrap(),
        "int3",
        "int3",
        "ud2",
    ];
    let code = tender::main_with_modules(&args, list);
    let seen = seen.take();
    let count = |vector| seen.iter().filter(|(v, _)| *v == vector).count();
    assert_eq!(code, 0, "{seen:x?}");
    assert_eq!((count(3), count(1), count(6)), (2, 5, 1), "{seen:x?}");
    // Each step stops somewhere else, the first after the breakpoint.
    let steps: Vec<u64> = seen.iter().filter(|(v, _)| *v == 1).map(|s| s.1).collect();
    assert_ne!(steps[0], seen[0].1, "{seen:x?}");
    assert!(steps.windows(2).all(|w| w[0] != w[1]), "{seen:x?}");
}
