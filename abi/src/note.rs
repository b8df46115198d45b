//! ELF notes that identify an hvt unikernel (§1), and our own note (§12).

use crate::manifest::Mft;

/// Name of both Solo5 notes, NUL included.
pub const SOLO5_NOTE_NAME: &[u8; 6] = b"Solo5\0";
/// `n_type` of the ABI note: the bytes `'A' 'B' 'I' '1'`.
pub const ABI1_NOTE_TYPE: u32 = u32::from_le_bytes(*b"ABI1");
/// `n_type` of the manifest note: the bytes `'M' 'F' 'T' '1'`.
pub const MFT1_NOTE_TYPE: u32 = u32::from_le_bytes(*b"MFT1");
/// Largest accepted `n_descsz` of the ABI note.
pub const ABI1_NOTE_MAX_DESCSZ: u32 = 32;
/// Largest accepted `n_descsz` of the manifest note (64 entries + padding).
pub const MFT1_NOTE_MAX_DESCSZ: u32 = 4 + 8 + 104 * 64;
/// A `PT_NOTE` segment shorter than this makes the executable invalid.
pub const NOTE_MIN_SEGMENT: u64 = 12;
/// Size of the header of a note named "Solo5": 12 bytes + 8 of padded name.
pub const SOLO5_NOTE_HEADER_SIZE: u64 = 20;

/// `abi_target` values.
pub mod target {
    pub const HVT: u32 = 1;
    pub const SPT: u32 = 2;
    pub const VIRTIO: u32 = 3;
    pub const MUEN: u32 = 4;
    pub const GENODE: u32 = 5;
    pub const XEN: u32 = 6;
}

/// `HVT_ABI_VERSION`.
pub const HVT_ABI_VERSION: u32 = 2;

/// A note's `namesz` or `descsz` from a `usize` length: a length that does
/// not fit fails the build (every caller here is evaluated in `const`).
const fn note_size(len: usize) -> u32 {
    assert!(len <= u32::MAX as usize);
    // reason: checked just above, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let size = len as u32;
    size
}

/// The generic 12-byte ELF note header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoteHeader {
    pub namesz: u32,
    pub descsz: u32,
    pub kind: u32,
}

/// Descriptor of the ABI1 note.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AbiDesc {
    pub abi_target: u32,
    pub abi_version: u32,
    pub reserved0: u32,
    pub reserved1: u32,
}

/// The whole ABI1 note, as the bindings place it in `.note.solo5.abi`.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug)]
pub struct AbiNote {
    pub header: NoteHeader,
    pub name: [u8; 8],
    pub desc: AbiDesc,
}

impl AbiNote {
    pub const HVT: AbiNote = AbiNote {
        header: NoteHeader {
            namesz: note_size(SOLO5_NOTE_NAME.len()),
            descsz: note_size(core::mem::size_of::<AbiDesc>()),
            kind: ABI1_NOTE_TYPE,
        },
        name: *b"Solo5\0\0\0",
        desc: AbiDesc {
            abi_target: target::HVT,
            abi_version: HVT_ABI_VERSION,
            reserved0: 0,
            reserved1: 0,
        },
    };
}

/// The whole MFT1 note with `N` manifest entries. The 4 bytes of `pad` are
/// counted in `n_descsz`, so the manifest is 8-byte aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub struct ManifestNote<const N: usize> {
    pub header: NoteHeader,
    pub name: [u8; 8],
    pub pad: [u8; 4],
    pub mft: Mft<N>,
}

impl<const N: usize> ManifestNote<N> {
    pub const fn new(mft: Mft<N>) -> Self {
        ManifestNote {
            header: NoteHeader {
                namesz: note_size(SOLO5_NOTE_NAME.len()),
                descsz: note_size(4 + core::mem::size_of::<Mft<N>>()),
                kind: MFT1_NOTE_TYPE,
            },
            name: *b"Solo5\0\0\0",
            pad: [0; 4],
            mft,
        }
    }
}

/// The OpenBSD identification note of `.note.solo5.not_openbsd` (§1.4).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug)]
pub struct OpenBsdNote {
    pub header: NoteHeader,
    pub name: [u8; 8],
    pub desc: u32,
}

impl OpenBsdNote {
    pub const NOTE: OpenBsdNote = OpenBsdNote {
        header: NoteHeader {
            namesz: 8,
            descsz: 4,
            kind: 1,
        },
        name: *b"OpenBSD\0",
        desc: 0,
    };
}

/// Name of our own note (§12). Deliberately not "Solo5": upstream tenders
/// skip it, ours reads it.
pub const TENDER_NOTE_NAME: &[u8; 8] = b"Tender\0\0";
/// `namesz` of our note ("Tender" + NUL).
pub const TENDER_NOTE_NAMESZ: u32 = 7;
/// `n_type` of our note: the bytes `'U' 'P' 'R' 'V'` (unprivileged).
pub const UNPRIVILEGED_NOTE_TYPE: u32 = u32::from_le_bytes(*b"UPRV");
/// Flag in [`UnprivilegedDesc::flags`]: the guest executes no privileged
/// instruction, so the tender starts it at CPL 3.
pub const UNPRIVILEGED_CPL3: u32 = 1 << 0;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnprivilegedDesc {
    pub flags: u32,
    pub reserved: u32,
}

/// Our note, placed in `.note.tender.unprivileged`.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug)]
pub struct UnprivilegedNote {
    pub header: NoteHeader,
    pub name: [u8; 8],
    pub desc: UnprivilegedDesc,
}

impl UnprivilegedNote {
    pub const CPL3: UnprivilegedNote = UnprivilegedNote {
        header: NoteHeader {
            namesz: TENDER_NOTE_NAMESZ,
            descsz: note_size(core::mem::size_of::<UnprivilegedDesc>()),
            kind: UNPRIVILEGED_NOTE_TYPE,
        },
        name: *TENDER_NOTE_NAME,
        desc: UnprivilegedDesc {
            flags: UNPRIVILEGED_CPL3,
            reserved: 0,
        },
    };
}

crate::assert_layout!(NoteHeader, size = 12, namesz @ 0, descsz @ 4, kind @ 8);
crate::assert_layout!(AbiDesc, size = 16, abi_target @ 0, abi_version @ 4);
crate::assert_layout!(AbiNote, size = 36, header @ 0, name @ 12, desc @ 20);
crate::assert_layout!(ManifestNote<1>, size = 24 + 112, header @ 0, name @ 12, pad @ 20, mft @ 24);
crate::assert_layout!(OpenBsdNote, size = 24, desc @ 20);
crate::assert_layout!(UnprivilegedNote, size = 28, desc @ 20);
const _: () = assert!(ABI1_NOTE_TYPE == 0x3149_4241);
const _: () = assert!(MFT1_NOTE_TYPE == 0x3154_464d);
const _: () = assert!(
    ManifestNote::<1>::new(Mft {
        header: crate::manifest::MftHeader {
            version: 1,
            entries: 1
        },
        entries: [crate::manifest::MftEntry::RESERVED_FIRST]
    })
    .header
    .descsz
        == 116
);
const _: () = assert!(
    ManifestNote::<64>::new(Mft {
        header: crate::manifest::MftHeader {
            version: 1,
            entries: 64
        },
        entries: [crate::manifest::MftEntry::RESERVED_FIRST; 64]
    })
    .header
    .descsz
        == MFT1_NOTE_MAX_DESCSZ
);
