//! Target `cli`: the bytes are a command line. The first byte picks the
//! kernel's manifest (and whether the VM offers the ring's doorbell), the
//! rest are the arguments, separated by NUL bytes. Runs the first pass
//! (`tender::cli::parse`), then the modules' options, memory plan, set-up
//! (devices are in-memory: the options never open a tap or a file) and the
//! boot information with the guest's command line.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;

use hvt_abi::layout::{CMDLINE_SIZE, MAX_MEM_SIZE, MEM_GRANULE};
use hvt_abi::manifest::{MftEntry, MFT_DEV_BLOCK_BASIC, MFT_DEV_NET_BASIC};
use tender::cli::{self, Command};
use tender_core::devices::frame::FrameBackend;
use tender_core::devices::memdisk::MemDisk;
use tender_core::devices::wire::{self, WireConfig};
use tender_core::lifecycle::ModuleSet;
use tender_core::manifest::Manifest;
use tender_core::modules;

use crate::rig::{self, Rig};

/// The manifest the kernel declares, by the low bits of `variant`.
fn manifest(variant: u8) -> Manifest {
    let mut entries = vec![MftEntry::RESERVED_FIRST];
    match variant % 4 {
        0 => {}
        1 => entries.extend([
            MftEntry::new("service0", MFT_DEV_NET_BASIC),
            MftEntry::new("storage", MFT_DEV_BLOCK_BASIC),
        ]),
        2 => entries.extend([
            MftEntry::new("service0", MFT_DEV_NET_BASIC),
            MftEntry::new("service1", MFT_DEV_NET_BASIC),
            MftEntry::new("storage", MFT_DEV_BLOCK_BASIC),
            MftEntry::new("disk", MFT_DEV_BLOCK_BASIC),
        ]),
        _ => entries.extend((0..8).map(|i| {
            MftEntry::new(["n0", "n1", "n2", "n3", "b0", "b1", "b2", "b3"][i], {
                if i < 4 {
                    MFT_DEV_NET_BASIC
                } else {
                    MFT_DEV_BLOCK_BASIC
                }
            })
        })),
    }
    Manifest { entries }
}

pub fn cli(data: &[u8]) {
    let Some((&variant, rest)) = data.split_first() else {
        return;
    };
    // Arguments are bytes, as the tender takes them from its argv.
    let args: Vec<OsString> = rest
        .split(|&b| b == 0)
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect();
    let invocation = match cli::parse(&args) {
        Ok(Command::Run(invocation)) => invocation,
        Ok(Command::Help | Command::Version) | Err(_) => return,
    };
    assert!(invocation
        .options
        .iter()
        .all(|o| o.as_bytes().starts_with(b"-") && o.as_bytes() != b"--"));
    let cmdline = invocation.cmdline();

    // Interfaces tap0..tap3 (two wires) and images: one good, one whose
    // size is no whole number of sectors, one of 4 KiB sectors only.
    let (tap0, tap1) = wire::pair(WireConfig::clean(), ["tap0", "tap1"]);
    let (tap2, tap3) = wire::pair(WireConfig::clean(), ["tap2", "tap3"]);
    let ports: Vec<Arc<dyn FrameBackend>> = vec![
        Arc::new(tap0),
        Arc::new(tap1),
        Arc::new(tap2),
        Arc::new(tap3),
    ];
    let nets: Vec<(&str, Arc<dyn FrameBackend>)> = ["tap0", "tap1", "tap2", "tap3"]
        .into_iter()
        .zip(ports)
        .collect();
    let disks = [
        ("disk.img", Arc::new(MemDisk::new("disk.img", 64 << 10))),
        ("odd.img", Arc::new(MemDisk::new("odd.img", 1000))),
        ("big.img", Arc::new(MemDisk::new("big.img", 12 << 10))),
    ];
    let modules = ModuleSet::new(modules::all(rig::host(&nets, &disks)));
    assert!(modules.usage().contains("--mem"));

    let manifest = manifest(variant);
    let Ok(rig) = Rig::build(
        modules,
        manifest,
        &invocation.options,
        variant & 0x80 != 0,
        variant & 0x40 != 0,
    ) else {
        return;
    };
    let (alloc, visible) = (rig.ram.alloc_size(), rig.ram.visible_size());
    assert!(alloc <= MAX_MEM_SIZE && alloc % MEM_GRANULE == 0, "{alloc}");
    assert!(
        (MEM_GRANULE..=alloc).contains(&visible),
        "{visible} of {alloc}"
    );
    assert_eq!(rig.info.mem_size, visible);
    if rig.info.net_ring != 0 {
        assert!(rig.info.net_ring >= visible && rig.info.net_ring < alloc);
    }
    rig.manifest
        .check_all_attached()
        .expect("set-up succeeded: every device is attached");
    // The command line's length is checked here, last, as upstream does.
    let written = tender_core::boot_info::write(&rig.ram, rig.info, &rig.manifest, &cmdline);
    assert_eq!(written.is_ok(), cmdline.len() < CMDLINE_SIZE, "{written:?}");
}
