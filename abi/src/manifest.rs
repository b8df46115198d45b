//! The application manifest, `struct mft` version 1 (§4.3).

/// The only manifest version.
pub const MFT_VERSION: u32 = 1;
/// Entries including the mandatory reserved first one (`MFT_MAX_ENTRIES`).
pub const MFT_MAX_ENTRIES: usize = 64;
/// Size of the name field, NUL included; names are at most 67 characters.
pub const MFT_NAME_SIZE: usize = 68;
/// Longest device name.
pub const MFT_NAME_MAX: usize = MFT_NAME_SIZE - 1;

/// Device types (`enum mft_type`).
pub const MFT_DEV_BLOCK_BASIC: u32 = 1;
pub const MFT_DEV_NET_BASIC: u32 = 2;
/// Types from here on are reserved and ignored by the attach check.
pub const MFT_RESERVED_FIRST: u32 = 1 << 30;

/// Header of the manifest, followed by `entries` × [`MftEntry`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MftHeader {
    pub version: u32,
    pub entries: u32,
}

/// Block-device view of the 16-byte `u` union.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MftBlockBasic {
    pub capacity: u64,
    pub block_size: u16,
    /// Our extension (§12.6): [`MFT_BLOCK_READ_ONLY`]. Padding, hence 0, in
    /// Solo5, whose guests ignore it.
    pub flags: u8,
    pub _pad: [u8; 5],
}

/// `MftBlockBasic::flags`: the tender refuses writes to this device
/// (`--block-ro:`); BLOCK_WRITE returns `SOLO5_R_EUNSPEC` (§12.6).
pub const MFT_BLOCK_READ_ONLY: u8 = 1 << 0;

/// Network-device view of the 16-byte `u` union.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MftNetBasic {
    pub mac: [u8; 6],
    pub mtu: u16,
    pub _pad: [u8; 8],
}

/// `struct mft_entry`, 104 bytes. The `u` union is kept as raw bytes, with
/// typed accessors, so that every bit pattern from a hostile ELF is a valid
/// value of this type.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MftEntry {
    pub name: [u8; MFT_NAME_SIZE],
    pub kind: u32,
    pub u: [u8; 16],
    /// `b.hostfd` / `b.data`: tender-private.
    pub b: u64,
    /// `bool attached`; a `u8` because the note is untrusted input.
    pub attached: u8,
    pub _pad: [u8; 7],
}

impl MftEntry {
    /// An all-zero entry (empty name, type 0, not attached).
    pub const ZERO: MftEntry = MftEntry {
        name: [0; MFT_NAME_SIZE],
        kind: 0,
        u: [0; 16],
        b: 0,
        attached: 0,
        _pad: [0; 7],
    };

    /// A device entry as a guest declares it: named, not attached.
    /// Panics (at compile time when used in a `const`) if `name` is too long.
    pub const fn new(name: &str, kind: u32) -> MftEntry {
        let bytes = name.as_bytes();
        assert!(bytes.len() <= MFT_NAME_MAX, "manifest device name too long");
        let mut entry = MftEntry::ZERO;
        let mut i = 0;
        while i < bytes.len() {
            entry.name[i] = bytes[i];
            i += 1;
        }
        entry.kind = kind;
        entry
    }

    /// The mandatory first entry.
    pub const RESERVED_FIRST: MftEntry = MftEntry {
        kind: MFT_RESERVED_FIRST,
        ..MftEntry::ZERO
    };

    /// The name up to its first NUL.
    pub fn name_bytes(&self) -> &[u8] {
        let len = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MFT_NAME_SIZE);
        &self.name[..len]
    }

    pub fn block(&self) -> MftBlockBasic {
        let mut capacity = [0u8; 8];
        capacity.copy_from_slice(&self.u[0..8]);
        MftBlockBasic {
            capacity: u64::from_le_bytes(capacity),
            block_size: u16::from_le_bytes([self.u[8], self.u[9]]),
            flags: self.u[10],
            _pad: [0; 5],
        }
    }

    pub fn set_block(&mut self, block: MftBlockBasic) {
        self.u[0..8].copy_from_slice(&block.capacity.to_le_bytes());
        self.u[8..10].copy_from_slice(&block.block_size.to_le_bytes());
        self.u[10] = block.flags;
    }

    pub fn net(&self) -> MftNetBasic {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.u[0..6]);
        MftNetBasic {
            mac,
            mtu: u16::from_le_bytes([self.u[6], self.u[7]]),
            _pad: [0; 8],
        }
    }

    pub fn set_net(&mut self, net: MftNetBasic) {
        self.u[0..6].copy_from_slice(&net.mac);
        self.u[6..8].copy_from_slice(&net.mtu.to_le_bytes());
    }
}

/// Size in bytes of a manifest with `entries` entries.
pub const fn mft_size(entries: usize) -> usize {
    core::mem::size_of::<MftHeader>() + entries * core::mem::size_of::<MftEntry>()
}

/// A manifest of exactly `N` entries, laid out as the note descriptor wants it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Mft<const N: usize> {
    pub header: MftHeader,
    pub entries: [MftEntry; N],
}

crate::assert_layout!(MftHeader, size = 8, version @ 0, entries @ 4);
crate::assert_layout!(MftBlockBasic, size = 16, capacity @ 0, block_size @ 8, flags @ 10);
crate::assert_layout!(MftNetBasic, size = 16, mac @ 0, mtu @ 6);
crate::assert_layout!(MftEntry, size = 104, name @ 0, kind @ 68, u @ 72, b @ 88, attached @ 96);
const _: () = assert!(core::mem::align_of::<MftEntry>() == 8);
const _: () = assert!(mft_size(1) == 112);
const _: () = assert!(mft_size(MFT_MAX_ENTRIES) == 8 + 64 * 104);
