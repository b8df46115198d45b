//! A device of one's own is a module and a line in the module list: this
//! test adds a toy module to the tender's own (no change to the tender's
//! code) and runs a real guest under KVM with it. The toy takes part in
//! every stage of the lifecycle and records what it saw.

mod common;

use std::sync::{Arc, Mutex};

use hvt_abi::boot::BootInfo;
use hvt_abi::hypercall::PIO_BASE;
use hvt_abi::layout::{BOOT_INFO_BASE, PML4_BASE};
use tender_core::devices::console::Console;
use tender_core::error::{Error, Result};
use tender_core::manifest::Manifest;
use tender_core::memory::GuestRam;
use tender_core::module::{Ending, Module, SetupContext};
use tender_core::modules::{self, block, net, Host};
use tender_core::vm::{DebugControl, ExitAction, Extension, Vcpu, VmExit};
use vm_memory::{GuestAddress, GuestRegionMmap, MmapRegion};

/// The port the toy serves: just below the hypercall ports, where the
/// hostile guest's "port-low" writes.
const TOY_PORT: u16 = PIO_BASE - 1;
/// The boot-info feature bit the toy offers (unused by the ABI).
const TOY_FEATURE: u32 = 1 << 7;

#[derive(Debug, Default, Clone, PartialEq)]
struct Seen {
    option: Option<String>,
    reservation: Option<(u64, u64)>,
    visible_size: u64,
    initial_cr3: u64,
    first_rip: u64,
    first_rdi: u64,
    port_writes: Vec<u32>,
    ending: Option<Ending>,
    /// Instruction pointers of the single steps, when stepping is on.
    steps: Vec<u64>,
    region_added: bool,
}

struct Toy {
    seen: Arc<Mutex<Seen>>,
    /// Single-step this many instructions from the first one.
    step: usize,
}

impl Toy {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }
}

impl Module for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn usage(&self) -> &'static str {
        "  [ --toy=WORD ] (a toy device)\n"
    }

    fn parse_option(&mut self, option: &str, _manifest: &mut Manifest) -> Result<bool> {
        let Some(word) = option.strip_prefix("--toy=") else {
            return Ok(false);
        };
        if word.is_empty() {
            return Err(Error::Usage("--toy needs a word".into()));
        }
        self.seen().option = Some(word.to_owned());
        Ok(true)
    }

    fn reserved_memory(&self, _manifest: &Manifest) -> u64 {
        1 << 20
    }

    fn initial_vcpu(&mut self, vcpu: &mut dyn Vcpu, _ram: &GuestRam) -> Result<()> {
        self.seen().initial_cr3 = vcpu.special_registers()?.cr3;
        Ok(())
    }

    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()> {
        let mut seen = self.seen();
        seen.reservation = ctx.reservation.map(|r| (r.gpa, r.size));
        seen.visible_size = ctx.ram.visible_size();
        // A region of the toy's own, beside guest memory (at 3 GiB).
        let mapping = MmapRegion::new(1 << 20).map_err(|e| Error::Other(e.to_string()))?;
        let region = GuestRegionMmap::new(mapping, GuestAddress(3 << 30))
            .ok_or_else(|| Error::Other("region".into()))?;
        ctx.vm.add_memory_region(Arc::new(region), true)?;
        seen.region_added = true;
        Ok(())
    }

    fn boot_info(&self, info: &mut BootInfo) {
        info.host_features |= TOY_FEATURE;
    }

    fn before_first_run(&mut self, vcpu: &mut dyn Vcpu) -> Result<()> {
        let registers = vcpu.registers()?;
        {
            let mut seen = self.seen();
            seen.first_rip = registers.rip;
            seen.first_rdi = registers.rdi;
        }
        if self.step > 0 {
            vcpu.set_debug(&DebugControl {
                enabled: true,
                single_step: true,
                ..DebugControl::default()
            })?;
        }
        Ok(())
    }

    fn vm_exit(
        &mut self,
        exit: &VmExit,
        vcpu: &mut dyn Vcpu,
        ram: &GuestRam,
    ) -> Result<Option<ExitAction>> {
        match *exit {
            VmExit::Debug { pc, .. } if self.step > 0 => {
                let mut seen = self.seen();
                seen.steps.push(pc);
                if seen.steps.len() == self.step {
                    drop(seen);
                    vcpu.set_debug(&DebugControl::default())?;
                }
                Ok(Some(ExitAction::Resume))
            }
            VmExit::IoOut {
                port: TOY_PORT,
                size: 4,
                value,
            } => {
                // The boot information the guest got carries the toy's bit.
                let info: BootInfo = ram
                    .read_arg(BOOT_INFO_BASE)
                    .map_err(|e| Error::Other(e.to_string()))?;
                assert_ne!(info.host_features & TOY_FEATURE, 0);
                self.seen().port_writes.push(value);
                Ok(Some(ExitAction::Resume))
            }
            _ => Ok(None),
        }
    }

    fn halt(&mut self, ending: Ending) {
        self.seen().ending = Some(ending);
    }
}

/// A module list to run, the console it prints to, what the toy saw.
type WithToy = (Vec<Box<dyn Module>>, Arc<Console>, Arc<Mutex<Seen>>);

/// The tender's modules plus the toy, with a captured console.
fn modules_with_toy() -> WithToy {
    stepping_toy(0)
}

/// As [`modules_with_toy`], the toy single-stepping `step` instructions.
fn stepping_toy(step: usize) -> WithToy {
    let console = Arc::new(Console::captured());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut list = modules::all(Host {
        console: console.clone(),
        open_net: Box::new(net::open_host),
        open_block: Box::new(block::open_file),
    });
    list.push(Box::new(Toy {
        seen: seen.clone(),
        step,
    }));
    (list, console, seen)
}

/// The tender's arguments, unconfined: the tender runs inside this test
/// process, which a seccomp filter would confine for good.
fn args(list: &[&str]) -> Vec<String> {
    std::iter::once("--seccomp=off")
        .chain(list.iter().copied())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_toy_module_takes_part_in_every_stage() {
    let (modules, console, seen) = modules_with_toy();
    let hostile = common::guest("hostile");
    let code = tender::main_with_modules(
        &args(&[
            "--mem=64",
            "--toy=hello",
            hostile.to_str().unwrap(),
            "port-low",
        ]),
        modules,
    );
    let output = String::from_utf8(console.captured_bytes()).unwrap();
    // Without the toy, the write ends the guest ("Invalid guest port
    // access", exit 1); with it, the guest goes on and returns 3.
    assert!(output.contains("hostile: survived port-low"), "{output}");
    assert_eq!(code, 3, "{output}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.option.as_deref(), Some("hello"));
    // 64 MiB for the guest, the toy's 1 MiB rounded up to 2 MiB above it.
    assert_eq!(seen.reservation, Some((64 << 20, 2 << 20)));
    assert_eq!(seen.visible_size, 64 << 20);
    assert_eq!(seen.initial_cr3, PML4_BASE);
    assert!(seen.first_rip >= 0x10_0000, "{seen:?}");
    assert_eq!(seen.first_rdi, BOOT_INFO_BASE);
    assert_eq!(seen.port_writes, [0x20_0000]);
    assert_eq!(seen.ending, Some(Ending::Exit(3)));
    assert!(seen.region_added);
    assert!(seen.steps.is_empty());
}

#[test]
fn a_module_can_single_step_the_guest() {
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    if !kvm.check_extension(kvm_ioctls::Cap::SetGuestDebug) {
        eprintln!("KVM_CAP_SET_GUEST_DEBUG missing: nothing to test");
        return;
    }
    let _ = Extension::GuestDebug;
    let (modules, console, seen) = stepping_toy(20);
    // At CPL 0: a CPL 3 guest on shadow-paging KVM (PVM) gets the trap of a
    // single step itself, through its trap path to the tender's fault
    // report (§12.4).
    let hostile = common::cpl0_copy("hostile");
    let code = tender::main_with_modules(&args(&[hostile.to_str().unwrap(), "exit", "7"]), modules);
    let output = String::from_utf8(console.captured_bytes()).unwrap();
    assert_eq!(code, 7, "{output}");
    let seen = seen.lock().unwrap().clone();
    // Twenty steps, the first from the entry point, each somewhere else
    // in the image, and then the guest ran on freely.
    assert_eq!(seen.steps.len(), 20, "{seen:?}");
    assert!(seen.steps.iter().all(|&pc| pc >= 0x10_0000), "{seen:?}");
    let mut distinct = seen.steps.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 10, "{seen:?}");
}

#[test]
fn exits_the_toy_does_not_take_keep_the_core_message() {
    let (modules, _console, seen) = modules_with_toy();
    let hostile = common::guest("hostile");
    // An IN is not the toy's: the core ends the guest as it always does.
    let code = tender::main_with_modules(&args(&[hostile.to_str().unwrap(), "in"]), modules);
    assert_eq!(code, 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.ending, Some(Ending::Error));
    assert!(seen.port_writes.is_empty());
}

#[test]
fn the_toy_has_its_options_and_help() {
    let run = common::tender(["--help"]);
    assert!(!run.stderr.contains("toy"), "the real tender has no toy");
    let (modules, _console, seen) = modules_with_toy();
    let hostile = common::guest("hostile");
    // A malformed toy option: the toy's message, exit 1, nothing runs.
    let code = tender::main_with_modules(&args(&["--toy=", hostile.to_str().unwrap()]), modules);
    assert_eq!(code, 1);
    assert_eq!(seen.lock().unwrap().ending, None);
}
