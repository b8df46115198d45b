//! Network devices (§4.6, §6.4): acquire a device declared in the manifest,
//! then read and write Ethernet frames by hypercall.

use hvt_abi::hypercall::{nr, result, NetIo};
use hvt_abi::manifest::MFT_DEV_NET_BASIC;

use crate::boot::manifest_entries;
use crate::hypercall::hypercall;

/// A `solo5_result_t` other than OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// No frame is waiting (`SOLO5_R_AGAIN`).
    Again,
    /// Bad handle or arguments (`SOLO5_R_EINVAL`).
    Invalid,
    /// Anything else (`SOLO5_R_EUNSPEC`).
    Unspecified,
}

fn check(ret: i32) -> Result<(), NetError> {
    match ret {
        result::OK => Ok(()),
        result::AGAIN => Err(NetError::Again),
        result::EINVAL => Err(NetError::Invalid),
        _ => Err(NetError::Unspecified),
    }
}

/// What the tender told the guest about an attached network device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetInfo {
    /// The handle: the device's manifest index.
    pub handle: u64,
    pub mac: [u8; 6],
    /// MTU, without the 14-byte Ethernet header.
    pub mtu: u16,
}

/// `solo5_net_acquire`: the attached network device called `name`.
pub fn acquire(name: &str) -> Result<NetInfo, NetError> {
    let entries = manifest_entries();
    let (index, entry) = entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.kind == MFT_DEV_NET_BASIC && e.name_bytes() == name.as_bytes())
        .ok_or(NetError::Invalid)?;
    if entry.attached == 0 {
        return Err(NetError::Invalid);
    }
    let net = entry.net();
    Ok(NetInfo {
        handle: index as u64,
        mac: net.mac,
        mtu: net.mtu,
    })
}

/// Sends one frame (`solo5_net_write`).
pub fn write(handle: u64, frame: &[u8]) -> Result<(), NetError> {
    let mut arg = NetIo {
        handle,
        data: frame.as_ptr() as u64,
        len: frame.len() as u64,
        ret: 0,
        _pad: 0,
    };
    // SAFETY: a NET_WRITE argument naming a live buffer.
    unsafe { hypercall(nr::NET_WRITE, &mut arg) };
    check(arg.ret)
}

/// Receives one frame into `buffer` (at least MTU + 14 bytes) and returns
/// its length (`solo5_net_read`).
pub fn read(handle: u64, buffer: &mut [u8]) -> Result<usize, NetError> {
    let mut arg = NetIo {
        handle,
        data: buffer.as_mut_ptr() as u64,
        len: buffer.len() as u64,
        ret: 0,
        _pad: 0,
    };
    // SAFETY: a NET_READ argument naming a live, writable buffer.
    unsafe { hypercall(nr::NET_READ, &mut arg) };
    check(arg.ret)?;
    Ok(usize::try_from(arg.len)
        .unwrap_or(usize::MAX)
        .min(buffer.len()))
}
