//! The registers gdb sees: x86-64's core and SSE registers (as
//! `gdbstub_arch` lays them out) and the FS and GS bases after them.
//!
//! `gdbstub_arch`'s x86-64 description names no registers of its own, so
//! gdb falls back to a layout without `fs_base`/`gs_base`. The bases
//! matter here: a guest's thread-local storage (Rust's and Solo5's TLS)
//! hangs off FS. This description therefore lists every register, in the
//! order of the `g` packet: the core (0-39), SSE (40-56), then the
//! segment bases (57, 58) of gdb's `org.gnu.gdb.i386.segments` feature.

use gdbstub::arch::{Arch, Registers};
use gdbstub_arch::x86::reg::id::X86_64CoreRegId;
use gdbstub_arch::x86::reg::X86_64CoreRegs;

/// x86-64 with SSE and the segment bases.
pub enum X86_64WithBases {}

impl Arch for X86_64WithBases {
    type Usize = u64;
    type Registers = RegistersWithBases;
    // Only used for single-register access, which the stub leaves to `g`.
    type RegId = X86_64CoreRegId;
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        Some(TARGET_XML)
    }
}

/// The `g` packet: `gdbstub_arch`'s core and SSE registers, then the
/// bases. A base is `None` when a `G` packet did not carry it (gdbstub
/// starts from the default for each `G`): the vCPU's then stays.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RegistersWithBases {
    pub core: X86_64CoreRegs,
    pub fs_base: Option<u64>,
    pub gs_base: Option<u64>,
}

/// The size of the core and SSE part of the `g` packet.
const CORE_BYTES: usize = 0x218;

impl Registers for RegistersWithBases {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.core.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        self.core.gdb_serialize(&mut write_byte);
        for base in [self.fs_base, self.gs_base] {
            for i in 0..8 {
                write_byte(base.map(|b| b.to_le_bytes()[i]));
            }
        }
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        self.core.gdb_deserialize(bytes)?;
        let base = |at: usize| -> Option<u64> {
            let word = bytes.get(at..at + 8)?;
            Some(u64::from_le_bytes(word.try_into().ok()?))
        };
        self.fs_base = base(CORE_BYTES);
        self.gs_base = base(CORE_BYTES + 8);
        Ok(())
    }
}

/// The x87 tag word gdb shows (two bits a physical register: 00 valid,
/// 01 zero, 10 special, 11 empty) from `FXSAVE`'s abridged one (a bit a
/// register: in use or empty) and the registers' values, as `FSAVE` would
/// give it. `st` is in stack order: ST(i) is physical register
/// (TOP + i) mod 8, TOP in bits 11-13 of the status word.
pub fn full_tag_word(abridged: u8, status: u16, st: &[[u8; 10]; 8]) -> u16 {
    let top = usize::from((status >> 11) & 7);
    let mut tags = 0u16;
    for physical in 0..8 {
        let tag = if abridged & (1 << physical) == 0 {
            0b11
        } else {
            let value = &st[(physical + 8 - top) % 8];
            let mantissa = u64::from_le_bytes(value[..8].try_into().unwrap_or([0; 8]));
            let exponent = u16::from_le_bytes([value[8], value[9]]) & 0x7fff;
            match exponent {
                0 if mantissa == 0 => 0b01,
                0 | 0x7fff => 0b10,
                // A normal number has its integer bit set.
                _ if mantissa >> 63 == 1 => 0b00,
                _ => 0b10,
            }
        };
        tags |= tag << (2 * physical);
    }
    tags
}

/// `FXSAVE`'s abridged tag word from gdb's full one: in use unless empty.
pub fn abridged_tag_word(full: u16) -> u8 {
    (0..8)
        .filter(|physical| (full >> (2 * physical)) & 0b11 != 0b11)
        .fold(0, |abridged, physical| abridged | (1 << physical))
}

/// The target description gdb reads (`qXfer:features:read`). Register
/// names are the ones gdb's amd64 support looks up; the numbers follow
/// the `g` packet.
const TARGET_XML: &str = r#"<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
<architecture>i386:x86-64</architecture>
<feature name="org.gnu.gdb.i386.core">
<flags id="x86_64_rflags" size="4">
<field name="CF" start="0" end="0"/>
<field name="PF" start="2" end="2"/>
<field name="AF" start="4" end="4"/>
<field name="ZF" start="6" end="6"/>
<field name="SF" start="7" end="7"/>
<field name="TF" start="8" end="8"/>
<field name="IF" start="9" end="9"/>
<field name="DF" start="10" end="10"/>
<field name="OF" start="11" end="11"/>
<field name="NT" start="14" end="14"/>
<field name="RF" start="16" end="16"/>
<field name="VM" start="17" end="17"/>
<field name="AC" start="18" end="18"/>
<field name="VIF" start="19" end="19"/>
<field name="VIP" start="20" end="20"/>
<field name="ID" start="21" end="21"/>
</flags>
<reg name="rax" bitsize="64" type="int64" regnum="0"/>
<reg name="rbx" bitsize="64" type="int64"/>
<reg name="rcx" bitsize="64" type="int64"/>
<reg name="rdx" bitsize="64" type="int64"/>
<reg name="rsi" bitsize="64" type="int64"/>
<reg name="rdi" bitsize="64" type="int64"/>
<reg name="rbp" bitsize="64" type="data_ptr"/>
<reg name="rsp" bitsize="64" type="data_ptr"/>
<reg name="r8" bitsize="64" type="int64"/>
<reg name="r9" bitsize="64" type="int64"/>
<reg name="r10" bitsize="64" type="int64"/>
<reg name="r11" bitsize="64" type="int64"/>
<reg name="r12" bitsize="64" type="int64"/>
<reg name="r13" bitsize="64" type="int64"/>
<reg name="r14" bitsize="64" type="int64"/>
<reg name="r15" bitsize="64" type="int64"/>
<reg name="rip" bitsize="64" type="code_ptr"/>
<reg name="eflags" bitsize="32" type="x86_64_rflags"/>
<reg name="cs" bitsize="32" type="int32"/>
<reg name="ss" bitsize="32" type="int32"/>
<reg name="ds" bitsize="32" type="int32"/>
<reg name="es" bitsize="32" type="int32"/>
<reg name="fs" bitsize="32" type="int32"/>
<reg name="gs" bitsize="32" type="int32"/>
<reg name="st0" bitsize="80" type="i387_ext"/>
<reg name="st1" bitsize="80" type="i387_ext"/>
<reg name="st2" bitsize="80" type="i387_ext"/>
<reg name="st3" bitsize="80" type="i387_ext"/>
<reg name="st4" bitsize="80" type="i387_ext"/>
<reg name="st5" bitsize="80" type="i387_ext"/>
<reg name="st6" bitsize="80" type="i387_ext"/>
<reg name="st7" bitsize="80" type="i387_ext"/>
<reg name="fctrl" bitsize="32" type="int" group="float"/>
<reg name="fstat" bitsize="32" type="int" group="float"/>
<reg name="ftag" bitsize="32" type="int" group="float"/>
<reg name="fiseg" bitsize="32" type="int" group="float"/>
<reg name="fioff" bitsize="32" type="int" group="float"/>
<reg name="foseg" bitsize="32" type="int" group="float"/>
<reg name="fooff" bitsize="32" type="int" group="float"/>
<reg name="fop" bitsize="32" type="int" group="float"/>
</feature>
<feature name="org.gnu.gdb.i386.sse">
<vector id="v4f" type="ieee_single" count="4"/>
<vector id="v2d" type="ieee_double" count="2"/>
<vector id="v16i8" type="int8" count="16"/>
<vector id="v8i16" type="int16" count="8"/>
<vector id="v4i32" type="int32" count="4"/>
<vector id="v2i64" type="int64" count="2"/>
<union id="vec128">
<field name="v4_float" type="v4f"/>
<field name="v2_double" type="v2d"/>
<field name="v16_int8" type="v16i8"/>
<field name="v8_int16" type="v8i16"/>
<field name="v4_int32" type="v4i32"/>
<field name="v2_int64" type="v2i64"/>
<field name="uint128" type="uint128"/>
</union>
<reg name="xmm0" bitsize="128" type="vec128" regnum="40"/>
<reg name="xmm1" bitsize="128" type="vec128"/>
<reg name="xmm2" bitsize="128" type="vec128"/>
<reg name="xmm3" bitsize="128" type="vec128"/>
<reg name="xmm4" bitsize="128" type="vec128"/>
<reg name="xmm5" bitsize="128" type="vec128"/>
<reg name="xmm6" bitsize="128" type="vec128"/>
<reg name="xmm7" bitsize="128" type="vec128"/>
<reg name="xmm8" bitsize="128" type="vec128"/>
<reg name="xmm9" bitsize="128" type="vec128"/>
<reg name="xmm10" bitsize="128" type="vec128"/>
<reg name="xmm11" bitsize="128" type="vec128"/>
<reg name="xmm12" bitsize="128" type="vec128"/>
<reg name="xmm13" bitsize="128" type="vec128"/>
<reg name="xmm14" bitsize="128" type="vec128"/>
<reg name="xmm15" bitsize="128" type="vec128"/>
<reg name="mxcsr" bitsize="32" type="int" group="vector"/>
</feature>
<feature name="org.gnu.gdb.i386.segments">
<reg name="fs_base" bitsize="64" type="int" regnum="57"/>
<reg name="gs_base" bitsize="64" type="int"/>
</feature>
</target>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn serialized(regs: &RegistersWithBases) -> Vec<Option<u8>> {
        let mut bytes = Vec::new();
        regs.gdb_serialize(|b| bytes.push(b));
        bytes
    }

    fn known(bytes: &[Option<u8>]) -> Vec<u8> {
        bytes.iter().map(|b| b.unwrap_or(0)).collect()
    }

    #[test]
    fn the_bases_follow_the_core_and_sse_registers() {
        let mut regs = RegistersWithBases {
            fs_base: Some(0x1122_3344_5566_7788),
            gs_base: Some(0x99),
            ..Default::default()
        };
        regs.core.rip = 0x10_0000;
        regs.core.mxcsr = 0x1f80;
        let bytes = serialized(&regs);
        assert_eq!(bytes.len(), CORE_BYTES + 16);
        assert_eq!(known(&bytes[0x80..0x88]), 0x10_0000u64.to_le_bytes());
        assert_eq!(known(&bytes[0x214..0x218]), 0x1f80u32.to_le_bytes());
        assert_eq!(
            known(&bytes[CORE_BYTES..CORE_BYTES + 8]),
            0x1122_3344_5566_7788u64.to_le_bytes()
        );
        assert_eq!(known(&bytes[CORE_BYTES + 8..]), 0x99u64.to_le_bytes());

        // gdbstub deserializes a `G` into a default value.
        let mut back = RegistersWithBases::default();
        back.gdb_deserialize(&known(&bytes)).unwrap();
        assert_eq!(back, regs);
    }

    #[test]
    fn a_g_packet_without_the_bases_leaves_them_unknown_and_a_too_short_one_is_refused() {
        let regs = RegistersWithBases {
            fs_base: Some(7),
            gs_base: Some(8),
            ..Default::default()
        };
        let mut back = RegistersWithBases::default();
        back.gdb_deserialize(&known(&serialized(&regs))[..CORE_BYTES])
            .unwrap();
        assert_eq!((back.fs_base, back.gs_base), (None, None));
        assert!(back.gdb_deserialize(&[0u8; 16]).is_err());
    }

    #[test]
    fn the_tag_word_classes_each_register_and_round_trips() {
        let mut st = [[0u8; 10]; 8];
        // ST(0): 1.0 (integer bit set, biased exponent 0x3fff): valid.
        st[0] = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f];
        // ST(1): +0.0: zero. ST(2): an infinity: special.
        st[2] = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x7f];
        // TOP = 5: ST(0) is physical 5, ST(1) 6, ST(2) 7; 0-4 empty.
        let status = 5 << 11;
        let abridged = 0b1110_0000;
        let full = full_tag_word(abridged, status, &st);
        assert_eq!(full, 0b10_01_00_11_11_11_11_11);
        assert_eq!(abridged_tag_word(full), abridged);
        // The reset state (every register empty) is 0xffff.
        assert_eq!(full_tag_word(0, 0, &[[0; 10]; 8]), 0xffff);
        assert_eq!(abridged_tag_word(0xffff), 0);
    }

    #[test]
    fn the_description_numbers_the_bases_after_the_sse_registers() {
        // 40 core registers, 16 xmm and mxcsr: fs_base is the 58th (57).
        let names: Vec<&str> = TARGET_XML
            .split("<reg name=\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert_eq!(names.len(), 59);
        assert_eq!(names[16], "rip");
        assert_eq!(names[40], "xmm0");
        assert_eq!(names[56], "mxcsr");
        assert_eq!(names[57..], ["fs_base", "gs_base"]);
    }
}
