//! The trap path of a CPL 3 guest (§12.4): an IDT of 32 exception gates
//! into a tender-written CPL 0 trampoline that reports each trap on
//! [`TRAP_PORT`], and the trap frame as the tender reads it there.
//!
//! One stub per vector, integer only (every CPL 0 instruction is emulated
//! on shadow-paging KVM, and SSE is off at CPL 0 there):
//!
//! ```text
//! push 0              ; only where the CPU pushes no error code
//! push VECTOR
//! push rdx
//! mov  edx, TRAP_PORT
//! out  dx, eax        ; the exit the tender serves (vstate::trap)
//! pop  rdx
//! add  rsp, 16
//! iretq               ; reached only if the tender resumes the guest
//! ```
//!
//! The gates run on TSS.RSP0, the top of the trap stack page; the GDT page
//! is mapped (supervisor, read-only) because delivery and `iretq` read
//! descriptors through the guest's page tables. Nothing here exists for a
//! CPL 0 guest.

use hvt_abi::layout::{
    GDT_TRAP_CODE_SELECTOR, TRAP_IDT_BASE, TRAP_PORT, TRAP_STACK_TOP, TRAP_STUB_SIZE,
    TRAP_TRAMPOLINE_BASE, TRAP_VECTORS, TSS_RSP0_OFFSET, USER_TSS_BASE,
};
use tender_core::error::Result;
use tender_core::memory::GuestRam;

const PAGE: usize = 4096;
/// [`TRAP_VECTORS`] as a vector number.
const VECTORS: u8 = 32;
const _: () = assert!(VECTORS as u64 == TRAP_VECTORS);
/// [`TRAP_STUB_SIZE`] as an offset in the page.
const STUB: usize = 32;
const _: () = assert!(STUB as u64 == TRAP_STUB_SIZE);

/// Whether the CPU pushes an error code for `vector`.
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// One vector's stub (at most 20 bytes).
fn stub(vector: u8) -> Vec<u8> {
    let mut code = Vec::with_capacity(20);
    if !has_error_code(vector) {
        code.extend_from_slice(&[0x6A, 0x00]); // push 0
    }
    code.extend_from_slice(&[0x6A, vector]); // push VECTOR
    code.push(0x52); // push rdx
    let [lo, hi] = TRAP_PORT.to_le_bytes();
    code.extend_from_slice(&[0xBA, lo, hi, 0, 0]); // mov edx, TRAP_PORT
    code.push(0xEF); // out dx, eax
    code.push(0x5A); // pop rdx
    code.extend_from_slice(&[0x48, 0x83, 0xC4, 0x10]); // add rsp, 16
    code.extend_from_slice(&[0x48, 0xCF]); // iretq
    code
}

/// A 64-bit interrupt gate (type 0xE, IST 0) to `target` in the CPL 0 code
/// segment.
fn gate(target: u64, dpl: u8) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0..2].copy_from_slice(&target.to_le_bytes()[0..2]);
    g[2..4].copy_from_slice(&GDT_TRAP_CODE_SELECTOR.to_le_bytes());
    g[5] = 0x80 | (dpl << 5) | 0xE;
    g[6..12].copy_from_slice(&target.to_le_bytes()[2..8]);
    g
}

/// The IDT: `int3` (#BP) and `int1`/#DB reach their gates from CPL 3 (DPL
/// 3, for a debugger's breakpoints and steps); every other gate is DPL 0,
/// so an `int n` of the guest is a #GP on hardware.
fn idt() -> Vec<u8> {
    (0..VECTORS)
        .flat_map(|v| {
            let dpl = if v == 1 || v == 3 { 3 } else { 0 };
            gate(stub_address(v), dpl)
        })
        .collect()
}

/// Where vector `v`'s stub starts.
fn stub_address(v: u8) -> u64 {
    TRAP_TRAMPOLINE_BASE + u64::from(v) * TRAP_STUB_SIZE
}

/// The trampoline page: the stubs, `hlt` everywhere else.
fn trampoline() -> Vec<u8> {
    let mut page = vec![0xF4u8; PAGE];
    for v in 0..VECTORS {
        let at = usize::from(v) * STUB;
        let code = stub(v);
        page[at..at + code.len()].copy_from_slice(&code);
    }
    page
}

/// Writes the IDT, the trampoline and TSS.RSP0 (the TSS itself is written
/// by [`super::gdt::write_gdt`]).
pub fn write_trap_path(ram: &GuestRam) -> Result<()> {
    ram.write_bytes(TRAP_IDT_BASE, &idt())?;
    ram.write_bytes(TRAP_TRAMPOLINE_BASE, &trampoline())?;
    ram.write_bytes(
        USER_TSS_BASE + TSS_RSP0_OFFSET,
        &TRAP_STACK_TOP.to_le_bytes(),
    )
}

/// Whether the vCPU stopped in the trampoline: CS the gates' and RIP in
/// the trampoline page. A guest's own `out` to [`TRAP_PORT`] is not.
pub fn in_trampoline(cs: u16, rip: u64) -> bool {
    cs == GDT_TRAP_CODE_SELECTOR
        && (TRAP_TRAMPOLINE_BASE..TRAP_TRAMPOLINE_BASE + PAGE as u64).contains(&rip)
}

/// What the stub and the CPU left on the trap stack, from the CPL 0 RSP at
/// the `out`: the saved RDX, the vector, the error code (0 where the CPU
/// pushes none), then the CPU's frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackFrame {
    pub rdx: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Offsets in [`StackFrame`] of what a resume may change.
pub const FRAME_RDX: u64 = 0;
pub const FRAME_RIP: u64 = 24;
pub const FRAME_RFLAGS: u64 = 40;
pub const FRAME_RSP: u64 = 48;
/// Bytes of [`StackFrame`].
pub const FRAME_SIZE: usize = 64;

impl StackFrame {
    pub fn from_bytes(b: &[u8; FRAME_SIZE]) -> StackFrame {
        let q = |i: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(word)
        };
        StackFrame {
            rdx: q(0),
            vector: q(1),
            error: q(2),
            rip: q(3),
            cs: q(4),
            rflags: q(5),
            rsp: q(6),
            ss: q(7),
        }
    }
}

/// The mnemonic of an exception vector.
pub fn vector_name(vector: u64) -> &'static str {
    const NAMES: [&str; 22] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ];
    usize::try_from(vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .copied()
        .unwrap_or("reserved")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_fit_and_report_on_the_port() {
        for v in 0..VECTORS {
            let code = stub(v);
            assert!(code.len() as u64 <= TRAP_STUB_SIZE);
            let push = if has_error_code(v) { 0 } else { 2 };
            assert_eq!(&code[push..push + 2], &[0x6A, v]);
            assert_eq!(&code[push + 3..push + 6], &[0xBA, 0xFF, 0x05]);
        }
        assert_eq!(stub(14).len(), 16);
        assert_eq!(stub(3).len(), 18);
    }

    #[test]
    fn gates_lead_to_their_stubs() {
        let table = idt();
        assert_eq!(table.len() as u64, TRAP_VECTORS * 16);
        let g = &table[14 * 16..15 * 16];
        let target = u64::from(u16::from_le_bytes([g[0], g[1]]))
            | u64::from(u16::from_le_bytes([g[6], g[7]])) << 16;
        assert_eq!(target, TRAP_TRAMPOLINE_BASE + 14 * TRAP_STUB_SIZE);
        assert_eq!(u16::from_le_bytes([g[2], g[3]]), 0x18);
        assert_eq!(g[5], 0x8E);
        assert_eq!(table[3 * 16 + 5], 0xEE);
        assert!(in_trampoline(0x18, TRAP_TRAMPOLINE_BASE + 0x1CB));
        assert!(!in_trampoline(0x0B, TRAP_TRAMPOLINE_BASE + 0x1CB));
        assert!(!in_trampoline(0x18, 0x100000));
        assert_eq!(vector_name(14), "#PF");
    }
}
