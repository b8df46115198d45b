//! The unikernel image: a static ELF64 x86_64 executable (§1, §2).
//!
//! Everything read from the file is hostile: every offset and size is
//! range-checked before use, and a bad file ends in one error line.

mod header;
mod load;
mod notes;

pub use header::{ElfFile, ProgramHeader, PT_LOAD, PT_NOTE};
pub use load::{load_segments, LoadedImage};
pub use notes::{find_abi_note, find_manifest_note, is_unprivileged, read_manifest};
