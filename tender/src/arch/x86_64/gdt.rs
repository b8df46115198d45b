//! The tender's GDT and the segment registers that match it (§3.3, §3.4).

use hvt_abi::layout::{
    GDT_BASE, GDT_CODE_INDEX, GDT_CODE_KERNEL, GDT_CODE_USER, GDT_DATA_INDEX, GDT_DATA_KERNEL,
    GDT_DATA_USER, GDT_LIMIT, GDT_NULL, USER_GDT_LIMIT, USER_TSS_BASE, USER_TSS_IOMAP_OFFSET,
    USER_TSS_IOMAP_SIZE, USER_TSS_LIMIT,
};
use kvm_bindings::kvm_segment;

use super::Privilege;
use tender_core::error::Result;
use tender_core::memory::GuestRam;

/// The three descriptors for `privilege`.
pub fn descriptors(privilege: Privilege) -> [u64; 3] {
    match privilege {
        Privilege::Kernel => [GDT_NULL, GDT_CODE_KERNEL, GDT_DATA_KERNEL],
        Privilege::User => [GDT_NULL, GDT_CODE_USER, GDT_DATA_USER],
    }
}

/// The GDT as written: the three descriptors, and for a CPL 3 guest the
/// DPL 0 code descriptor of its trap path at index 3 (§12.4).
pub fn table(privilege: Privilege) -> Vec<u64> {
    let mut table = descriptors(privilege).to_vec();
    if privilege == Privilege::User {
        table.push(GDT_CODE_KERNEL);
    }
    table
}

/// GDTR limit for `privilege`.
pub fn limit(privilege: Privilege) -> u16 {
    match privilege {
        Privilege::Kernel => GDT_LIMIT,
        Privilege::User => USER_GDT_LIMIT,
    }
}

pub fn write_gdt(ram: &GuestRam, privilege: Privilege) -> Result<()> {
    let bytes: Vec<u8> = table(privilege)
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    ram.write_bytes(GDT_BASE, &bytes)?;
    if privilege == Privilege::User {
        write_user_tss(ram)?;
        super::traps::write_trap_path(ram)?;
    }
    Ok(())
}

/// The TSS of an unprivileged guest: zero but for the I/O bitmap offset and
/// the bitmap's terminating all-ones byte (memory is zero-filled already).
fn write_user_tss(ram: &GuestRam) -> Result<()> {
    ram.write_bytes(USER_TSS_BASE + 102, &USER_TSS_IOMAP_OFFSET.to_le_bytes())?;
    let last = USER_TSS_BASE + u64::from(USER_TSS_IOMAP_OFFSET) + USER_TSS_IOMAP_SIZE - 1;
    ram.write_bytes(last, &[0xFF])
}

/// TR for `privilege`: upstream's empty busy TSS, or the unprivileged TSS.
pub fn task_register(privilege: Privilege) -> kvm_segment {
    let (base, limit) = match privilege {
        Privilege::Kernel => (0, 0),
        Privilege::User => (USER_TSS_BASE, USER_TSS_LIMIT),
    };
    kvm_segment {
        base,
        limit,
        selector: 0,
        type_: 11,
        present: 1,
        s: 0,
        ..Default::default()
    }
}

/// Decodes a descriptor into KVM's segment form, the way KVM expects the
/// hidden part of a loaded segment register. `index` is the GDT index.
pub fn segment_from_descriptor(index: u16, descriptor: u64) -> kvm_segment {
    let base = ((descriptor >> 16) & 0xFF_FFFF) | ((descriptor >> 32) & 0xFF00_0000);
    let raw_limit = (descriptor & 0xFFFF) | ((descriptor >> 32) & 0xF_0000);
    let granular = (descriptor >> 55) & 1;
    let limit = if granular == 1 {
        (raw_limit << 12) | 0xFFF
    } else {
        raw_limit
    };
    let dpl = ((descriptor >> 45) & 3) as u8;
    kvm_segment {
        base,
        // At most 20 bits shifted by 12, ORed with 0xFFF: 32 bits.
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        // KVM takes the selector in bytes; the RPL equals the DPL.
        selector: (index << 3) | u16::from(dpl),
        type_: ((descriptor >> 40) & 0xF) as u8,
        present: ((descriptor >> 47) & 1) as u8,
        dpl,
        db: ((descriptor >> 54) & 1) as u8,
        s: ((descriptor >> 44) & 1) as u8,
        l: ((descriptor >> 53) & 1) as u8,
        g: granular as u8,
        avl: ((descriptor >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// CS and the data segment (for SS, DS, ES, FS, GS).
pub fn code_and_data(privilege: Privilege) -> (kvm_segment, kvm_segment) {
    let gdt = descriptors(privilege);
    (
        segment_from_descriptor(GDT_CODE_INDEX, gdt[GDT_CODE_INDEX as usize]),
        segment_from_descriptor(GDT_DATA_INDEX, gdt[GDT_DATA_INDEX as usize]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_segments_match_section_3_4() {
        let (cs, ds) = code_and_data(Privilege::Kernel);
        assert_eq!(
            (cs.selector, cs.base, cs.limit, cs.type_),
            (0x08, 0, 0xFFFF_FFFF, 9)
        );
        assert_eq!(
            (cs.s, cs.dpl, cs.present, cs.l, cs.db, cs.g),
            (1, 0, 1, 1, 0, 1)
        );
        assert_eq!(
            (ds.selector, ds.base, ds.limit, ds.type_),
            (0x10, 0, 0xFFFF_FFFF, 3)
        );
        assert_eq!(
            (ds.s, ds.dpl, ds.present, ds.l, ds.db, ds.g),
            (1, 0, 1, 0, 1, 1)
        );
    }

    #[test]
    fn only_cpl3_gets_the_trap_code_descriptor() {
        assert_eq!(table(Privilege::Kernel), descriptors(Privilege::Kernel));
        assert_eq!(limit(Privilege::Kernel), 23);
        let user = table(Privilege::User);
        assert_eq!(user.len() * 8 - 1, usize::from(limit(Privilege::User)));
        let gates = segment_from_descriptor(3, user[3]);
        assert_eq!((gates.selector, gates.dpl, gates.l), (0x18, 0, 1));
    }

    #[test]
    fn user_segments_differ_only_in_privilege() {
        let (cs, ds) = code_and_data(Privilege::User);
        let (kcs, kds) = code_and_data(Privilege::Kernel);
        assert_eq!(
            (cs.selector, cs.dpl, ds.selector, ds.dpl),
            (0x0B, 3, 0x13, 3)
        );
        assert_eq!(
            kvm_segment {
                selector: 0x08,
                dpl: 0,
                ..cs
            },
            kcs
        );
        assert_eq!(
            kvm_segment {
                selector: 0x10,
                dpl: 0,
                ..ds
            },
            kds
        );
    }
}
