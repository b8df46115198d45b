//! `--dumpcore=DIR`: when the guest aborts (HALT 255) or faults, an ELF
//! core file of the guest, `DIR/core.solo5-hvt.<pid>`, for
//! `gdb KERNEL CORE` (upstream's `hvt_module_dumpcore.c`, §9 of the
//! compatibility notes; `docs/debugging.md`).
//!
//! The file is what upstream writes: an ELF64 `ET_CORE` for x86_64 with a
//! `PT_NOTE` holding one `NT_PRSTATUS` (the registers from the vCPU, with
//! `rip`, `cs`, `rflags`, `rsp` and `ss` from the HALT cookie's trap frame
//! when the guest gave one, §6.6) and a `PT_LOAD` at address 0 covering the
//! guest-visible memory, written sparsely: only pages the host reports
//! resident (`mincore`) and not all zero. Unlike upstream's, the memory
//! starts at a page-aligned offset (the holes stay holes), and a CPL 3
//! fault or a CPL 0 exit the tender does not serve (a triple fault) dumps
//! too, not only HALT 255.
//!
//! The directory is opened while the options are read, before the sandbox
//! changes root or user. The core is written under the vCPU thread's
//! filter, with four calls more ([`Dumpcore::vcpu_rules`]): `openat` of
//! exactly the core's name (a read-only page of its own, so the filter can
//! check the pointer) in the directory, with exactly `O_CREAT | O_EXCL`;
//! `dup3` of the new file onto the directory's descriptor; `pwrite64` on
//! that descriptor; and `mincore`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use hvt_abi::hypercall::{exit, nr, TrapFrame, PIO_BASE};

use crate::error::{Error, Result};
use crate::halt;
use crate::manifest::Manifest;
use crate::memory::GuestRam;
use crate::module::{Ending, Module};
use crate::sandbox::{Allowlist, ArgEq};
use crate::vm::{Registers, SpecialRegisters, Vcpu};

const PAGE: usize = 4096;

/// How the core file is created: never over an existing file.
const OPEN_FLAGS: libc::c_int = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
const OPEN_MODE: libc::mode_t = 0o600;

/// The dumpcore module.
#[derive(Default)]
pub struct Dumpcore {
    target: Option<Target>,
}

/// Where the core goes, fixed at start-up.
struct Target {
    /// `DIR` as given, for the message.
    dir_name: String,
    /// The directory, opened at start-up; the core file takes its number
    /// once created (`dup3`), so that the filter names one descriptor.
    dir: OwnedFd,
    /// `core.solo5-hvt.<pid>`, NUL-terminated, alone on a page that is
    /// read-only from start-up on (confined, no thread may `mprotect`): the
    /// filter allows `openat` with this pointer only.
    name: NamePage,
}

impl Dumpcore {
    pub fn new() -> Dumpcore {
        Dumpcore::default()
    }

    /// Opens `DIR` and checks that it is a writable directory, with
    /// upstream's messages.
    fn open(dir_name: &str) -> Result<Target> {
        let path = CString::new(dir_name).map_err(|_| cannot_open())?;
        // SAFETY: open with a NUL-terminated path we own; the result is
        // checked and owned below.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(cannot_open());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        // As upstream's access(DIR, W_OK): the real user (root passes unless
        // the file system is read-only).
        // SAFETY: faccessat on our descriptor with a literal path.
        if unsafe { libc::faccessat(dir.as_raw_fd(), c".".as_ptr(), libc::W_OK, 0) } != 0 {
            return Err(Error::Other("dumpcore: dir not writable".into()));
        }
        // SAFETY: getpid cannot fail.
        let pid = unsafe { libc::getpid() };
        let name = NamePage::new(&format!("core.solo5-hvt.{pid}"))?;
        Ok(Target {
            dir_name: dir_name.to_owned(),
            dir,
            name,
        })
    }
}

fn cannot_open() -> Error {
    Error::Other("dumpcore: cannot open dir".into())
}

impl Module for Dumpcore {
    fn name(&self) -> &'static str {
        "dumpcore"
    }

    fn usage(&self) -> &'static str {
        "    --dumpcore=DIR (enable guest core dump on abort/trap)\n"
    }

    fn parse_option(&mut self, option: &str, _manifest: &mut Manifest) -> Result<bool> {
        let Some(dir) = option.strip_prefix("--dumpcore=") else {
            return Ok(false);
        };
        // The last one given wins, as with upstream's.
        self.target = Some(Dumpcore::open(dir)?);
        Ok(true)
    }

    fn guest_ended(&mut self, ending: Ending, vcpu: &mut dyn Vcpu, ram: &GuestRam) {
        let Some(target) = &self.target else {
            return;
        };
        if !matches!(ending, Ending::Exit(exit::ABORT) | Ending::GuestFault) {
            return;
        }
        let display = format!("{}/{}", target.dir_name, target.name.text);
        let file = match target.create() {
            Ok(file) => file,
            Err(e) => {
                crate::diag::warn(format!("dumpcore: open({}): {e}", target.name.text));
                crate::diag::warn("dumpcore: error(s) dumping core, file may be incomplete");
                return;
            }
        };
        crate::diag::warn(format!("dumpcore: dumping guest core to: {display}"));
        if let Err(message) = write_core(file, vcpu, ram, ending) {
            crate::diag::warn(format!("dumpcore: {message}"));
            crate::diag::warn("dumpcore: error(s) dumping core, file may be incomplete");
        }
    }

    fn vcpu_rules(&self, vcpu: &mut Allowlist) {
        let Some(target) = &self.target else {
            return;
        };
        let dir = target.dir.as_raw_fd();
        let dir_arg = u32::try_from(dir).unwrap_or(u32::MAX);
        vcpu.allow_exact(
            libc::SYS_openat,
            &[
                ArgEq::Int(0, dir_arg),
                ArgEq::Word(1, target.name.ptr as u64),
                ArgEq::Int(2, OPEN_FLAGS.unsigned_abs()),
                ArgEq::Int(3, OPEN_MODE),
            ],
        )
        .allow_exact(
            libc::SYS_dup3,
            &[
                ArgEq::Int(1, dir_arg),
                ArgEq::Int(2, libc::O_CLOEXEC.unsigned_abs()),
            ],
        )
        .allow_fds(libc::SYS_pwrite64, &[dir])
        .allow(libc::SYS_mincore);
    }
}

impl Target {
    /// Creates the core file and puts it at the directory's number; the
    /// descriptor to write to.
    fn create(&self) -> std::io::Result<RawFd> {
        let dir = self.dir.as_raw_fd();
        // SAFETY: openat with our directory and a NUL-terminated name on a
        // page that stays mapped for the life of the process.
        let file = unsafe {
            libc::openat(
                dir,
                self.name.ptr.cast(),
                OPEN_FLAGS,
                libc::c_uint::from(OPEN_MODE),
            )
        };
        if file < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The filter knows one descriptor number, the directory's: the
        // file takes it (the directory is not needed any more). `file`
        // itself stays open until the process ends (no `close` allowed).
        // SAFETY: dup3 of a descriptor we opened onto one we own.
        if unsafe { libc::dup3(file, dir, libc::O_CLOEXEC) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(dir)
    }
}

/// A NUL-terminated string alone on a read-only page of its own.
struct NamePage {
    text: String,
    ptr: *const u8,
}

impl NamePage {
    fn new(text: &str) -> Result<NamePage> {
        assert!(text.len() < PAGE, "a file name fits in a page");
        let fail = |what: &str| {
            Error::Other(format!(
                "dumpcore: {what}: {}",
                std::io::Error::last_os_error()
            ))
        };
        // SAFETY: a fresh anonymous private page; the result is checked.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(fail("mmap"));
        }
        // SAFETY: the page is ours, writable and PAGE bytes long; the text
        // and its NUL fit (asserted above; the page is zeroed).
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), page.cast::<u8>(), text.len()) };
        // SAFETY: makes our own page read-only; it is never unmapped.
        if unsafe { libc::mprotect(page, PAGE, libc::PROT_READ) } != 0 {
            return Err(fail("mprotect"));
        }
        Ok(NamePage {
            text: text.to_owned(),
            ptr: page.cast::<u8>().cast_const(),
        })
    }
}

/// `NT_PRSTATUS`'s descriptor on x86_64 (`struct elf_prstatus`): 112
/// bytes before the registers, 27 registers, `pr_fpvalid` and padding.
const PRSTATUS_SIZE: u32 = 336;
const PRSTATUS_REGS: usize = 112;
const NOTE_NAME: &[u8; 8] = b"CORE\0\0\0\0";
const EHDR_SIZE: u16 = 64;
const PHDR_SIZE: u16 = 56;
const NOTE_OFFSET: usize = EHDR_SIZE as usize + 2 * PHDR_SIZE as usize;
const NOTE_SIZE: usize = 12 + NOTE_NAME.len() + PRSTATUS_SIZE as usize;
/// Guest memory starts on a page of its own, so that skipped pages are
/// whole holes in the file.
const MEMORY_OFFSET: usize = (NOTE_OFFSET + NOTE_SIZE).next_multiple_of(PAGE);

/// The registers of the core: the vCPU's, with the trap frame of a HALT
/// cookie over them (§6.6).
fn core_registers(vcpu: &dyn Vcpu, ram: &GuestRam, ending: Ending) -> Option<[u64; 27]> {
    let r: Registers = vcpu.registers().ok()?;
    let s: SpecialRegisters = vcpu.special_registers().ok()?;
    // `struct user_regs_struct`'s order.
    let mut regs = [
        r.r15,
        r.r14,
        r.r13,
        r.r12,
        r.rbp,
        r.rbx,
        r.r11,
        r.r10,
        r.r9,
        r.r8,
        r.rax,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        0, // orig_rax
        r.rip,
        u64::from(s.cs.selector),
        r.rflags,
        r.rsp,
        u64::from(s.ss.selector),
        s.fs.base,
        s.gs.base,
        u64::from(s.ds.selector),
        u64::from(s.es.selector),
        u64::from(s.fs.selector),
        u64::from(s.gs.selector),
    ];
    if let Some(frame) = halt_trap_frame(&r, ram, ending) {
        regs[16] = frame.rip;
        regs[17] = frame.cs;
        regs[18] = frame.rflags;
        regs[19] = frame.rsp;
        regs[20] = frame.ss;
    }
    Some(regs)
}

/// The trap frame of the HALT that ended the guest, if it gave one. The
/// vCPU stopped at the HALT's `OUT`, so its DX holds the port and its EAX
/// the argument's address (§5); the HALT handler checked both already.
fn halt_trap_frame(r: &Registers, ram: &GuestRam, ending: Ending) -> Option<TrapFrame> {
    let Ending::Exit(status) = ending else {
        return None;
    };
    if r.rdx & 0xffff != u64::from(PIO_BASE + nr::HALT) {
        return None;
    }
    let arg = halt::read(ram, r.rax & 0xffff_ffff).ok()?;
    if halt::exit_code(&arg) != status {
        return None;
    }
    halt::trap_frame(ram, &arg).ok()?
}

/// The ELF header, the two program headers and the note.
fn headers(mem_size: u64, regs: &[u64; 27]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MEMORY_OFFSET);
    let u16le = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_le_bytes());
    let u32le = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    let u64le = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_le_bytes());
    // e_ident: ELFCLASS64, little-endian, EV_CURRENT, ELFOSABI_STANDALONE.
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 255]);
    out.extend_from_slice(&[0; 8]);
    u16le(&mut out, 4); // ET_CORE
    u16le(&mut out, 62); // EM_X86_64
    u32le(&mut out, 1); // EV_CURRENT
    u64le(&mut out, 0); // e_entry
    u64le(&mut out, u64::from(EHDR_SIZE)); // e_phoff
    u64le(&mut out, 0); // e_shoff
    u32le(&mut out, 0); // e_flags
    u16le(&mut out, EHDR_SIZE);
    u16le(&mut out, PHDR_SIZE);
    u16le(&mut out, 2); // e_phnum
    u16le(&mut out, 0); // e_shentsize
    u16le(&mut out, 0); // e_shnum
    u16le(&mut out, 0); // e_shstrndx
    let phdr = |out: &mut Vec<u8>, kind: u32, flags: u32, offset: u64, size: u64, align: u64| {
        u32le(out, kind);
        u32le(out, flags);
        u64le(out, offset);
        u64le(out, 0); // p_vaddr
        u64le(out, 0); // p_paddr
        u64le(out, size); // p_filesz
        u64le(out, size); // p_memsz
        u64le(out, align);
    };
    phdr(&mut out, 4, 0, NOTE_OFFSET as u64, NOTE_SIZE as u64, 0); // PT_NOTE
    phdr(&mut out, 1, 7, MEMORY_OFFSET as u64, mem_size, PAGE as u64); // PT_LOAD, RWX
    u32le(&mut out, 5); // n_namesz: "CORE" and its NUL
    u32le(&mut out, PRSTATUS_SIZE);
    u32le(&mut out, 1); // NT_PRSTATUS
    out.extend_from_slice(NOTE_NAME);
    let prstatus = out.len();
    out.resize(prstatus + PRSTATUS_REGS, 0);
    for reg in regs {
        u64le(&mut out, *reg);
    }
    out.resize(prstatus + PRSTATUS_SIZE as usize, 0);
    out
}

/// Writes all of `bytes` at `offset`.
fn pwrite_all(fd: RawFd, bytes: &[u8], offset: usize) -> std::io::Result<()> {
    let offset = libc::off_t::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: pwrite from a slice we borrow, of its own length.
    let n = unsafe { libc::pwrite(fd, bytes.as_ptr().cast(), bytes.len(), offset) };
    match usize::try_from(n) {
        Err(_) => Err(std::io::Error::last_os_error()),
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(n) => Err(std::io::Error::other(format!(
            "short write: {n} of {} bytes",
            bytes.len()
        ))),
    }
}

/// Writes the core to `fd`; the message of the first failure.
fn write_core(
    fd: RawFd,
    vcpu: &dyn Vcpu,
    ram: &GuestRam,
    ending: Ending,
) -> std::result::Result<(), String> {
    let regs =
        core_registers(vcpu, ram, ending).ok_or("Could not retrieve guest state".to_string())?;
    let mem_size = ram.visible_size();
    pwrite_all(fd, &headers(mem_size, &regs), 0)
        .map_err(|e| format!("Error writing ELF headers: {e}"))?;
    let pages = usize::try_from(mem_size).map_err(|e| e.to_string())? / PAGE;
    let (host, _) = ram.host_mapping();
    // Residency a chunk at a time, on the stack: a confined thread may
    // not mmap, which a large heap allocation would.
    let mut resident = [0u8; 4096];
    let mut page = [0u8; PAGE];
    let mut dumped = 0usize;
    for first in (0..pages).step_by(resident.len()) {
        let count = resident.len().min(pages - first);
        // SAFETY: mincore on a page-aligned range of our guest mapping
        // (`count` pages from page `first`, all below the visible size);
        // it writes one byte per page into `resident`, which has room.
        let rc = unsafe {
            libc::mincore(
                host.add(first * PAGE).cast(),
                count * PAGE,
                resident.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(format!(
                "mincore() failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        for (i, state) in resident[..count].iter().enumerate() {
            let number = first + i;
            // The last page always, so that the file has its full length.
            if state & 1 == 0 && number + 1 != pages {
                continue;
            }
            ram.read_bytes((number * PAGE) as u64, &mut page)
                .map_err(|e| e.to_string())?;
            if page.iter().all(|&b| b == 0) && number + 1 != pages {
                continue;
            }
            pwrite_all(fd, &page, MEMORY_OFFSET + number * PAGE)
                .map_err(|e| format!("Error dumping guest memory page {number}: {e}"))?;
            dumped += 1;
        }
    }
    crate::diag::warn(format!(
        "dumpcore: dumped {dumped} pages of total {pages} pages"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_have_their_sizes() {
        let out = headers(2 << 20, &[0; 27]);
        assert_eq!(out.len(), NOTE_OFFSET + NOTE_SIZE);
        assert_eq!(&out[..4], b"\x7fELF");
        assert_eq!(MEMORY_OFFSET, PAGE);
    }
}
