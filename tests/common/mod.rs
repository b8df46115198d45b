//! Shared harness of the integration tests: builds the guests (a cargo call
//! of their own, with their own target directory), runs the tender binary,
//! and edits ELF images for the bad-input tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tender/ has a parent")
        .to_owned()
}

/// The tender binary cargo built for these tests.
pub fn tender_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tender"))
}

/// Builds every guest once per test process and returns the directory that
/// holds the images (`<name>` without extension).
pub fn guest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root();
        let target_dir = root.join("target").join("guest");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root.join("guest"))
            .args(["build", "--release", "--target-dir"])
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("run cargo for the guests");
        assert!(status.success(), "building the guests failed");
        target_dir.join("x86_64-unknown-none").join("release")
    })
}

/// Path of the guest image `name`.
pub fn guest(name: &str) -> PathBuf {
    let path = guest_dir().join(name);
    assert!(path.exists(), "guest {name} was not built");
    path
}

/// What a tender run left behind.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together, as upstream's tests match them.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            // A signal (no code) shows as -1: never a tender's own code.
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs the tender with `args`, with a time limit so a hung guest fails the
/// test instead of hanging it.
pub fn tender<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new("timeout")
        .arg("60")
        .arg(tender_bin())
        .args(args)
        .output()
        .expect("run the tender");
    out.into()
}

/// A scratch directory unique to this test process and `tag`.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tender-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes `bytes` as an image file in the scratch directory.
pub fn write_image(tag: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch(tag).join(name);
    std::fs::write(&path, bytes).expect("write image");
    path
}

/// Byte-level access to an ELF64 image, for making bad ones.
pub struct Elf {
    pub bytes: Vec<u8>,
}

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;

impl Elf {
    pub fn load(path: &Path) -> Elf {
        Elf {
            bytes: std::fs::read(path).expect("read image"),
        }
    }

    pub fn u16_at(&self, off: usize) -> u16 {
        u16::from_le_bytes(self.bytes[off..off + 2].try_into().unwrap())
    }
    pub fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.bytes[off..off + 4].try_into().unwrap())
    }
    pub fn u64_at(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.bytes[off..off + 8].try_into().unwrap())
    }
    pub fn set_u16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u64(&mut self, off: usize, v: u64) {
        self.bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// File offset of program header `i`.
    pub fn phdr(&self, i: usize) -> usize {
        self.u64_at(32) as usize + i * self.u16_at(54) as usize
    }
    pub fn phnum(&self) -> usize {
        self.u16_at(56) as usize
    }
    pub fn p_type(&self, i: usize) -> u32 {
        self.u32_at(self.phdr(i))
    }
    /// Indices of the program headers of type `p_type`.
    pub fn phdrs_of(&self, p_type: u32) -> Vec<usize> {
        (0..self.phnum())
            .filter(|&i| self.p_type(i) == p_type)
            .collect()
    }
    /// Field offsets inside a program header.
    pub const P_FLAGS: usize = 4;
    pub const P_OFFSET: usize = 8;
    pub const P_VADDR: usize = 16;
    pub const P_PADDR: usize = 24;
    pub const P_FILESZ: usize = 32;
    pub const P_MEMSZ: usize = 40;
    pub const P_ALIGN: usize = 48;

    /// The PT_NOTE whose note has `n_type`.
    pub fn note_phdr(&self, n_type: u32) -> usize {
        *self
            .phdrs_of(PT_NOTE)
            .iter()
            .find(|&&i| {
                let off = self.u64_at(self.phdr(i) + Self::P_OFFSET) as usize;
                self.u32_at(off + 8) == n_type
            })
            .expect("note present")
    }
    /// File offset of the note with `n_type`.
    pub fn note_offset(&self, n_type: u32) -> usize {
        self.u64_at(self.phdr(self.note_phdr(n_type)) + Self::P_OFFSET) as usize
    }
}

/// `n_type` of the Solo5 ABI note.
pub const ABI1: u32 = u32::from_le_bytes(*b"ABI1");
/// `n_type` of the Solo5 manifest note.
pub const MFT1: u32 = u32::from_le_bytes(*b"MFT1");
/// `n_type` of our unprivileged note.
pub const UPRV: u32 = u32::from_le_bytes(*b"UPRV");

/// A copy of the guest `name` without our unprivileged note, so the tender
/// runs it at CPL 0 as upstream runs every guest (the note's type is
/// cleared; the tender then does not recognise it).
/// Made once per test process and name, so parallel tests never read a copy
/// while another test is writing it.
pub fn cpl0_copy(name: &str) -> PathBuf {
    static COPIES: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut copies = COPIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = copies.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let mut elf = Elf::load(&guest(name));
    let off = elf.note_offset(UPRV);
    elf.set_u32(off + 8, 0);
    let path = write_image("cpl0", &format!("{name}-cpl0"), &elf.bytes);
    copies.push((name.to_owned(), path.clone()));
    path
}
