//! The core module: WALLTIME, PUTS, POLL and HALT (§6.1-6.3, §6.6).

use std::cell::RefCell;
use std::rc::Rc;

use hvt_abi::hypercall::{nr, Halt, Poll, Puts, Walltime, HALT_COOKIE_MAX};

use super::{Module, SetupContext};
use crate::devices::console::Console;
use crate::devices::poller::Waiter;
use crate::error::Result;
use crate::hypercall::{Action, Fault, Hypercalls};
use crate::manifest::Manifest;

#[derive(Default)]
pub struct Core;

impl Module for Core {
    fn name(&self) -> &'static str {
        "core"
    }

    fn usage(&self) -> &'static str {
        "  [ --mem=512 ] (guest memory in MB)\n  [ --no-net-ring ] (network devices use hypercalls only, no shared-memory ring)\n"
    }

    fn parse_option(&mut self, _option: &str, _manifest: &mut Manifest) -> Result<bool> {
        // --mem is taken before modules see the options.
        Ok(false)
    }

    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()> {
        register(
            ctx.hypercalls,
            Rc::new(RefCell::new(Console::Stdout)),
            ctx.poller.clone(),
        )
    }
}

fn now_realtime_ns() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Registers the core hypercalls over `console` and `poller`.
pub fn register(
    hypercalls: &mut Hypercalls,
    console: Rc<RefCell<Console>>,
    poller: Rc<dyn Waiter>,
) -> Result<()> {
    hypercalls.register(
        nr::WALLTIME,
        Box::new(|ram, gpa| {
            let mut arg: Walltime = ram.read_arg(gpa)?;
            arg.nsecs = now_realtime_ns();
            ram.write_arg(gpa, &arg)?;
            Ok(Action::Continue)
        }),
    )?;
    hypercalls.register(
        nr::PUTS,
        Box::new(move |ram, gpa| {
            let arg: Puts = ram.read_arg(gpa)?;
            let bytes = ram.slice(arg.data, arg.len)?;
            console
                .borrow_mut()
                .write(bytes)
                .map_err(|e| Fault::Fatal(format!("Fatal error writing the guest console: {e}")))?;
            Ok(Action::Continue)
        }),
    )?;
    hypercalls.register(
        nr::POLL,
        Box::new(move |ram, gpa| {
            let mut arg: Poll = ram.read_arg(gpa)?;
            let (ready_set, ready) = poller
                .wait(arg.timeout_nsecs)
                .map_err(|e| Fault::Fatal(e.to_string()))?;
            arg.ready_set = ready_set;
            arg.ret = ready;
            ram.write_arg(gpa, &arg)?;
            Ok(Action::Continue)
        }),
    )?;
    hypercalls.register(
        nr::HALT,
        Box::new(|ram, gpa| {
            let arg: Halt = ram.read_arg(gpa)?;
            if arg.cookie != 0 {
                ram.check(arg.cookie, HALT_COOKIE_MAX)?;
            }
            // The process exit code is the status's low byte (§6.6).
            Ok(Action::Exit(arg.exit_status & 0xFF))
        }),
    )
}
