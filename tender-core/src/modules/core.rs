//! The core module: guest memory size (`--mem`), and WALLTIME, PUTS, POLL
//! and HALT (§6.1-6.3, §6.6).

use std::rc::Rc;
use std::sync::Arc;

use hvt_abi::hypercall::{nr, Halt, Poll, Puts, Walltime, HALT_COOKIE_MAX};
use hvt_abi::layout::{MAX_MEM_SIZE, MEM_GRANULE};

use crate::devices::console::Console;
use crate::devices::poller::PollSet;
use crate::error::{Error, Result};
use crate::hypercall::{Action, Fault, Hypercalls};
use crate::manifest::Manifest;
use crate::module::{Module, SetupContext};
use crate::sandbox::Allowlist;

pub struct Core {
    console: Arc<Console>,
    /// The poll set, once set up (its descriptors go into the sandbox).
    poll: Option<Rc<dyn PollSet>>,
    /// `--mem`, in bytes; the lifecycle's default when not given.
    mem_size: Option<u64>,
}

impl Core {
    /// The core module, printing the guest's console to `console`.
    pub fn new(console: Arc<Console>) -> Core {
        Core {
            console,
            poll: None,
            mem_size: None,
        }
    }
}

impl Module for Core {
    fn name(&self) -> &'static str {
        "core"
    }

    fn usage(&self) -> &'static str {
        "  [ --mem=512 ] (guest memory in MB)\n  \
         [ --seccomp=on|log|off ] (the system-call filter: on (default); log refused calls \
         and go on, a diagnostic; off, for tests only)\n  \
         [ --user=UID[:GID] ] (run as this user once set up; root only)\n  \
         [ --chroot=DIR ] (change the root to DIR once set up; root only)\n"
    }

    fn parse_option(&mut self, option: &str, _manifest: &mut Manifest) -> Result<bool> {
        let Some(value) = option.strip_prefix("--mem=") else {
            return Ok(false);
        };
        let (size, warning) = parse_mem(value)?;
        if let Some(warning) = warning {
            eprintln!("tender: {warning}");
        }
        self.mem_size = Some(size);
        Ok(true)
    }

    fn guest_memory(&self) -> Option<u64> {
        self.mem_size
    }

    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()> {
        self.poll = Some(ctx.poll.clone());
        register(ctx.hypercalls, self.console.clone(), ctx.poll.clone())
    }

    fn vcpu_rules(&self, vcpu: &mut Allowlist) {
        // PUTS writes the console; POLL waits in the poll set; the halt
        // joins threads and Rust's locks may wait (futex).
        if let Some(fd) = self.console.fd() {
            vcpu.allow_fds(libc::SYS_write, &[fd]);
        }
        if let Some(poll) = &self.poll {
            poll.vcpu_rules(vcpu);
        }
        vcpu.allow(libc::SYS_futex);
        // WALLTIME reads CLOCK_REALTIME through the vDSO, which falls back to
        // the system call on hosts whose clock source it cannot read.
        vcpu.allow_values(
            libc::SYS_clock_gettime,
            &[
                u64::from(libc::CLOCK_REALTIME.unsigned_abs()),
                u64::from(libc::CLOCK_MONOTONIC.unsigned_abs()),
            ],
        );
    }
}

/// A `--mem=` value, sized as upstream does (§3.1). Returns the size in
/// bytes and, when it was adjusted, the warning to print.
pub fn parse_mem(value: &str) -> Result<(u64, Option<String>)> {
    let mib: i64 = value
        .parse()
        .ok()
        .filter(|&n| n != 0)
        .ok_or_else(|| Error::Argument("Malformed argument to --mem".into()))?;
    // Upstream shifts a signed size: a negative value wraps to a huge size
    // and fails the maximum check, as does one whose shift overflows.
    let requested = (mib as u64).saturating_mul(1 << 20);
    let mut size = requested & !(MEM_GRANULE - 1);
    if size == 0 {
        size = MEM_GRANULE;
    }
    if size > MAX_MEM_SIZE {
        // Upstream reports the size after rounding down to 2 MiB.
        return Err(Error::Argument(format!(
            "guest memory size {size} bytes exceeds the max size {MAX_MEM_SIZE} bytes"
        )));
    }
    let warning = (size != requested).then(|| format!("adjusting memory to {size} bytes"));
    Ok((size, warning))
}

fn now_realtime_ns() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    // u64 nanoseconds last until the year 2554.
    now.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Registers the core hypercalls over `console` and `poll`.
fn register(
    hypercalls: &mut Hypercalls,
    console: Arc<Console>,
    poll: Rc<dyn PollSet>,
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
            console.write(bytes).map_err(|e| {
                Fault::Fatal(Error::Device(format!(
                    "Fatal error writing the guest console: {e}"
                )))
            })?;
            Ok(Action::Continue)
        }),
    )?;
    hypercalls.register(
        nr::POLL,
        Box::new(move |ram, gpa| {
            let mut arg: Poll = ram.read_arg(gpa)?;
            let (ready_set, ready) = poll.wait(arg.timeout_nsecs).map_err(Fault::Fatal)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_sized_like_upstream() {
        assert_eq!(parse_mem("512").unwrap(), (512 << 20, None));
        assert_eq!(
            parse_mem("3").unwrap(),
            (2 << 20, Some("adjusting memory to 2097152 bytes".into()))
        );
        assert_eq!(parse_mem("1").unwrap().0, 2 << 20);
        assert_eq!(parse_mem("4097").unwrap().0, 4 << 30);
        for bad in ["0", "x", "", "12x"] {
            assert_eq!(
                parse_mem(bad).unwrap_err().to_string(),
                "Malformed argument to --mem"
            );
        }
        assert!(parse_mem("4098")
            .unwrap_err()
            .to_string()
            .contains("exceeds the max size 4294967296 bytes"));
        assert!(parse_mem("-1")
            .unwrap_err()
            .to_string()
            .contains("exceeds the max size"));
        assert!(parse_mem("99999999999999999")
            .unwrap_err()
            .to_string()
            .contains("exceeds the max size"));
    }
}
