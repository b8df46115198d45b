//! The block module (§4.5, §6.5): attaches storage back-ends (image files on
//! the tender) to the block devices of the manifest and serves BLOCK_READ
//! and BLOCK_WRITE.
//!
//! Beyond upstream: a writable image is locked exclusively (two tenders
//! never write one image), `--block-ro:NAME=PATH` attaches an image
//! read-only under a shared lock (the guest learns it from the manifest's
//! `MFT_BLOCK_READ_ONLY` flag, §12.6; its writes get `SOLO5_R_EUNSPEC`),
//! and every writable image is synced (fdatasync) on every way out the
//! tender controls: the halt hook, a module thread's fatal error, SIGINT and
//! SIGTERM (through [`exit_sync`]). See `docs/block.md`.

pub mod hypercalls;

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::Arc;

use hvt_abi::manifest::{MftBlockBasic, MFT_BLOCK_READ_ONLY, MFT_DEV_BLOCK_BASIC};

use super::{invalid_option, named_option, only_device, scan, valid_device_name};
use crate::devices::disk::{BlockBackend, FileDisk};
use crate::devices::exit_sync;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::module::{Ending, Module, SetupContext};
use crate::sandbox::Allowlist;

/// Opens the back-end of `--block:NAME=VALUE` (read-only for
/// `--block-ro:`).
pub type OpenBlock = Box<dyn FnMut(&str, bool) -> Result<Arc<dyn BlockBackend>>>;

/// The back-ends of the attached block devices, indexed by handle.
pub type Backends = Vec<Option<Arc<dyn BlockBackend>>>;

/// The sector size when `--block-sector-size` is not given.
pub const DEFAULT_BLOCK_SIZE: u16 = 512;

/// The tender's back-ends: image files (or host block devices).
pub fn open_file(path: &str, read_only: bool) -> Result<Arc<dyn BlockBackend>> {
    Ok(Arc::new(FileDisk::open(path, read_only)?))
}

/// What the command line said about one block device.
#[derive(Default)]
struct Device {
    backend: Option<Arc<dyn BlockBackend>>,
    block_size: Option<u16>,
}

pub struct Block {
    open: OpenBlock,
    /// Block devices by manifest index (= guest handle).
    devices: BTreeMap<usize, Device>,
    /// The attached back-ends, once set up: synced at halt.
    attached: Vec<Arc<dyn BlockBackend>>,
}

impl Block {
    pub fn new(open: OpenBlock) -> Block {
        Block {
            open,
            devices: BTreeMap::new(),
            attached: Vec::new(),
        }
    }
}

/// `N` of `--block-sector-size:NAME=N`, read as upstream's `%hu` reads it
/// (a number at the start, cut to 16 bits): a power of two of at least 512.
fn parse_block_size(option: &str, value: &str) -> Result<u16> {
    let size = scan::unsigned_short(value).ok_or_else(|| invalid_option(option, None))?;
    if size < 512 || !size.is_power_of_two() {
        return Err(invalid_option(
            option,
            Some("Block size must be a multiple of 2 greater than or equal 512".into()),
        ));
    }
    Ok(size)
}

impl Module for Block {
    fn name(&self) -> &'static str {
        "block"
    }

    fn usage(&self) -> &'static str {
        "    --block:NAME=PATH (attach block device/file at PATH as block storage NAME)\n  \
         [ --block-sector-size:NAME=SECTORSIZE ] (set sector size for block device NAME; \
         must be a power of two greater than or equal 512)\n  \
         [ --block-ro:NAME=PATH ] (attach it read-only: the guest's writes fail, the file is not changed)\n  \
         [ --block=PATH ] (when the manifest declares one block device)\n"
    }

    fn parse_option(&mut self, option: &str, manifest: &mut Manifest) -> Result<bool> {
        enum Kind {
            Attach { read_only: bool },
            SectorSize,
        }
        let (name, value, kind) = if let Some(path) = option.strip_prefix("--block=") {
            // Ours, not upstream's: its own message, then the usage.
            let name = only_device(manifest, MFT_DEV_BLOCK_BASIC).ok_or_else(|| {
                Error::Usage("--block=PATH needs exactly one block device in the manifest".into())
            })?;
            (name, path, Kind::Attach { read_only: false })
        } else if let Some((name, path)) = named_option(option, "--block") {
            (name.to_owned(), path, Kind::Attach { read_only: false })
        } else if let Some((name, path)) = named_option(option, "--block-ro") {
            (name.to_owned(), path, Kind::Attach { read_only: true })
        } else if let Some((name, size)) = named_option(option, "--block-sector-size") {
            (name.to_owned(), size, Kind::SectorSize)
        } else {
            return Ok(false);
        };
        // As upstream: a name that is not 1-67 of [A-Za-z0-9], or no value,
        // is a malformed option; the sector size is checked before the
        // name is looked up.
        if !valid_device_name(&name) || value.is_empty() {
            return Err(invalid_option(option, None));
        }
        let block_size = match kind {
            Kind::SectorSize => Some(parse_block_size(option, value)?),
            Kind::Attach { .. } => None,
        };
        let index = manifest.find(&name, MFT_DEV_BLOCK_BASIC).ok_or_else(|| {
            invalid_option(
                option,
                Some(format!("Resource not declared in manifest: '{name}'")),
            )
        })?;
        let device = self.devices.entry(index).or_default();
        match kind {
            Kind::SectorSize => device.block_size = block_size,
            Kind::Attach { read_only } => {
                // The last option wins, as upstream's. The image given
                // before is closed first: were it the same one, its lock
                // would refuse the second open.
                device.backend = None;
                device.backend = Some((self.open)(value, read_only)?);
            }
        }
        Ok(true)
    }

    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()> {
        let mut backends: Backends = vec![None; ctx.manifest.entries.len()];
        for (index, device) in std::mem::take(&mut self.devices) {
            // A sector size without an image: the attach check reports it.
            let Some(backend) = device.backend else {
                continue;
            };
            let block_size = device.block_size.unwrap_or(DEFAULT_BLOCK_SIZE);
            let name =
                String::from_utf8_lossy(ctx.manifest.entries[index].name_bytes()).into_owned();
            let capacity = backend.capacity();
            if capacity % u64::from(block_size) != 0 {
                return Err(Error::Device(format!(
                    "{name}: Backing storage size must be block aligned ({block_size} bytes)"
                )));
            }
            if capacity < u64::from(block_size) {
                return Err(Error::Device(format!(
                    "{name}: Backing storage must be at least 1 block ({block_size} bytes) in size"
                )));
            }
            let entry = &mut ctx.manifest.entries[index];
            entry.set_block(MftBlockBasic {
                capacity,
                block_size,
                flags: if backend.read_only() {
                    MFT_BLOCK_READ_ONLY
                } else {
                    0
                },
                _pad: [0; 5],
            });
            // Upstream leaks its host descriptor in `b` (§4.4); the guest
            // learns nothing of the host from ours.
            entry.b = 0;
            entry.attached = 1;
            if let Some(fd) = backend.sync_fd() {
                exit_sync::register(fd);
            }
            self.attached.push(backend.clone());
            backends[index] = Some(backend);
        }
        if self.attached.is_empty() {
            // No handlers: BLOCK_* hypercalls stay invalid (§5).
            return Ok(());
        }
        hypercalls::register_hypercalls(ctx.hypercalls, backends)
    }

    fn vcpu_rules(&self, vcpu: &mut Allowlist) {
        // Its hypercalls run on the vCPU thread: one transfer each, on the
        // images' descriptors (fdatasync is in every thread's list).
        let fds: Vec<RawFd> = self.attached.iter().filter_map(|b| b.io_fd()).collect();
        vcpu.allow_fds(libc::SYS_pread64, &fds)
            .allow_fds(libc::SYS_pwrite64, &fds);
    }

    fn halt(&mut self, _ending: Ending) {
        // Every acknowledged write is already in the host kernel; this makes
        // it durable before the tender goes. A failing sync has nobody left
        // to tell but stderr.
        // The back-ends stay open: a confined tender closes nothing.
        for backend in &self.attached {
            if let Err(e) = backend.sync() {
                crate::diag::warn(format!("{}: fdatasync failed: {e}", backend.name()));
            }
            if let Some(fd) = backend.sync_fd() {
                exit_sync::unregister(fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use hvt_abi::manifest::MftEntry;

    fn manifest() -> Manifest {
        Manifest {
            entries: vec![
                MftEntry::RESERVED_FIRST,
                MftEntry::new("disk", MFT_DEV_BLOCK_BASIC),
                MftEntry::new("eth", hvt_abi::manifest::MFT_DEV_NET_BASIC),
            ],
        }
    }

    fn refused(option: &str) -> String {
        let mut block = Block::new(Box::new(|_, _| Err(Error::Device("no".into()))));
        block
            .parse_option(option, &mut manifest())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn option_errors_are_upstreams() {
        let invalid = |option: &str| format!("Invalid option: `{option}'");
        let size = "Block size must be a multiple of 2 greater than or equal 512";
        assert_eq!(
            refused("--block:eth=x"),
            format!(
                "Resource not declared in manifest: 'eth'\n{}",
                invalid("--block:eth=x")
            )
        );
        // The size is checked before the name is looked up.
        for option in [
            "--block-sector-size:disk=1000",
            "--block-sector-size:disk=256",
            "--block-sector-size:eth=256",
            // %hu keeps the low 16 bits: 0.
            "--block-sector-size:disk=65536",
        ] {
            assert_eq!(refused(option), format!("{size}\n{}", invalid(option)));
        }
        // What upstream's sscanf does not match: no warning.
        for option in [
            "--block-sector-size:disk=x4",
            "--block-sector-size:disk=",
            "--block:disk=",
            "--block:=x",
            "--block:di-sk=x",
            "--block-ro:disk=",
        ] {
            assert_eq!(refused(option), invalid(option));
        }
        assert_eq!(refused("--block:disk=x"), "no");
        let mut block = Block::new(Box::new(|_, _| Err(Error::Device("no".into()))));
        assert!(!block.parse_option("--net:eth=x", &mut manifest()).unwrap());
        for option in [
            "--block-sector-size:disk=32768",
            "--block-sector-size:disk=4096x",
            "--block-sector-size:disk= 512",
            "--block-sector-size:disk=66048",
        ] {
            assert!(
                block.parse_option(option, &mut manifest()).unwrap(),
                "{option}"
            );
        }
    }

    #[test]
    fn the_last_of_an_option_given_twice_wins() {
        let opened = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let log = opened.clone();
        let mut block = Block::new(Box::new(move |path, read_only| {
            log.borrow_mut().push(path.to_owned());
            let disk = crate::devices::memdisk::MemDisk::new(path, 4096);
            disk.set_read_only(read_only);
            let disk: Arc<dyn BlockBackend> = Arc::new(disk);
            Ok(disk)
        }));
        let mut manifest = manifest();
        for option in [
            "--block-sector-size:disk=1024",
            "--block:disk=a",
            "--block-sector-size:disk=2048",
            "--block-ro:disk=b",
        ] {
            assert!(
                block.parse_option(option, &mut manifest).unwrap(),
                "{option}"
            );
        }
        assert_eq!(*opened.borrow(), ["a", "b"]);
        let device = &block.devices[&1];
        assert_eq!(device.block_size, Some(2048));
        let backend = device.backend.as_ref().unwrap();
        assert_eq!((backend.name(), backend.read_only()), ("b", true));
    }
}
