//! CPUID passthrough (§3.5): what KVM supports, unmodified.
//!
//! `KVM_GET_SUPPORTED_CPUID` is the slowest step of start-up on our hosts
//! (0.38-0.45 ms of a 3.5 ms boot): the kernel executes CPUID once per leaf
//! and sub-leaf, and in a cloud VM each CPUID traps to the hypervisor
//! (7.5 us each here). Asking it on a thread of its own while the main
//! thread created the VM did not help (measured: 3.90 ms median boot with
//! the thread, 3.73 ms without; and a thread costs CPU, which density pays).
//!
//! So the answer is kept between runs, in a cache file (see [`cache`]):
//! the same bytes KVM returned, keyed by everything that can change them
//! (the boot, the KVM modules' load, the microcode), read only from a
//! directory and file of the tender's own user that nobody else can write.
//! Anything wrong with it (missing, stale, foreign, malformed) means asking
//! KVM, as without a cache; the guest sees the same CPUID either way.

use kvm_bindings::CpuId;
use kvm_ioctls::{Kvm, VcpuFd};

use tender_core::error::Result;

use crate::vstate::vm::kvm_error;

/// Upstream asks KVM for at most this many entries.
const MAX_CPUID_ENTRIES: usize = 100;

/// Gives `vcpu` every CPUID leaf KVM supports.
pub fn passthrough(kvm: &Kvm, vcpu: &VcpuFd) -> Result<()> {
    let cpuid = supported(kvm)?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| kvm_error("ioctl (SET_CPUID2)", e))
}

/// What KVM supports: from the cache when it is current, else from KVM
/// (and then stored for the next run, best effort).
fn supported(kvm: &Kvm) -> Result<CpuId> {
    let dir = cache::dir();
    let key = cache::key();
    if let (Some(dir), Some(key)) = (&dir, &key) {
        if let Some(entries) = cache::load(dir, key) {
            if let Ok(cpuid) = CpuId::from_entries(&entries) {
                return Ok(cpuid);
            }
        }
    }
    let cpuid = kvm
        .get_supported_cpuid(MAX_CPUID_ENTRIES)
        .map_err(|e| kvm_error("ioctl (GET_SUPPORTED_CPUID)", e))?;
    if let (Some(dir), Some(key)) = (&dir, &key) {
        cache::store(dir, key, cpuid.as_slice());
    }
    Ok(cpuid)
}

/// The cache of `KVM_GET_SUPPORTED_CPUID`'s answer.
///
/// One file per user, `tender-cpuid` in `/run` (root) or in
/// `$XDG_RUNTIME_DIR`: a magic, the key it was made under, the entry count
/// and the entries as KVM returned them. It is used only when the directory
/// and the file belong to the tender's effective user (or root) and are
/// writable by nobody else: whoever could change it could change the
/// tender itself.
///
/// It is written in place with the calls the tender's start-up makes
/// anyway (`openat`, `write`: docs/security.md lists them for outer
/// filters), not through a temporary file and `rename`. A reader that
/// meets a file being written sees a short one, or one that two writers
/// left with one's bytes over the other's longer ones; both fail the exact
/// length check (and a torn key the key check), and count as a miss.
pub mod cache {
    use std::fs::{self, OpenOptions};
    use std::io::{Read, Write};
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};

    use kvm_bindings::kvm_cpuid_entry2;
    use vm_memory::ByteValued;

    use super::MAX_CPUID_ENTRIES;

    const MAGIC: &[u8; 8] = b"TNDCPUI1";
    const ENTRY: usize = std::mem::size_of::<kvm_cpuid_entry2>();
    /// Keys are a few hundred bytes; anything longer is not ours.
    const MAX_KEY: usize = 4096;

    /// `kvm_cpuid_entry2` is plain data (integers and padding only): any
    /// bytes are a value of it.
    #[derive(Clone, Copy, Default)]
    #[repr(transparent)]
    struct Entry(kvm_cpuid_entry2);
    // SAFETY: a repr(transparent) wrapper of a repr(C) struct of u32s,
    // without implicit padding: every bit pattern is valid.
    unsafe impl ByteValued for Entry {}

    fn euid() -> u32 {
        // SAFETY: geteuid has no arguments and cannot fail.
        unsafe { libc::geteuid() }
    }

    /// The cache file's name in [`dir`].
    const FILE: &str = "tender-cpuid";

    /// The runtime directory of this user, if it has one.
    pub fn dir() -> Option<PathBuf> {
        if euid() == 0 {
            Some(PathBuf::from("/run"))
        } else {
            std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        }
    }

    /// KVM and the vendor modules whose parameters shape what it supports.
    const MODULES: [&str; 4] = ["kvm", "kvm_intel", "kvm_amd", "kvm_pvm"];

    /// What the supported CPUID depends on: this boot of the kernel, the
    /// load of each KVM module (a reload, maybe with other parameters, gets
    /// a new sysfs directory, whose inode number is the kernfs node's id)
    /// and the CPU's microcode. `None` (no cache) without a KVM module.
    pub fn key() -> Option<Vec<u8>> {
        let mut key = fs::read("/proc/sys/kernel/random/boot_id").ok()?;
        let mut any = false;
        for name in MODULES {
            if let Ok(meta) = fs::symlink_metadata(Path::new("/sys/module").join(name)) {
                key.extend_from_slice(format!("{name} {}\n", meta.ino()).as_bytes());
                any = true;
            }
        }
        if !any {
            return None;
        }
        if let Ok(microcode) = fs::read("/sys/devices/system/cpu/cpu0/microcode/version") {
            key.extend_from_slice(b"microcode ");
            key.extend_from_slice(&microcode);
        }
        Some(key)
    }

    /// Owned by us (or root, as `/run` is) and writable by nobody else.
    fn trusted(meta: &fs::Metadata) -> bool {
        (meta.uid() == euid() || meta.uid() == 0) && meta.mode() & 0o022 == 0
    }

    fn trusted_dir(dir: &Path) -> bool {
        fs::symlink_metadata(dir).is_ok_and(|meta| meta.is_dir() && trusted(&meta))
    }

    /// The cached entries, if the file is there, trusted, and made under
    /// `key`.
    pub fn load(dir: &Path, key: &[u8]) -> Option<Vec<kvm_cpuid_entry2>> {
        if !trusted_dir(dir) {
            return None;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dir.join(FILE))
            .ok()?;
        let meta = file.metadata().ok()?;
        let max = MAGIC.len() + 8 + MAX_KEY + MAX_CPUID_ENTRIES * ENTRY;
        if !meta.is_file() || !trusted(&meta) || meta.len() > max as u64 {
            return None;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        parse(&bytes, key)
    }

    /// The file's bytes for `entries` made under `key`.
    pub fn encode(key: &[u8], entries: &[kvm_cpuid_entry2]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + key.len() + entries.len() * ENTRY);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(
            &u32::try_from(entries.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for &entry in entries {
            bytes.extend_from_slice(Entry(entry).as_slice());
        }
        bytes
    }

    /// The entries of a file's bytes, if they are whole and made under `key`.
    pub fn parse(bytes: &[u8], key: &[u8]) -> Option<Vec<kvm_cpuid_entry2>> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let key_len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        if key_len > MAX_KEY || rest.get(..key_len)? != key {
            return None;
        }
        let (count, rest) = rest[key_len..].split_first_chunk::<4>()?;
        let count = usize::try_from(u32::from_le_bytes(*count)).ok()?;
        if count == 0 || count > MAX_CPUID_ENTRIES || rest.len() != count * ENTRY {
            return None;
        }
        // Copied out: the bytes need not be aligned for the struct.
        let entries = rest
            .chunks_exact(ENTRY)
            .map(|chunk| {
                let mut entry = Entry::default();
                entry.as_mut_slice().copy_from_slice(chunk);
                entry.0
            })
            .collect();
        Some(entries)
    }

    /// Stores `entries` under `key`, best effort: a failure only means the
    /// next run asks KVM again.
    pub fn store(dir: &Path, key: &[u8], entries: &[kvm_cpuid_entry2]) {
        if !trusted_dir(dir) {
            return;
        }
        let Ok(mut file) = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dir.join(FILE))
        else {
            return;
        };
        if file
            .metadata()
            .is_ok_and(|meta| meta.is_file() && trusted(&meta))
        {
            let _ = file.write_all(&encode(key, entries));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cache;
    use kvm_bindings::kvm_cpuid_entry2;
    use std::os::unix::fs::PermissionsExt;

    fn entries() -> Vec<kvm_cpuid_entry2> {
        (0..3u32)
            .map(|i| kvm_cpuid_entry2 {
                function: i,
                index: i * 2,
                flags: 1,
                eax: 0x1111_0000 + i,
                ebx: 0x2222_0000 + i,
                ecx: 0x3333_0000 + i,
                edx: 0x4444_0000 + i,
                ..Default::default()
            })
            .collect()
    }

    fn same(a: &[kvm_cpuid_entry2], b: &[kvm_cpuid_entry2]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (x.function, x.index, x.flags, x.eax, x.ebx, x.ecx, x.edx)
                    == (y.function, y.index, y.flags, y.eax, y.ebx, y.ecx, y.edx)
            })
    }

    #[test]
    fn a_file_round_trips_only_under_its_own_key() {
        let bytes = cache::encode(b"boot A", &entries());
        assert!(same(&cache::parse(&bytes, b"boot A").unwrap(), &entries()));
        assert!(cache::parse(&bytes, b"boot B").is_none());
        assert!(cache::parse(&bytes, b"boot").is_none());
        // Cut short, one byte more, another magic, no entries: refused.
        assert!(cache::parse(&bytes[..bytes.len() - 1], b"boot A").is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(cache::parse(&longer, b"boot A").is_none());
        let mut magic = bytes.clone();
        magic[0] ^= 1;
        assert!(cache::parse(&magic, b"boot A").is_none());
        assert!(cache::parse(&cache::encode(b"k", &[]), b"k").is_none());
    }

    #[test]
    fn the_cache_is_read_back_only_when_nobody_else_can_write_it() {
        let dir = std::env::temp_dir().join(format!("tender-cpuid-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(cache::load(&dir, b"key").is_none(), "no directory");
        std::fs::create_dir(&dir).unwrap();
        // Nothing is stored in, or read from, a directory others may write.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        cache::store(&dir, b"key", &entries());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(cache::load(&dir, b"key").is_none(), "no file yet");
        cache::store(&dir, b"key", &entries());
        assert!(same(&cache::load(&dir, b"key").unwrap(), &entries()));
        assert!(cache::load(&dir, b"other key").is_none(), "stale");
        // A file others may write is not trusted.
        let file = dir.join("tender-cpuid");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(cache::load(&dir, b"key").is_none());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Nor a directory others may write.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(cache::load(&dir, b"key").is_none());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A newer, shorter store replaces the file whole.
        let mut fewer = entries();
        fewer.truncate(1);
        cache::store(&dir, b"key", &fewer);
        assert!(same(&cache::load(&dir, b"key").unwrap(), &fewer));
        // Another writer's longer bytes left under shorter ones: refused.
        let mut torn = cache::encode(b"key", &fewer);
        torn.extend_from_slice(&cache::encode(b"key", &entries())[torn.len()..]);
        std::fs::write(&file, &torn).unwrap();
        assert!(cache::load(&dir, b"key").is_none());
        // A symbolic link is not followed.
        std::fs::remove_file(&file).unwrap();
        let real = dir.join("elsewhere");
        std::fs::write(&real, cache::encode(b"key", &entries())).unwrap();
        std::os::unix::fs::symlink(&real, &file).unwrap();
        assert!(cache::load(&dir, b"key").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_key_names_this_boot_and_the_kvm_modules() {
        let Some(key) = cache::key() else {
            // No KVM module on this host: no key, no cache.
            assert!(std::fs::read_dir("/sys/module/kvm").is_err());
            return;
        };
        let boot = std::fs::read("/proc/sys/kernel/random/boot_id").unwrap();
        assert!(key.starts_with(&boot));
        assert!(String::from_utf8_lossy(&key).contains("\nkvm "));
        assert_eq!(cache::key(), Some(key), "stable within a boot");
    }
}
