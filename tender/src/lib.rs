//! `tender`: a small KVM monitor that runs one Solo5 `hvt` unikernel per
//! process, speaking the hvt ABI version 2 byte for byte.
//!
//! This crate is the KVM half: the command line's first pass ([`cli`]), the
//! ELF loader ([`elf`]), long-mode set-up ([`arch`]) and the VM and vCPU
//! ([`vstate`]). Everything a guest's devices are made of (guest memory
//! checks, hypercall dispatch, the modules) is in `tender-core`, which the
//! in-process mock tender shares.
//!
//! Start-up follows upstream's order (§8): parse the command line, read the
//! kernel's notes, let the modules take their options, size memory, create
//! the VM, load the image, set up the vCPU, set up the modules, write the
//! boot information, then run.

pub mod arch;
pub mod cli;
pub mod elf;
pub mod sandbox;
pub mod signals;
pub mod vstate;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;

use arch::x86_64::Privilege;
use cli::{Command, Invocation};
use elf::{ElfFile, LoadedImage};
use hvt_abi::boot::BootInfo;
use sandbox::Confinement;
use tender_core::devices::poller::Poller;
use tender_core::diag;
use tender_core::error::{Error, FatalHandler, Result, TENDER_ERROR_EXIT};
use tender_core::hypercall::Hypercalls;
use tender_core::lifecycle::{ModuleSet, SetupEnv};
use tender_core::manifest::Manifest;
use tender_core::memory::GuestRam;
use tender_core::module::{Ending, Module};
use tender_core::modules::{self, Host};
use tender_core::sandbox::SeccompMode;
use tender_core::stats::Counter;
use vstate::run::Stop;
use vstate::vm::Vm;

/// Exit code for a fault in an unprivileged guest (§12).
pub const GUEST_FAULT_EXIT: i32 = hvt_abi::hypercall::exit::ABORT;

/// `--version`: upstream's two lines, under the program's name; the
/// version says which tender this is.
fn version() -> String {
    format!(
        "{} tender, version v{}-tender\nABI version {}\n",
        String::from_utf8_lossy(diag::program_name()),
        env!("CARGO_PKG_VERSION"),
        hvt_abi::note::HVT_ABI_VERSION
    )
}

/// Runs the tender with `args` (without the program name) and returns the
/// process exit code. Diagnostics go to stderr, each line under the
/// program's name (`tender_core::diag`), guest console to stdout.
pub fn main_with_args<S: AsRef<OsStr>>(args: &[S]) -> i32 {
    main_with_modules(args, modules::all(Host::system()))
}

/// [`main_with_args`] with another set of modules: a tender with a device
/// of its own, or a debugger of the traps of a CPL 3 guest
/// ([`Module::trap`]), is this call with one more module in the list.
pub fn main_with_modules<S: AsRef<OsStr>>(args: &[S], modules: Vec<Box<dyn Module>>) -> i32 {
    // What the parent passed on, before the tender opens anything.
    let inherited = sandbox::open_fds();
    let mut modules = ModuleSet::new(modules);
    match run(args, &mut modules, &inherited) {
        Ok(code) => code,
        Err(err) => {
            diag::warn(err.to_bytes());
            if err.shows_usage() {
                diag::print(modules.usage());
            }
            TENDER_ERROR_EXIT
        }
    }
}

/// What a module's thread does on a fatal error: as upstream's `errx`, one
/// line and exit 1, after making the writable images durable.
fn exit_on_fatal() -> FatalHandler {
    Arc::new(|error: Error| {
        tender_core::devices::exit_sync::sync_all();
        diag::warn(error.to_bytes());
        std::process::exit(TENDER_ERROR_EXIT)
    })
}

fn run<S: AsRef<OsStr>>(
    args: &[S],
    modules: &mut ModuleSet,
    inherited: &BTreeSet<RawFd>,
) -> Result<i32> {
    let invocation = match cli::parse(args)? {
        Command::Help => {
            diag::print(modules.usage());
            return Ok(TENDER_ERROR_EXIT);
        }
        Command::Version => {
            diag::print(version());
            return Ok(0);
        }
        Command::Run(invocation) => invocation,
    };
    let cmdline = invocation.cmdline();
    let Invocation {
        mut options,
        kernel,
        ..
    } = invocation;

    // As upstream: the kernel's notes are read before any option is
    // looked at (module options name the manifest's devices).
    let elf = ElfFile::open(&kernel)?;
    elf::find_abi_note(&elf)?;
    let mut manifest = elf::read_manifest(&elf)?;
    let privilege = if elf::is_unprivileged(&elf) {
        Privilege::User
    } else {
        Privilege::Kernel
    };
    let confinement = Confinement::take_options(&mut options)?;
    modules.parse_options(&options, &mut manifest)?;

    signals::install()?;
    let mut ram = modules.allocate_memory(&manifest)?;
    let mut vm = Vm::new(&ram)?;
    let image = elf::load_segments(&elf, &mut ram)?;
    // The image is in guest memory: its file is not needed any more.
    drop(elf);
    if privilege == Privilege::User {
        // Below the image lie the GDT, the page tables, the TSS and the boot
        // information: a CPL 3 guest cannot write them, so the tender does
        // not write them on its behalf either (a BLOCK_READ there would let
        // it rewrite its own page tables and leave CPL 3, §12).
        ram.refuse_writes(0, hvt_abi::layout::GUEST_MIN_BASE)?;
    }
    vm.set_initial_state(&ram, image.entry, privilege)?;
    modules.initial_vcpu(&mut vm.vcpu, &ram)?;

    // Every device is open: privileges go before any module thread starts.
    sandbox::drop_privileges(&confinement)?;

    // From the first module's set-up on, every way out runs the halt hooks.
    let seccomp = confinement.seccomp;
    // The hypercall table lives to the end: once confined, the tender
    // closes nothing its handlers hold.
    let mut hypercalls = None;
    let kvm_run_returns = Counter::default();
    let stats = std::env::var_os("TENDER_STATS").is_some_and(|v| v == "1");
    let stop = start(
        modules,
        &mut manifest,
        &mut ram,
        &mut vm,
        GuestTerms {
            image: &image,
            cmdline: &cmdline,
            extensions: privilege == Privilege::User,
        },
        seccomp,
    )
    .and_then(|table| {
        if stats {
            // The modules are set up: their counters exist.
            let mut counters = vec![("kvm_run_returns", kvm_run_returns.clone())];
            counters.extend(modules.counters());
            tender_core::stats::enable(counters);
        }
        vm.close_kvm();
        sandbox::confine(&confinement, &vm.vcpu, modules, inherited)?;
        let table = hypercalls.insert(table);
        vstate::run::run(
            &mut vm.vcpu,
            &ram,
            table,
            modules,
            privilege,
            &kvm_run_returns,
        )
    });
    let ending = match &stop {
        Ok(Stop::Halt(code)) => Ending::Exit(*code),
        Ok(Stop::GuestFault(_) | Stop::Trap(_) | Stop::Unserved(_)) => Ending::GuestFault,
        Err(_) => Ending::Error,
    };
    match &stop {
        // The guest's registers are in the trap frame, not in KVM.
        Ok(Stop::Trap(trap)) => modules.guest_ended(
            ending,
            &mut vstate::trap::TrappedVcpu {
                vcpu: &mut vm.vcpu,
                trap,
                ram: &ram,
            },
            &ram,
        ),
        Ok(_) => modules.guest_ended(ending, &mut vm.vcpu, &ram),
        Err(_) => {}
    }
    modules.halt(ending);
    tender_core::stats::print();
    let code = match stop {
        Ok(Stop::Halt(code)) => code,
        Ok(Stop::GuestFault(report)) => {
            diag::warn(report);
            GUEST_FAULT_EXIT
        }
        Ok(Stop::Trap(trap)) => {
            diag::warn(trap.report());
            GUEST_FAULT_EXIT
        }
        Ok(Stop::Unserved(err)) | Err(err) if seccomp == SeccompMode::Off => return Err(err),
        Ok(Stop::Unserved(err)) | Err(err) => {
            diag::warn(err.to_bytes());
            TENDER_ERROR_EXIT
        }
    };
    if seccomp != SeccompMode::Off {
        // Confined, the tender does not tear anything down (no close, no
        // munmap): it is done, and the kernel reclaims the rest.
        // SAFETY: _exit ends the process; every image was synced by the
        // block module's halt hook.
        unsafe { libc::_exit(code) }
    }
    Ok(code)
}

/// What the modules' set-up needs to know of the guest.
struct GuestTerms<'a> {
    image: &'a LoadedImage,
    cmdline: &'a [u8],
    /// The guest carries our note (§12).
    extensions: bool,
}

/// Sets up the modules, writes the boot information and runs the last hook
/// before the guest: returns the hypercall table to run with.
fn start(
    modules: &mut ModuleSet,
    manifest: &mut Manifest,
    ram: &mut GuestRam,
    vm: &mut Vm,
    guest: GuestTerms<'_>,
    seccomp: SeccompMode,
) -> Result<Hypercalls> {
    let GuestTerms {
        image,
        cmdline,
        extensions,
    } = guest;
    let tsc_hz = vm.tsc_hz()?;
    let hypercalls = modules.setup(SetupEnv {
        manifest,
        ram,
        vm,
        poll: Rc::new(Poller::new()?),
        fatal: exit_on_fatal(),
        seccomp,
        extensions,
    })?;
    let mut info = BootInfo {
        mem_size: ram.visible_size(),
        kernel_end: image.kernel_end,
        cpu_cycle_freq: tsc_hz,
        ..BootInfo::default()
    };
    modules.boot_info(&mut info);
    tender_core::boot_info::write(ram, info, manifest, cmdline)?;
    modules.before_first_run(&mut vm.vcpu)?;
    Ok(hypercalls)
}
