//! Hypercall registration and dispatch (§5).
//!
//! Modules register one handler per hypercall number, as Solo5's modules do.
//! The dispatcher knows nothing about KVM: the vCPU loop hands it the port
//! access, and the mock tender of the guest runtime's tests calls it the
//! same way, so both run exactly this code.
//!
//! An optional [`Observer`] (`--trace`) sees each call with its argument
//! address, its result and the time it took; without one, dispatch pays
//! one branch for it.

use std::time::{Duration, Instant};

use hvt_abi::hypercall::{arg_shape, name, nr, PIO_BASE};

use crate::error::{Error, Result as TenderResult};
use crate::memory::{GuestRam, InvalidAccess};
use crate::vm::{ExitAction, VmExit};

/// What the vCPU loop does after a hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Resume the guest.
    Continue,
    /// The guest halted; the process exits with this code (§6.6).
    Exit(i32),
}

/// A hypercall that cannot complete: the tender stops with exit 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A guest address failed the check of §5.
    Access(InvalidAccess),
    /// A fatal host error (I/O failure) or a protocol violation: the
    /// error the tender stops with.
    Fatal(Error),
}

impl From<InvalidAccess> for Fault {
    fn from(access: InvalidAccess) -> Self {
        Fault::Access(access)
    }
}

pub type HypercallResult = Result<Action, Fault>;

/// A handler receives guest memory and the argument GPA from EAX.
pub type Handler = Box<dyn FnMut(&GuestRam, u64) -> HypercallResult>;

/// Watches what the vCPU loop serves, for a trace: every hypercall that
/// reached a valid port, and every other VM exit the loop hands to the
/// modules. It only reads guest memory (through the checked accessors).
pub trait Observer {
    /// Before hypercall `number` is served (the guest's arguments are
    /// still as it wrote them).
    fn before(&mut self, ram: &GuestRam, number: u16, gpa: u64);
    /// After it was served, with its outcome and the time it took.
    fn after(
        &mut self,
        ram: &GuestRam,
        number: u16,
        gpa: u64,
        result: &Result<Action, Error>,
        elapsed: Duration,
    );
    /// A VM exit other than a hypercall, and what the modules made of it
    /// (`Ok(None)`: none took it, the guest ends).
    fn vm_exit(
        &mut self,
        exit: &VmExit,
        served: &TenderResult<Option<ExitAction>>,
        elapsed: Duration,
    );
}

/// The table of registered hypercalls.
pub struct Hypercalls {
    handlers: Vec<Option<Handler>>,
    observer: Option<Box<dyn Observer>>,
}

impl Default for Hypercalls {
    fn default() -> Self {
        Hypercalls {
            handlers: (0..nr::MAX).map(|_| None).collect(),
            observer: None,
        }
    }
}

impl Hypercalls {
    /// Registers `handler` for `number`; a number can be taken only once.
    pub fn register(&mut self, number: u16, handler: Handler) -> Result<(), Error> {
        match self.handlers.get_mut(usize::from(number)) {
            Some(slot @ None) if number != 0 => {
                *slot = Some(handler);
                Ok(())
            }
            Some(Some(_)) => Err(Error::Other(format!(
                "hypercall {} registered twice",
                name(number)
            ))),
            _ => Err(Error::Other(format!(
                "hypercall {number} is not a valid number"
            ))),
        }
    }

    /// Installs the one observer of this table (`--trace`); a second
    /// replaces the first.
    pub fn set_observer(&mut self, observer: Box<dyn Observer>) {
        self.observer = Some(observer);
    }

    /// The observer, if one watches: the vCPU loop reports the other VM
    /// exits to it.
    pub fn observer(&mut self) -> Option<&mut (dyn Observer + 'static)> {
        self.observer.as_deref_mut()
    }

    /// Serves one port access from the guest. Only 32-bit OUTs to the
    /// hypercall ports are legal; everything else ends the guest.
    pub fn dispatch_pio(
        &mut self,
        ram: &GuestRam,
        port: u16,
        is_out: bool,
        size: usize,
        value: u32,
    ) -> Result<Action, Error> {
        let number = port.wrapping_sub(PIO_BASE);
        if !is_out || size != 4 || port < PIO_BASE || number >= nr::MAX {
            return Err(Error::invalid_port(port));
        }
        let gpa = u64::from(value);
        let Some(observer) = self.observer.as_deref_mut() else {
            return serve(&mut self.handlers, ram, number, gpa);
        };
        observer.before(ram, number, gpa);
        let start = Instant::now();
        let result = serve(&mut self.handlers, ram, number, gpa);
        let elapsed = start.elapsed();
        observer.after(ram, number, gpa, &result, elapsed);
        result
    }
}

/// Runs the handler of hypercall `number` (a valid port's) on `gpa`.
fn serve(
    handlers: &mut [Option<Handler>],
    ram: &GuestRam,
    number: u16,
    gpa: u64,
) -> Result<Action, Error> {
    let handler = handlers[usize::from(number)]
        .as_mut()
        .ok_or_else(|| Error::Guest(format!("Invalid guest hypercall: num={number}")))?;
    // A call whose results cannot be written back is refused before it
    // does anything: no device acts, no time passes, for a guest whose
    // struct lies in memory the tender may not write.
    if let Some(shape) = arg_shape(number).filter(|shape| shape.has_results) {
        ram.check_access(gpa, shape.size as u64, true)
            .map_err(|access| Error::GuestAccess {
                by: format!("hypercall {}", name(number)),
                access,
            })?;
    }
    handler(ram, gpa).map_err(|fault| match fault {
        Fault::Access(access) => Error::GuestAccess {
            by: format!("hypercall {}", name(number)),
            access,
        },
        Fault::Fatal(error) => error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_with_walltime() -> Hypercalls {
        let mut table = Hypercalls::default();
        table
            .register(
                nr::WALLTIME,
                Box::new(|ram, gpa| {
                    ram.write_arg(gpa, &42u64)?;
                    Ok(Action::Continue)
                }),
            )
            .unwrap();
        table
    }

    #[test]
    fn rejects_bad_ports_directions_and_sizes() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let mut table = table_with_walltime();
        for (port, out, size) in [
            (0x4ff, true, 4),
            (0x509, true, 4),
            (0x600, true, 4),
            (0x501, false, 4),
            (0x501, true, 1),
            (0x501, true, 2),
        ] {
            let err = table
                .dispatch_pio(&ram, port, out, size, 0x10000)
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("Invalid guest port access: port=0x{port:x}")
            );
        }
    }

    #[test]
    fn unregistered_numbers_are_invalid_hypercalls() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let mut table = table_with_walltime();
        for number in [0u16, 4, 8] {
            let err = table
                .dispatch_pio(&ram, 0x500 + number, true, 4, 0x10000)
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("Invalid guest hypercall: num={number}")
            );
        }
        assert!(table
            .register(0, Box::new(|_, _| Ok(Action::Continue)))
            .is_err());
        assert!(table
            .register(nr::WALLTIME, Box::new(|_, _| Ok(Action::Continue)))
            .is_err());
    }

    #[test]
    fn argument_addresses_are_checked() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let mut table = table_with_walltime();
        assert_eq!(
            table.dispatch_pio(&ram, 0x501, true, 4, 0x10000),
            Ok(Action::Continue)
        );
        assert_eq!(ram.read_arg::<u64>(0x10000).unwrap(), 42);
        let top = (2u32 << 20) - 8;
        let err = table.dispatch_pio(&ram, 0x501, true, 4, top).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("hypercall WALLTIME: Invalid guest access: gpa=0x{top:x}, sz=8")
        );
    }
}
