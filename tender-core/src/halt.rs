//! The HALT hypercall's argument (§6.6) as the tender reads it from guest
//! memory: the exit status, and the cookie with the trap frame at its
//! start. The core's handler (which ends the guest), `--trace` (which
//! prints the call) and `--dumpcore` (which takes the frame's registers)
//! all read it here, through the checks of §5.

use hvt_abi::hypercall::{Halt, TrapFrame, HALT_COOKIE_MAX};

use crate::memory::{GuestRam, InvalidAccess};

/// The HALT struct at `gpa`, as the guest wrote it.
pub fn read(ram: &GuestRam, gpa: u64) -> Result<Halt, InvalidAccess> {
    ram.read_arg(gpa)
}

/// The process exit code: the status's low byte, as upstream's.
pub fn exit_code(halt: &Halt) -> i32 {
    halt.exit_status & 0xFF
}

/// The cookie's address, once its `HALT_COOKIE_MAX` bytes are known to be
/// readable (upstream refuses a HALT whose cookie is not); `None` when the
/// guest gave none (0).
pub fn cookie(ram: &GuestRam, halt: &Halt) -> Result<Option<u64>, InvalidAccess> {
    if halt.cookie == 0 {
        return Ok(None);
    }
    ram.check(halt.cookie, HALT_COOKIE_MAX)?;
    Ok(Some(halt.cookie))
}

/// The trap frame at the start of the cookie (what the bindings' trap
/// handler saw, for a core dump), if the guest gave a cookie.
pub fn trap_frame(ram: &GuestRam, halt: &Halt) -> Result<Option<TrapFrame>, InvalidAccess> {
    cookie(ram, halt)?.map(|gpa| ram.read_arg(gpa)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARG: u64 = 0x10000;
    const COOKIE: u64 = 0x20000;

    fn ram_with(halt: Halt) -> GuestRam {
        let ram = GuestRam::new(2 << 20).unwrap();
        ram.write_arg(ARG, &halt).unwrap();
        ram
    }

    #[test]
    fn the_exit_code_is_the_low_byte_of_the_status() {
        let halt = |exit_status| Halt {
            exit_status,
            ..Halt::default()
        };
        assert_eq!(exit_code(&halt(42)), 42);
        assert_eq!(exit_code(&halt(300)), 44);
        assert_eq!(exit_code(&halt(-1)), 255);
    }

    #[test]
    fn a_cookie_gives_the_frame_at_its_start() {
        let frame = TrapFrame {
            rip: 0x10_1234,
            cs: 0x08,
            ..TrapFrame::default()
        };
        let ram = ram_with(Halt {
            cookie: COOKIE,
            exit_status: 255,
            _pad: 0,
        });
        ram.write_arg(COOKIE, &frame).unwrap();
        let halt = read(&ram, ARG).unwrap();
        assert_eq!((halt.cookie, halt.exit_status), (COOKIE, 255));
        assert_eq!(trap_frame(&ram, &halt), Ok(Some(frame)));

        let none = ram_with(Halt::default());
        let halt = read(&none, ARG).unwrap();
        assert_eq!(cookie(&none, &halt), Ok(None));
        assert_eq!(trap_frame(&none, &halt), Ok(None));
    }

    #[test]
    fn the_struct_and_the_whole_cookie_are_bounds_checked() {
        let top = 2 << 20;
        let ram = GuestRam::new(top).unwrap();
        assert_eq!(
            read(&ram, top - 8).unwrap_err(),
            InvalidAccess {
                gpa: top - 8,
                len: 16
            }
        );
        // The frame would fit, but the cookie's 512 bytes do not.
        let late = top - HALT_COOKIE_MAX + 8;
        let halt = Halt {
            cookie: late,
            ..Halt::default()
        };
        let refused = InvalidAccess {
            gpa: late,
            len: HALT_COOKIE_MAX,
        };
        assert_eq!(cookie(&ram, &halt), Err(refused));
        assert_eq!(trap_frame(&ram, &halt), Err(refused));
    }
}
