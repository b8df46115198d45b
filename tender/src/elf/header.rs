//! ELF header and program-header table, with the checks of §2 and
//! upstream's messages for each failure, word for word (scripts and tests
//! written against `solo5-hvt` match them).

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tender_core::error::{errno_text, os_error_text, Error, Result};

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u32 = 1;
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

/// How upstream prints a failed read's result: -1 as an unsigned size.
pub const READ_FAILED: u64 = u64::MAX;

/// The header checks of §2, all or nothing (the message does not say which
/// failed). `EI_VERSION` (byte 6), `EI_OSABI` and `EI_ABIVERSION` are not
/// looked at: only the header's `e_version` field is.
fn header_is_valid(ehdr: &[u8; EHDR_SIZE]) -> bool {
    &ehdr[0..4] == b"\x7fELF"
        && ehdr[4] == ELFCLASS64
        && ehdr[5] == ELFDATA2LSB
        && u32_at(ehdr, 20) == EV_CURRENT
        && usize::from(u16_at(ehdr, 52)) == EHDR_SIZE
        && u16_at(ehdr, 56) >= 1
        && usize::from(u16_at(ehdr, 54)) == PHDR_SIZE
        && u16_at(ehdr, 16) == ET_EXEC
        && u16_at(ehdr, 18) == EM_X86_64
}

impl ElfFile {
    /// Opens `path` and checks the ELF header and program headers, with
    /// upstream's messages (its notes are read first: "while loading
    /// note").
    pub fn open(path: &Path) -> Result<Self> {
        let named = |message: String| Error::Elf {
            file: path.to_owned(),
            message,
        };
        // Non-blocking, so that a FIFO cannot hang the open (upstream waits
        // for a writer); only regular files are executables.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| named(format!("Could not open: {}", os_error_text(&e))))?;
        let metadata = file
            .metadata()
            .map_err(|e| named(format!("Could not open: {}", os_error_text(&e))))?;
        if metadata.is_dir() {
            return Err(named(format!(
                "Could not open: {}",
                errno_text(libc::EISDIR)
            )));
        }
        if !metadata.is_file() {
            return Err(named("Could not open: not a regular file".into()));
        }
        let mut elf = ElfFile {
            path: path.to_owned(),
            file,
            len: metadata.len(),
            entry: 0,
            phdrs: Vec::new(),
        };
        elf.parse()?;
        Ok(elf)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// "FILE: MESSAGE".
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Elf {
            file: self.path.clone(),
            message: message.into(),
        }
    }

    /// "FILE: invalid executable: WHY".
    pub fn invalid(&self, why: impl std::fmt::Display) -> Error {
        self.error(format!("invalid executable: {why}"))
    }

    /// Reads up to `buf.len()` bytes at `offset` as upstream does, until the
    /// buffer is full or the file ends; returns how many. The kernel refuses
    /// an offset beyond `i64::MAX` (or a range ending beyond it) as
    /// upstream's read sees it refused.
    pub fn read_full(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self
                .file
                .read_at(&mut buf[done..], offset.saturating_add(done as u64))
            {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    fn parse(&mut self) -> Result<()> {
        let mut ehdr = [0u8; EHDR_SIZE];
        let n = self.read_full(0, &mut ehdr).map_err(|_| {
            self.error(format!(
                "pread_in_full for elf header while loading note returned {READ_FAILED} < 0"
            ))
        })?;
        if n != EHDR_SIZE {
            return Err(self.invalid(format!(
                "elf header does not match the expected size ({n} != {EHDR_SIZE})"
            )));
        }
        if !header_is_valid(&ehdr) {
            return Err(self.invalid(
                "invalid or unsupported executable (elf header invalid while loading note)",
            ));
        }
        self.entry = u64_at(&ehdr, 24);
        let phoff = u64_at(&ehdr, 32);
        let mut table = vec![0u8; usize::from(u16_at(&ehdr, 56)) * PHDR_SIZE];
        let n = self.read_full(phoff, &mut table).map_err(|_| {
            self.error(format!(
                "pread_in_full for ph_size returned {READ_FAILED} < 0 while loading note"
            ))
        })?;
        if n != table.len() {
            return Err(self.invalid(format!(
                "program header does not match the expected size ({n} != {} while loading note)",
                table.len()
            )));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> [u8; EHDR_SIZE] {
        let mut h = [0u8; EHDR_SIZE];
        h[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        h[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        h[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&1u16.to_le_bytes());
        h
    }

    #[test]
    fn header_checks_are_upstreams() {
        assert!(header_is_valid(&valid()));
        // EI_VERSION, EI_OSABI, EI_ABIVERSION and padding are not checked.
        for (at, byte) in [(6, 0), (6, 9), (7, 3), (8, 1), (15, 0xff)] {
            let mut h = valid();
            h[at] = byte;
            assert!(header_is_valid(&h), "byte {at} = {byte}");
        }
        // Every other field is.
        for (at, byte) in [
            (0, 0),
            (3, b'f'),
            (4, 1),
            (5, 2),
            (16, 3),
            (18, 3),
            (20, 2),
            (52, 63),
            (54, 57),
            (56, 0),
        ] {
            let mut h = valid();
            h[at] = byte;
            assert!(!header_is_valid(&h), "byte {at} = {byte}");
        }
    }
}
