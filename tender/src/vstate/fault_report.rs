//! The registers in the tender's one-line fault reports: a trap that ends
//! a CPL 3 guest (§12.4) and a triple fault at CPL 3. Both print registers
//! the same way, `name=0xVALUE` separated by spaces, so that one reader
//! (a person, a test, a log scraper) reads both.

use std::fmt::Write;

use tender_core::vm::Registers;

/// How many of [`general_registers`] the triple fault's report shows: RAX
/// to RBP (it has shown no more since before the trap path; a longer line
/// would be a change users see).
pub const TRIPLE_FAULT_GENERAL_REGISTERS: usize = 7;

/// `name=0xvalue` for each field, in order, separated by spaces.
pub fn hex_fields(fields: &[(&str, u64)]) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        if !out.is_empty() {
            out.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{name}=0x{value:x}");
    }
    out
}

/// The general registers but RSP (which the reports show beside RIP), in
/// the order the reports print them: RAX, RBX, RCX, RDX, RSI, RDI, RBP,
/// then R8 to R15.
pub fn general_registers(r: &Registers) -> [(&'static str, u64); 15] {
    [
        ("rax", r.rax),
        ("rbx", r.rbx),
        ("rcx", r.rcx),
        ("rdx", r.rdx),
        ("rsi", r.rsi),
        ("rdi", r.rdi),
        ("rbp", r.rbp),
        ("r8", r.r8),
        ("r9", r.r9),
        ("r10", r.r10),
        ("r11", r.r11),
        ("r12", r.r12),
        ("r13", r.r13),
        ("r14", r.r14),
        ("r15", r.r15),
    ]
}
