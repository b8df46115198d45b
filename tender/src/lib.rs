//! `tender`: a small KVM monitor that runs one Solo5 `hvt` unikernel per
//! process, speaking the hvt ABI version 2 byte for byte.
//!
//! Start-up follows upstream's order (§8): parse the command line, read the
//! kernel's notes, let the modules take their options, size memory, create
//! the VM, load the image, set up the vCPU, set up the modules, write the
//! boot information, then run.

pub mod arch;
pub mod boot_info;
pub mod cli;
pub mod devices;
pub mod elf;
pub mod error;
pub mod hypercall;
pub mod manifest;
pub mod mock;
pub mod modules;
pub mod net_ring;
pub mod signals;
pub mod vstate;

use std::path::Path;
use std::rc::Rc;

use arch::x86_64::Privilege;
use boot_info::{write_boot_info, BootParams};
use cli::{Command, Invocation};
use devices::poller::Poller;
use elf::ElfFile;
use error::{Error, Result, TENDER_ERROR_EXIT};
use hvt_abi::boot::HOST_FEATURE_RING_IO;
use hypercall::Hypercalls;
use manifest::Manifest;
use modules::{Module, SetupContext};
use vstate::memory::GuestRam;
use vstate::vcpu::Stop;
use vstate::vm::Vm;

/// Exit code for a fault in an unprivileged guest (§12).
pub const GUEST_FAULT_EXIT: i32 = hvt_abi::hypercall::exit::ABORT;

fn usage(modules: &[Box<dyn Module>]) -> String {
    let mut text =
        String::from("usage: tender [ CORE OPTIONS ] [ MODULE OPTIONS ] [ -- ] KERNEL [ ARGS ]\n");
    text.push_str("KERNEL is the filename of the unikernel to run.\nARGS are optional arguments passed to KERNEL.\n");
    text.push_str("Core options:\n");
    for module in modules {
        if module.name() == "core" {
            text.push_str(module.usage());
        }
    }
    text.push_str(
        "  [ --help ] (display this help)\n  [ --version ] (display version information)\n",
    );
    text.push_str("Compiled-in modules: ");
    text.push_str(
        &modules
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(" "),
    );
    text.push_str("\nCompiled-in module options:\n");
    for module in modules.iter().filter(|m| m.name() != "core") {
        text.push_str(module.usage());
    }
    text
}

fn version() -> String {
    format!(
        "tender {} (Solo5 hvt compatible)\nABI version {}",
        env!("CARGO_PKG_VERSION"),
        hvt_abi::note::HVT_ABI_VERSION
    )
}

/// Runs the tender with `args` (without the program name) and returns the
/// process exit code. Diagnostics go to stderr, guest console to stdout.
pub fn main_with_args(args: &[String]) -> i32 {
    let mut modules = modules::all();
    match run(args, &mut modules) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tender: {err}");
            if err.show_usage {
                eprint!("{}", usage(&modules));
            }
            TENDER_ERROR_EXIT
        }
    }
}

fn run(args: &[String], modules: &mut [Box<dyn Module>]) -> Result<i32> {
    let invocation = match cli::parse(args)? {
        Command::Help => {
            eprint!("{}", usage(modules));
            return Ok(TENDER_ERROR_EXIT);
        }
        Command::Version => {
            eprintln!("{}", version());
            return Ok(0);
        }
        Command::Run(invocation) => invocation,
    };
    let Invocation {
        options,
        kernel,
        cmdline,
    } = invocation;

    let elf = ElfFile::open(Path::new(&kernel))?;
    elf::find_abi_note(&elf)?;
    let mut manifest = Manifest::parse(&elf::find_manifest_note(&elf)?)?;
    let privilege = if elf::is_unprivileged(&elf) {
        Privilege::User
    } else {
        Privilege::Kernel
    };

    let mut mem_size = hvt_abi::layout::DEFAULT_MEM_SIZE;
    let mut ring_enabled = true;
    for option in &options {
        if option == "--no-net-ring" {
            ring_enabled = false;
            continue;
        }
        if let Some(value) = option.strip_prefix("--mem=") {
            let (size, warning) = cli::parse_mem(value)?;
            if let Some(warning) = warning {
                eprintln!("tender: {warning}");
            }
            mem_size = size;
            continue;
        }
        let mut taken = false;
        for module in modules.iter_mut() {
            if module.parse_option(option, &mut manifest)? {
                taken = true;
                break;
            }
        }
        if !taken {
            return Err(Error::usage(format!("Invalid option: `{option}'")));
        }
    }

    signals::install();
    let ring_wanted = net_ring::wanted(&manifest, ring_enabled);
    let mut ram = GuestRam::new(net_ring::allocation(mem_size, ring_wanted))?;
    let ring_gpa = net_ring::reserve(&mut ram, ring_wanted);
    let mut vm = Vm::new(&ram)?;
    let image = elf::load_segments(&elf, &mut ram)?;
    vm.set_initial_state(&ram, image.entry, privilege)?;
    let tsc_hz = vm.tsc_hz()?;

    let poller = Rc::new(Poller::new()?);
    let mut hypercalls = Hypercalls::default();
    {
        let mut ctx = SetupContext {
            manifest: &mut manifest,
            hypercalls: &mut hypercalls,
            poller: &poller,
            ram: &ram,
        };
        for module in modules.iter_mut() {
            module.setup(&mut ctx)?;
        }
    }
    manifest.check_all_attached()?;
    let mut ring =
        ring_gpa.and_then(|gpa| Some((gpa, net_ring::offer(&vm, &mut ram, &manifest, gpa)?)));
    write_boot_info(
        &ram,
        &BootParams {
            kernel_end: image.kernel_end,
            tsc_hz,
            manifest: &manifest,
            cmdline: &cmdline,
            host_features: if ring.is_some() {
                HOST_FEATURE_RING_IO
            } else {
                0
            },
            net_ring: ring.as_ref().map_or(0, |(gpa, _)| *gpa),
        },
    )?;

    let stop = vstate::vcpu::run(&mut vm.vcpu, &ram, &mut hypercalls, privilege);
    // Upstream's HALT hook: the ring thread stops before the tender exits.
    if let Some((_, service)) = ring.as_mut() {
        service.stop();
    }
    match stop? {
        Stop::Halt(code) => Ok(code),
        Stop::GuestFault(report) => {
            eprintln!("tender: {report}");
            Ok(GUEST_FAULT_EXIT)
        }
    }
}
