//! A tender without KVM and without the host, for the harnesses: the real
//! modules (`tender_core::modules::all`) driven through the real lifecycle
//! (`ModuleSet`), as the mock tender drives them, over in-memory wires and
//! disks, the mock's VM and its virtual clock.
//!
//! Not `tender_mock::MockTender` itself: that one leaks its boot
//! information on purpose (a guest keeps it for its life), which
//! LeakSanitizer would report on every input, and it offers no dispatch of
//! raw guest-physical arguments, which the hypercall target needs.

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use hvt_abi::boot::BootInfo;
use hvt_abi::layout::GUEST_MIN_BASE;
use tender_core::devices::console::Console;
use tender_core::devices::disk::BlockBackend;
use tender_core::devices::frame::FrameBackend;
use tender_core::devices::memdisk::MemDisk;
use tender_core::error::{Error, FatalHandler, Result};
use tender_core::hypercall::Hypercalls;
use tender_core::lifecycle::{ModuleSet, SetupEnv};
use tender_core::manifest::Manifest;
use tender_core::memory::GuestRam;
use tender_core::module::Ending;
use tender_core::modules::Host;
use tender_core::sandbox::SeccompMode;
use tender_mock::{MockVm, VirtualClock};

/// Module back-ends that never touch the host: `--net:NAME=VALUE` opens the
/// wire port called VALUE in `nets`, `--block:NAME=VALUE` the disk called
/// VALUE in `disks`; anything else fails as a missing interface or file.
pub fn host(nets: &[(&str, Arc<dyn FrameBackend>)], disks: &[(&str, Arc<MemDisk>)]) -> Host {
    let nets: Vec<(String, Arc<dyn FrameBackend>)> = nets
        .iter()
        .map(|(name, port)| ((*name).to_owned(), port.clone()))
        .collect();
    let disks: Vec<(String, Arc<MemDisk>)> = disks
        .iter()
        .map(|(name, disk)| ((*name).to_owned(), disk.clone()))
        .collect();
    Host {
        console: Arc::new(Console::captured()),
        open_net: Box::new(move |value: &str| {
            nets.iter()
                .find(|(name, _)| name == value)
                .map(|(_, port)| port.clone())
                .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENODEV))
        }),
        open_block: Box::new(move |value: &str, read_only: bool| {
            let (_, disk) = disks
                .iter()
                .find(|(name, _)| name == value)
                .ok_or_else(|| Error::Device(format!("{value}: No such file or directory")))?;
            disk.set_read_only(read_only);
            let backend: Arc<dyn BlockBackend> = disk.clone();
            Ok(backend)
        }),
    }
}

/// A set-up tender: stages 1 (options), 2 (memory), 4 (set-up) and 5 (boot
/// information) of the lifecycle done.
pub struct Rig {
    pub modules: ModuleSet,
    pub manifest: Manifest,
    pub ram: GuestRam,
    pub vm: MockVm,
    pub clock: Rc<VirtualClock>,
    pub hypercalls: Hypercalls,
    pub info: BootInfo,
    fatal: Arc<Mutex<Vec<String>>>,
}

impl Rig {
    /// Runs the lifecycle with `options` over `manifest`. `ioeventfd`: the
    /// VM offers the in-kernel doorbell, and with it the network ring.
    /// `extensions`: the guest carries our note (§12), so our extensions
    /// are offered.
    pub fn build(
        mut modules: ModuleSet,
        mut manifest: Manifest,
        options: &[impl AsRef<std::ffi::OsStr>],
        ioeventfd: bool,
        extensions: bool,
    ) -> Result<Rig> {
        modules.parse_options(options, &mut manifest)?;
        let mut ram = modules.allocate_memory(&manifest)?;
        let mut vm = MockVm {
            ioeventfd,
            ..MockVm::default()
        };
        let clock = Rc::new(VirtualClock::default());
        let fatal = Arc::new(Mutex::new(Vec::new()));
        let recorded = fatal.clone();
        let handler: FatalHandler = Arc::new(move |error: Error| {
            recorded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(error.to_string());
        });
        let setup = modules.setup(SetupEnv {
            manifest: &mut manifest,
            ram: &mut ram,
            vm: &mut vm,
            poll: clock.clone(),
            fatal: handler,
            seccomp: SeccompMode::Off,
            extensions,
        });
        let hypercalls = match setup {
            Ok(hypercalls) => hypercalls,
            Err(error) => {
                // A module may have started a thread before another failed.
                modules.halt(Ending::Error);
                return Err(error);
            }
        };
        let mut info = BootInfo {
            mem_size: ram.visible_size(),
            kernel_end: GUEST_MIN_BASE,
            cpu_cycle_freq: 1_000_000_000,
            ..BootInfo::default()
        };
        modules.boot_info(&mut info);
        Ok(Rig {
            modules,
            manifest,
            ram,
            vm,
            clock,
            hypercalls,
            info,
            fatal,
        })
    }

    /// What the modules' threads reported as fatal (a tender would have
    /// exited with the first).
    pub fn fatal_errors(&self) -> Vec<String> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // As the tender does however the guest ends: threads stop.
        self.modules.halt(Ending::Exit(0));
    }
}
