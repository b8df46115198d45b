//! Target `elf`: the bytes are a kernel image. Everything the tender does
//! with one before it creates a VM (§1, §2, §4.3): open it and check the
//! ELF header and program headers, find the ABI note, find and validate
//! the manifest note, read our unprivileged note, load the segments (with
//! every check and host protection) into 4 MiB of guest memory, and write
//! the boot information with the manifest. Each step runs whether or not
//! the one before accepted the image, for coverage.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hvt_abi::boot::BootInfo;
use hvt_abi::layout::GUEST_MIN_BASE;
use hvt_abi::note::MFT1_NOTE_MAX_DESCSZ;
use tender::elf::{self, ElfFile, PT_LOAD};
use tender_core::manifest::Manifest;
use tender_core::memory::GuestRam;

/// Guest memory the segments are loaded into: `--mem=4`.
const MEM: u64 = 4 << 20;

/// A memory file, opened by path as the tender opens a kernel: no disk
/// writes per input, nothing left behind.
struct Image {
    file: File,
    path: PathBuf,
}

impl Image {
    fn new() -> Image {
        // SAFETY: the name is a NUL-terminated literal; memfd_create only
        // reads it.
        let fd = unsafe { libc::memfd_create(c"tender-fuzz-elf".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Image { file, path }
    }

    fn holding(&self, bytes: &[u8]) -> &Path {
        self.file.set_len(0).expect("truncate the memory file");
        self.file
            .write_all_at(bytes, 0)
            .expect("fill the memory file");
        &self.path
    }
}

thread_local! {
    static IMAGE: RefCell<Option<Image>> = const { RefCell::new(None) };
}

pub fn elf(data: &[u8]) {
    IMAGE.with(|image| {
        let mut image = image.borrow_mut();
        let image = image.get_or_insert_with(Image::new);
        check(image.holding(data), data);
    });
}

fn check(path: &Path, data: &[u8]) {
    let Ok(elf) = ElfFile::open(path) else {
        return;
    };
    assert_eq!(elf.file_len(), data.len() as u64);
    assert!(!elf.phdrs.is_empty());

    let _ = elf::find_abi_note(&elf);
    let manifest = elf::find_manifest_note(&elf).ok().and_then(|raw| {
        assert!(raw.len() + 4 <= MFT1_NOTE_MAX_DESCSZ as usize);
        let manifest = Manifest::parse(&raw).ok()?;
        // Everything the guest declared reaches it unchanged.
        assert_eq!(manifest.to_bytes(), raw);
        Some(manifest)
    });
    let _ = elf::is_unprivileged(&elf);

    let mut ram = GuestRam::new(MEM).expect("4 MiB of guest memory");
    if let Ok(image) = elf::load_segments(&elf, &mut ram) {
        assert!((GUEST_MIN_BASE..MEM).contains(&image.entry));
        assert!(image.kernel_end <= MEM);
        // Loaded bytes are the file's (where the loader left them readable).
        for ph in elf
            .phdrs
            .iter()
            .filter(|p| p.p_type == PT_LOAD && p.p_filesz != 0)
        {
            let len = ph.p_filesz.min(64);
            if ram.check(ph.p_vaddr, len).is_err() {
                continue;
            }
            let mut loaded = vec![0u8; usize::try_from(len).expect("at most 64")];
            ram.read_bytes(ph.p_vaddr, &mut loaded)
                .expect("a checked range is readable");
            let offset = usize::try_from(ph.p_offset).expect("inside the file");
            assert_eq!(loaded, data[offset..offset + loaded.len()]);
        }
    }
    if let Some(manifest) = manifest {
        let info = BootInfo {
            mem_size: MEM,
            ..BootInfo::default()
        };
        tender_core::boot_info::write(&ram, info, &manifest, b"fuzz")
            .expect("the boot information fits below the image");
    }
}
