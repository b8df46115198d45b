//! ELF header and program-header table, with the checks of §2.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tender_core::error::{Error, Result};

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

/// One entry of the program-header table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

/// An opened, header-checked executable.
pub struct ElfFile {
    path: PathBuf,
    file: File,
    len: u64,
    pub entry: u64,
    pub phdrs: Vec<ProgramHeader>,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

impl ElfFile {
    /// Opens `path` and checks the ELF header and program headers.
    pub fn open(path: &Path) -> Result<Self> {
        // Non-blocking, so that a FIFO cannot hang the open; only regular
        // files are executables.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Error::Elf(format!("{}: Could not open: {e}", path.display())))?;
        let metadata = file
            .metadata()
            .map_err(|e| Error::Elf(format!("{}: Could not stat: {e}", path.display())))?;
        if !metadata.is_file() {
            return Err(Error::Elf(format!(
                "{}: Could not open: not a regular file",
                path.display()
            )));
        }
        let len = metadata.len();
        let mut elf = ElfFile {
            path: path.to_owned(),
            file,
            len,
            entry: 0,
            phdrs: Vec::new(),
        };
        elf.parse()?;
        Ok(elf)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// "FILE: invalid or unsupported executable (elf header invalid: WHY)".
    fn header_error(&self, why: &str) -> Error {
        Error::Elf(format!(
            "{}: invalid or unsupported executable (elf header invalid: {why})",
            self.path.display()
        ))
    }

    /// "FILE: invalid executable: WHY".
    pub fn invalid(&self, why: impl std::fmt::Display) -> Error {
        Error::Elf(format!(
            "{}: invalid executable: {why}",
            self.path.display()
        ))
    }

    /// Reads exactly `buf.len()` bytes at `offset`; a short file is an error.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let fits = offset
            .checked_add(buf.len() as u64)
            .is_some_and(|end| end <= self.len);
        if !fits {
            return Err(self.invalid(format!(
                "read of {} bytes at offset 0x{offset:x} is past the end of the file",
                buf.len()
            )));
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| self.invalid(format!("read at offset 0x{offset:x}: {e}")))
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    fn parse(&mut self) -> Result<()> {
        let mut ehdr = [0u8; EHDR_SIZE];
        if self.len < EHDR_SIZE as u64 {
            return Err(self.header_error("file too short"));
        }
        self.read_at(0, &mut ehdr)?;
        if &ehdr[0..4] != b"\x7fELF" {
            return Err(self.header_error("bad magic"));
        }
        if ehdr[4] != 2 {
            return Err(self.header_error("not ELF64"));
        }
        if ehdr[5] != 1 {
            return Err(self.header_error("not little-endian"));
        }
        if ehdr[6] != 1 || u32_at(&ehdr, 20) != 1 {
            return Err(self.header_error("bad version"));
        }
        if u16_at(&ehdr, 16) != ET_EXEC {
            return Err(self.header_error("not ET_EXEC"));
        }
        if u16_at(&ehdr, 18) != EM_X86_64 {
            return Err(self.header_error("not EM_X86_64"));
        }
        if u16_at(&ehdr, 52) as usize != EHDR_SIZE {
            return Err(self.header_error("bad e_ehsize"));
        }
        let phoff = u64_at(&ehdr, 32);
        let phentsize = u16_at(&ehdr, 54) as usize;
        let phnum = u16_at(&ehdr, 56) as usize;
        if phentsize != PHDR_SIZE {
            return Err(self.header_error("bad e_phentsize"));
        }
        if phnum == 0 {
            return Err(self.header_error("no program headers"));
        }
        self.entry = u64_at(&ehdr, 24);

        let mut table = vec![0u8; phnum * PHDR_SIZE];
        let fits = phoff
            .checked_add(table.len() as u64)
            .is_some_and(|end| end <= self.len);
        if !fits {
            return Err(self.header_error("program headers past the end of the file"));
        }
        self.read_at(phoff, &mut table)?;
        self.phdrs = table
            .chunks_exact(PHDR_SIZE)
            .map(|p| ProgramHeader {
                p_type: u32_at(p, 0),
                p_flags: u32_at(p, 4),
                p_offset: u64_at(p, 8),
                p_vaddr: u64_at(p, 16),
                p_filesz: u64_at(p, 32),
                p_memsz: u64_at(p, 40),
                p_align: u64_at(p, 48),
            })
            .collect();
        Ok(())
    }
}
