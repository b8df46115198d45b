//! The script of the hostile probes (`hostile`, `hostile-dev`): the command
//! line is a list of steps separated by spaces, run in order, each printing
//! `hostile: STEP => RESULT` when it returns. A step the tender refuses
//! ends the guest there; a script that runs to its end prints
//! `hostile: script done` and exits 0.
//!
//! Values (`ADDR`, `N`, `W`) are a number (decimal or `0x` hex), a symbol,
//! or a symbol or number plus or minus a number (wrapping):
//! `top` (`mem_size`), `buf` (4 MiB: free scratch memory), `text` (guest
//! code), `rodata` (read-only data), `ro_block`, `ro_net`, `ro_poll`
//! (argument structs in read-only data), `bi` (the boot info), `ring` (the
//! network ring, 0 if none), `max` (`u64::MAX`).
//!
//! Steps:
//! * `hc:NR:ADDR[:W,W,...]`: stores the words at ADDR (unaligned, in guest
//!   memory: leave them out where the guest may not store), then
//!   `out 0x500+NR` with EAX the low 32 bits of ADDR; prints the words read
//!   back.
//! * `out:PORT:SIZE:VALUE`, `in:PORT:SIZE`: one port access of 1, 2 or 4
//!   bytes. `outs:PORT:ADDR:COUNT`: `rep outsd` of COUNT dwords from ADDR.
//! * `w8|w32|w64:ADDR:VALUE`: a guest store; `r64:ADDR`: a guest load;
//!   `val:VALUE`: prints the value (what a symbol stands for).
//! * `fill:ADDR:LEN:BYTE`: stores LEN bytes; `dump:ADDR:LEN`: prints them
//!   in hex.
//! * `wait32:ADDR:VALUE:MS`: spins until the u32 at ADDR is VALUE (`ok`) or
//!   MS milliseconds passed (`timeout`).
//! * `say:TEXT`, `sleep:MS` (yield), `exit:STATUS`, `loop` (start again).
//! * Legal but unfriendly: `spin` (no hypercall ever again), `pollspin`
//!   (POLL with timeout 0, forever), `flood:LEN` (PUTS of LEN bytes from
//!   `buf`, forever).
//! * `mmior|mmiow:GPA` (CPL 0 only): loads page tables of our own that map
//!   the first 4 GiB one to one, then reads or writes GPA (past guest
//!   memory: an MMIO exit).
//! * Faults: `ud2`, `int1`, `int3`, `int80`, `div0`, `noncanon` (a load
//!   from a non-canonical address), `rdmsr` (an MSR that does not exist),
//!   `syscall` (EFER.SCE is clear), `hlt`, `cli`, and `vmcall` (KVM's own
//!   hypercall, which the tender never sees).
//!
//! The steps run on a stack at `top / 2`, so that structs at the very top
//! of memory clobber nothing; `mmior`/`mmiow` put their tables at `top / 4`.

use core::arch::asm;
use core::hint::black_box;

use hvt_bindings::abi::hypercall::{nr, BlockIo, NetIo, Poll, Puts, PIO_BASE};
use hvt_bindings::hypercall::hypercall;
use hvt_bindings::{boot, clock, exit, poll, println};

/// Scratch memory for the scripts, above the image and far below the
/// script's stack (with `--mem=64`, as the tests run it).
const BUF: u64 = 0x40_0000;

/// Read-only data of the image, for `rodata`.
static RODATA: [u8; 16] = *b"hostile rodata!\n";

/// Well-formed argument structs in read-only data, for `ro_block` (16
/// bytes from `buf` to the block device's offset 0), `ro_net` (a 60-byte
/// frame from `buf`) and `ro_poll` (100 ms): the tender can read them but
/// not write its results back.
static RO_BLOCK: BlockIo = BlockIo {
    handle: 2,
    offset: 0,
    data: BUF,
    len: 16,
    ret: -1,
    _pad: 0,
};
static RO_NET: NetIo = NetIo {
    handle: 1,
    data: BUF,
    len: 60,
    ret: -1,
    _pad: 0,
};
static RO_POLL: Poll = Poll {
    timeout_nsecs: 100_000_000,
    ready_set: 0,
    ret: -1,
    _pad: 0,
};

/// What the symbols stand for, read once at start: a script may overwrite
/// the boot info through the tender.
struct Symbols {
    top: u64,
    bi: u64,
    ring: u64,
}

fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

impl Symbols {
    fn symbol(&self, name: &str) -> Option<u64> {
        Some(match name {
            "top" => self.top,
            "buf" => BUF,
            "text" => run as *const () as u64,
            "rodata" => RODATA.as_ptr() as u64,
            "ro_block" => &RO_BLOCK as *const BlockIo as u64,
            "ro_net" => &RO_NET as *const NetIo as u64,
            "ro_poll" => &RO_POLL as *const Poll as u64,
            "bi" => self.bi,
            "ring" => self.ring,
            "max" => u64::MAX,
            _ => return number(name),
        })
    }

    /// `BASE`, `BASE+N` or `BASE-N`, wrapping.
    fn value(&self, text: &str) -> Option<u64> {
        match text.find(['+', '-']) {
            Some(at) => {
                let base = self.symbol(&text[..at])?;
                let offset = number(&text[at + 1..])?;
                Some(if text.as_bytes()[at] == b'+' {
                    base.wrapping_add(offset)
                } else {
                    base.wrapping_sub(offset)
                })
            }
            None => self.symbol(text),
        }
    }
}

/// The low 32 bits of `addr`: what EAX carries.
fn low32(addr: u64) -> u32 {
    u32::try_from(addr & 0xffff_ffff).unwrap_or(0)
}

fn ptr(addr: u64) -> *mut u8 {
    usize::try_from(addr).unwrap_or(0) as *mut u8
}

fn store_bytes(addr: u64, bytes: &[u8]) {
    for (i, byte) in bytes.iter().enumerate() {
        // SAFETY: the script names the address; storing there is the point
        // (a fault ends the guest, as the tests expect).
        unsafe { ptr(addr.wrapping_add(i as u64)).write_volatile(*byte) };
    }
}

fn load_u64(addr: u64) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, byte) in bytes.iter_mut().enumerate() {
        // SAFETY: as in `store_bytes`, for a load.
        *byte = unsafe { ptr(addr.wrapping_add(i as u64)).read_volatile() };
    }
    u64::from_le_bytes(bytes)
}

fn load_u32(addr: u64) -> u32 {
    // SAFETY: as in `store_bytes`; the ring's counters are aligned.
    unsafe { (ptr(addr) as *const u32).read_volatile() }
}

fn out(port: u16, size: u64, value: u64) {
    // SAFETY: an arbitrary port write, on purpose.
    unsafe {
        match size {
            1 => asm!("out dx, al", in("dx") port, in("al") value.to_le_bytes()[0]),
            2 => {
                asm!("out dx, ax", in("dx") port, in("ax") u16::try_from(value & 0xffff).unwrap_or(0))
            }
            _ => asm!("out dx, eax", in("dx") port, in("eax") low32(value)),
        }
    }
}

fn port_in(port: u16, size: u64) -> u64 {
    let value: u32;
    // SAFETY: an arbitrary port read, on purpose.
    unsafe {
        match size {
            1 => asm!("xor eax, eax", "in al, dx", in("dx") port, out("eax") value),
            2 => asm!("xor eax, eax", "in ax, dx", in("dx") port, out("eax") value),
            _ => asm!("in eax, dx", in("dx") port, out("eax") value),
        }
    }
    u64::from(value)
}

/// What the script runs with, on its own stack.
struct Script<'a> {
    symbols: Symbols,
    steps: &'a str,
    status: i32,
}

/// Runs `script`; returns the exit status if it ends without a fault.
///
/// The script runs on a stack of its own in the middle of memory, so that
/// argument structs and buffers at the very top of memory, where the
/// tender put the initial stack, clobber nothing live.
pub fn run(script: &str) -> i32 {
    let Some(info) = boot::boot_info() else {
        println!("hostile: no boot info");
        return 2;
    };
    let mut script = Script {
        symbols: Symbols {
            top: info.mem_size,
            bi: info as *const _ as u64,
            ring: info.net_ring,
        },
        steps: script,
        status: 2,
    };
    let stack_top = (script.symbols.top / 2) & !0xfff;
    // SAFETY: `stack_top` is in free guest memory, 16-byte aligned, with
    // megabytes below it; r12 (callee-saved, so kept by `steps_on`) holds
    // the old stack pointer across the call, which gets a valid `Script`.
    unsafe {
        asm!(
            "mov r12, rsp",
            "mov rsp, rsi",
            "call {steps}",
            "mov rsp, r12",
            steps = sym steps_on,
            in("rdi") &mut script as *mut Script<'_>,
            in("rsi") stack_top,
            out("r12") _,
            clobber_abi("C"),
        );
    }
    script.status
}

/// Runs the steps of `*script` and stores the exit status there.
extern "C" fn steps_on(script: *mut Script<'_>) {
    // SAFETY: `run` passes its own `Script`, alive for the call.
    let script = unsafe { &mut *script };
    script.status = steps(&script.symbols, script.steps);
}

fn steps(symbols: &Symbols, script: &str) -> i32 {
    'again: loop {
        for step in script.split(' ').filter(|s| !s.is_empty()) {
            if step == "loop" {
                continue 'again;
            }
            if step.starts_with("--solo5:") {
                continue;
            }
            if let Err(why) = execute(symbols, step) {
                println!("hostile: bad step '{step}': {why}");
                return 2;
            }
        }
        break;
    }
    println!("hostile: script done");
    0
}

/// The `n`th `:`-separated field of a step, as a value.
fn field(symbols: &Symbols, fields: &[&str], n: usize) -> Result<u64, &'static str> {
    let text = fields.get(n).ok_or("missing field")?;
    symbols.value(text).ok_or("bad value")
}

fn port(value: u64) -> Result<u16, &'static str> {
    u16::try_from(value).map_err(|_| "bad port")
}

fn execute(symbols: &Symbols, step: &str) -> Result<(), &'static str> {
    let mut fields = [""; 5];
    let mut count = 0;
    for part in step.splitn(5, ':') {
        fields[count] = part;
        count += 1;
    }
    let fields = &fields[..count];
    let arg = |n| field(symbols, fields, n);
    match fields[0] {
        "hc" => {
            let number = u16::try_from(arg(1)?).map_err(|_| "bad number")?;
            let addr = arg(2)?;
            let mut words = [0u64; 8];
            let mut n = 0;
            if let Some(list) = fields.get(3) {
                for word in list.split(',') {
                    *words.get_mut(n).ok_or("too many words")? =
                        symbols.value(word).ok_or("bad word")?;
                    n += 1;
                }
            }
            for (i, word) in words[..n].iter().enumerate() {
                store_bytes(addr.wrapping_add(8 * i as u64), &word.to_le_bytes());
            }
            out(PIO_BASE.wrapping_add(number), 4, addr);
            let mut line = Line::new(step);
            for i in 0..n {
                line.word(load_u64(addr.wrapping_add(8 * i as u64)));
            }
        }
        "out" => {
            out(port(arg(1)?)?, arg(2)?, arg(3)?);
            Line::new(step);
        }
        "in" => Line::new(step).word(port_in(port(arg(1)?)?, arg(2)?)),
        "outs" => {
            let (port, addr, count) = (port(arg(1)?)?, arg(2)?, arg(3)?);
            // SAFETY: string port I/O from memory the script names.
            unsafe {
                asm!("rep outsd", in("dx") port, inout("rsi") addr => _,
                     inout("rcx") count => _)
            };
            Line::new(step);
        }
        "w8" => {
            store_bytes(arg(1)?, &arg(2)?.to_le_bytes()[..1]);
            Line::new(step);
        }
        "w32" => {
            store_bytes(arg(1)?, &arg(2)?.to_le_bytes()[..4]);
            Line::new(step);
        }
        "w64" => {
            store_bytes(arg(1)?, &arg(2)?.to_le_bytes());
            Line::new(step);
        }
        "r64" => Line::new(step).word(load_u64(arg(1)?)),
        "val" => Line::new(step).word(arg(1)?),
        "fill" => {
            let (addr, len, byte) = (arg(1)?, arg(2)?, arg(3)?);
            let byte = byte.to_le_bytes()[0];
            for i in 0..len {
                store_bytes(addr.wrapping_add(i), &[byte]);
            }
            Line::new(step);
        }
        "dump" => {
            let (addr, len) = (arg(1)?, arg(2)?);
            let mut line = Line::new(step);
            for i in 0..len {
                // SAFETY: as in `store_bytes`, for a load.
                line.byte(unsafe { ptr(addr.wrapping_add(i)).read_volatile() });
            }
        }
        "wait32" => {
            let (addr, value, ms) = (arg(1)?, arg(2)?, arg(3)?);
            let deadline = clock::monotonic_ns().saturating_add(ms.saturating_mul(1_000_000));
            let mut seen = load_u32(addr);
            while u64::from(seen) != value && clock::monotonic_ns() < deadline {
                core::hint::spin_loop();
                seen = load_u32(addr);
            }
            Line::new(step).text(if u64::from(seen) == value {
                "ok"
            } else {
                "timeout"
            });
        }
        "say" => {
            // A marker the test waits for: out now, whatever comes next
            // (a guest that then spins never yields to flush it).
            println!("hostile: {}", fields.get(1).unwrap_or(&""));
            hvt_bindings::console::flush();
        }
        "sleep" => {
            let deadline = clock::monotonic_ns().saturating_add(arg(1)?.saturating_mul(1_000_000));
            while clock::monotonic_ns() < deadline {
                poll::yield_until(deadline);
            }
            Line::new(step);
        }
        "exit" => exit::exit(i32::try_from(arg(1)? & 0xffff_ffff).unwrap_or(-1)),
        "spin" => loop {
            core::hint::spin_loop();
        },
        "pollspin" => loop {
            let mut arg = Poll::default();
            // SAFETY: a POLL argument on our stack.
            unsafe { hypercall(nr::POLL, &mut arg) };
        },
        "flood" => {
            let len = arg(1)?;
            for i in 0..len {
                let byte = if i + 1 == len { b'\n' } else { b'x' };
                store_bytes(BUF.wrapping_add(i), &[byte]);
            }
            loop {
                let mut arg = Puts { data: BUF, len };
                // SAFETY: a PUTS argument naming the scratch buffer.
                unsafe { hypercall(nr::PUTS, &mut arg) };
            }
        }
        "mmior" | "mmiow" => {
            let gpa = arg(1)?;
            identity_map_4g(symbols);
            if fields[0] == "mmior" {
                black_box(load_u64(gpa));
            } else {
                store_bytes(gpa, &[1]);
            }
            Line::new(step);
        }
        fault => {
            fault_on(fault)?;
            Line::new(step);
        }
    }
    Ok(())
}

/// Loads page tables of our own that map the first 4 GiB one to one, also
/// what lies past guest memory (privileged: at CPL 3 the load faults).
fn identity_map_4g(symbols: &Symbols) {
    // Six pages, 4 KiB aligned, a quarter of the way up memory (the
    // script's stack is at half): PML4, PDPT, four page directories.
    let base = (symbols.top / 4) & !0xfff;
    let entry = |addr: u64, flags: u64| (addr | flags).to_le_bytes();
    const PRESENT_RW: u64 = 0x3;
    const PAGE_2M: u64 = 0x80;
    store_bytes(base, &entry(base + 0x1000, PRESENT_RW));
    for pd in 0..4u64 {
        store_bytes(
            base + 0x1000 + 8 * pd,
            &entry(base + 0x2000 + 0x1000 * pd, PRESENT_RW),
        );
        for i in 0..512u64 {
            let addr = ((pd << 9) | i) << 21;
            store_bytes(
                base + 0x2000 + 0x1000 * pd + 8 * i,
                &entry(addr, PRESENT_RW | PAGE_2M),
            );
        }
    }
    // SAFETY: the new tables map all guest memory where it was, so the code,
    // the stack and the data stay where they are.
    unsafe { asm!("mov cr3, {}", in(reg) base) };
}

/// Executes the instruction `name` stands for; most never return.
fn fault_on(name: &str) -> Result<(), &'static str> {
    match name {
        // SAFETY: #UD on purpose; the guest does not come back (at CPL 3 the
        // tender's trap path ends it, at CPL 0 there is no IDT).
        "ud2" => unsafe { asm!("ud2") },
        // SAFETY: #BP on purpose, as above.
        "int3" => unsafe { asm!("int3") },
        // SAFETY: a software interrupt with no IDT: #GP, as above.
        "int80" => unsafe { asm!("int 0x80") },
        // SAFETY: ICEBP, a #DB with no IDT, as above.
        "int1" => unsafe { asm!(".byte 0xf1") },
        // SAFETY: a KVM hypercall: handled (or refused) in the host kernel,
        // or #UD; the tender never sees it.
        "vmcall" => unsafe { asm!("vmcall", inout("rax") 0u64 => _) },
        "div0" => {
            let zero: u32 = black_box(0);
            // SAFETY: divides by zero (#DE) on purpose.
            unsafe {
                asm!("div ecx", in("ecx") zero, inout("eax") 1u32 => _, inout("edx") 0u32 => _)
            }
        }
        "noncanon" => {
            let value = load_u64(0x8000_0000_0000_0000);
            black_box(value);
        }
        // SAFETY: reads an MSR that does not exist (#GP at any CPL).
        "rdmsr" => unsafe { asm!("rdmsr", in("ecx") 0x4b56_4dffu32, out("eax") _, out("edx") _) },
        // SAFETY: SYSCALL with EFER.SCE clear raises #UD.
        "syscall" => unsafe { asm!("syscall", out("rcx") _, out("r11") _) },
        // SAFETY: privileged at CPL 3 (#GP); at CPL 0 a halt with no interrupt.
        "hlt" => unsafe { asm!("hlt") },
        // SAFETY: allowed at CPL 3 with IOPL 3, and at CPL 0: interrupts are
        // off already.
        "cli" => unsafe { asm!("cli") },
        _ => return Err("unknown step"),
    }
    Ok(())
}

/// One result line, `hostile: STEP => ...`, printed when dropped.
struct Line<'a> {
    step: &'a str,
    words: [u64; 8],
    count: usize,
    bytes: [u8; 256],
    byte_count: usize,
    text: &'static str,
}

impl<'a> Line<'a> {
    fn new(step: &'a str) -> Line<'a> {
        Line {
            step,
            words: [0; 8],
            count: 0,
            bytes: [0; 256],
            byte_count: 0,
            text: "",
        }
    }

    fn word(&mut self, word: u64) {
        if let Some(slot) = self.words.get_mut(self.count) {
            *slot = word;
            self.count += 1;
        }
    }

    fn byte(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.byte_count) {
            *slot = byte;
            self.byte_count += 1;
        }
    }

    fn text(&mut self, text: &'static str) {
        self.text = text;
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        use core::fmt::Write;
        let mut console = hvt_bindings::console::Console::default();
        let _ = write!(console, "hostile: {} =>", self.step);
        for word in &self.words[..self.count] {
            let _ = write!(console, " {word:#x}");
        }
        if self.byte_count > 0 {
            let _ = console.write_str(" ");
        }
        for byte in &self.bytes[..self.byte_count] {
            let _ = write!(console, "{byte:02x}");
        }
        if !self.text.is_empty() {
            let _ = write!(console, " {}", self.text);
        }
        let _ = console.write_str("\n");
    }
}
