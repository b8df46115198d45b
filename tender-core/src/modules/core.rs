//! The core module: guest memory size (`--mem`), and WALLTIME, PUTS, POLL
//! and HALT (§6.1-6.3, §6.6).

use std::rc::Rc;
use std::sync::Arc;

use hvt_abi::hypercall::{nr, Poll, Puts, Walltime};

use crate::devices::console::Console;
use crate::devices::poller::PollSet;
use crate::error::{os_error_text, Error, Result};
use crate::halt;
use crate::hypercall::{Action, Fault, Hypercalls};
use crate::manifest::Manifest;
use crate::module::{Module, SetupContext};
use crate::sandbox::Allowlist;

pub struct Core {
    console: Arc<Console>,
    /// The poll set, once set up (its descriptors go into the sandbox).
    poll: Option<Rc<dyn PollSet>>,
    /// The last `--mem`, in bytes as requested; the lifecycle's default
    /// when not given. The lifecycle sizes it (`size_guest_memory`).
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
        "  [ --mem=512 ] (guest memory in MB)\n    \
         --help (display this help)\n    \
         --version (display version information)\n  \
         [ --seccomp=on|log|off ] (the system-call filter: on (default); log refused calls \
         and go on, a diagnostic; off, for tests only)\n  \
         [ --user=UID[:GID] ] (run as this user once set up; root only)\n  \
         [ --chroot=DIR ] (change the root to DIR once set up; root only)\n"
    }

    fn parse_option(&mut self, option: &str, _manifest: &mut Manifest) -> Result<bool> {
        let Some(value) = option.strip_prefix("--mem=") else {
            return Ok(false);
        };
        // As upstream, the last one counts, and only a malformed value is
        // refused here: the size is checked once every option is read.
        self.mem_size = Some(parse_mem(value)?);
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

/// A `--mem=` value in bytes, read as upstream reads it: the number at
/// its start as C's `sscanf("%zd")` takes it ([`super::scan::signed`]), in
/// MiB, shifted into bytes in 64 bits (a negative number wraps to a huge
/// size, refused later as too large). No number, or a size that is 0 once
/// shifted, is malformed.
pub fn parse_mem(value: &str) -> Result<u64> {
    super::scan::signed(value)
        .map(|mib| u64::from_ne_bytes(mib.to_ne_bytes()).wrapping_shl(20))
        .filter(|&size| size != 0)
        .ok_or_else(|| Error::Argument("Malformed argument to --mem".into()))
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
                    "Fatal error writing the guest console: {}",
                    os_error_text(&e)
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
            let arg = halt::read(ram, gpa)?;
            halt::cookie(ram, &arg)?;
            Ok(Action::Exit(halt::exit_code(&arg)))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_values_are_read_like_upstream() {
        assert_eq!(parse_mem("512").unwrap(), 512 << 20);
        assert_eq!(parse_mem("12x").unwrap(), 12 << 20);
        assert_eq!(parse_mem(" 4").unwrap(), 4 << 20);
        assert_eq!(parse_mem("4098").unwrap(), 4098 << 20);
        // Negative and huge values wrap or clamp, for the size check to refuse.
        assert_eq!(parse_mem("-1").unwrap(), u64::MAX << 20);
        assert_eq!(
            parse_mem("99999999999999999999").unwrap(),
            u64::MAX >> 1 << 20
        );
        // 2^44 MiB is 2^64 bytes: 0 once shifted, as are 0 and no number.
        for bad in ["0", "x", "", "-", "17592186044416", "-17592186044416", "-0"] {
            assert_eq!(
                parse_mem(bad).unwrap_err().to_string(),
                "Malformed argument to --mem",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_last_mem_option_counts() {
        let mut core = Core::new(Arc::new(Console::captured()));
        let mut manifest = Manifest {
            entries: vec![hvt_abi::manifest::MftEntry::RESERVED_FIRST],
        };
        assert!(core.parse_option("--mem=9999", &mut manifest).unwrap());
        assert!(core.parse_option("--mem=64", &mut manifest).unwrap());
        assert_eq!(core.guest_memory(), Some(64 << 20));
        assert!(!core.parse_option("--memory=1", &mut manifest).unwrap());
    }
}
