//! Boot information for a guest on the host: what a tender writes into
//! guest memory (§4.1, §4.4), but with host addresses, and leaked: the
//! guest keeps it for its life.

use hvt_abi::boot::BootInfo;
use tender_core::manifest::Manifest;

/// `info` with the manifest and command line at leaked host addresses, and
/// its guest-physical `net_ring` (if any) turned into the host address of
/// the same byte of the mock's memory (`host_base` is that of GPA 0).
pub fn leak(
    mut info: BootInfo,
    manifest: &Manifest,
    cmdline: &str,
    host_base: u64,
) -> &'static BootInfo {
    let bytes = manifest.to_bytes();
    // Words, for the alignment of the manifest's structs.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut raw = [0u8; 8];
        raw[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_ne_bytes(raw);
    }
    let mft: &'static [u64] = Box::leak(words.into_boxed_slice());
    let mut line = cmdline.as_bytes().to_vec();
    line.push(0);
    let cmdline: &'static [u8] = Box::leak(line.into_boxed_slice());
    info.cmdline = cmdline.as_ptr() as u64;
    info.mft = mft.as_ptr() as u64;
    if info.net_ring != 0 {
        info.net_ring += host_base;
    }
    Box::leak(Box::new(info))
}
