//! Ethernet addresses of network devices: the `--net-mac` syntax and the
//! random locally administered address given when none is (§4.5).

use std::io;

/// An Ethernet address.
pub type Mac = [u8; 6];

/// Reads `xx:xx:xx:xx:xx:xx` as upstream's `sscanf("%02hhx:...")` reads
/// it: six groups of one or two hex digits (white space before each
/// allowed), separated by colons; whatever follows the sixth is ignored.
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut rest = text.as_bytes();
    for (i, byte) in mac.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(b":")?;
        }
        let start = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        rest = &rest[start..];
        let digits = rest
            .iter()
            .take(2)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if digits == 0 {
            return None;
        }
        let group = std::str::from_utf8(&rest[..digits]).ok()?;
        *byte = u8::from_str_radix(group, 16).ok()?;
        rest = &rest[digits..];
    }
    Some(mac)
}

/// `mac` with the multicast bit cleared and the locally-administered bit
/// set (§4.5).
pub fn local_unicast(mut mac: Mac) -> Mac {
    mac[0] = (mac[0] & !0x01) | 0x02;
    mac
}

/// A random locally-administered unicast MAC, from getrandom(2).
pub fn random_mac() -> io::Result<Mac> {
    let mut mac = [0u8; 6];
    let mut filled = 0;
    while filled < mac.len() {
        let rest = &mut mac[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // n is at most rest.len(): getrandom never reports more.
        filled += n.unsigned_abs();
    }
    Ok(local_unicast(mac))
}

/// `xx:xx:xx:xx:xx:xx`.
pub fn format_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_syntax() {
        assert_eq!(
            parse_mac("02:aa:BB:0c:dd:ee"),
            Some([0x02, 0xaa, 0xbb, 0x0c, 0xdd, 0xee])
        );
        assert_eq!(parse_mac("2:0:0:0:0:1"), Some([2, 0, 0, 0, 0, 1]));
        // As sscanf: white space before a group, anything after the sixth.
        let one = Some([2, 0, 0, 0, 0, 1]);
        assert_eq!(parse_mac(" 02: 00:00:00:00:01"), one);
        assert_eq!(parse_mac("02:00:00:00:00:01 "), one);
        assert_eq!(parse_mac("02:00:00:00:00:01:07"), one);
        assert_eq!(parse_mac("02:00:00:00:00:012"), one);
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:",
            "02:00:00:00:00:g0",
            "02-00-00-00-00-01",
            "020:00:00:00:00:01",
            "+2:00:00:00:00:01",
            "020000000001",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?} accepted");
        }
        assert_eq!(
            format_mac(&[0x02, 0xaa, 0, 1, 0x10, 0xff]),
            "02:aa:00:01:10:ff"
        );
    }

    #[test]
    fn random_macs_are_local_unicast() {
        let mut seen = Vec::new();
        for _ in 0..64 {
            let mac = random_mac().unwrap();
            assert_eq!(mac[0] & 0x01, 0, "multicast bit set: {}", format_mac(&mac));
            assert_eq!(mac[0] & 0x02, 0x02, "local bit clear: {}", format_mac(&mac));
            seen.push(mac);
        }
        seen.sort();
        seen.dedup();
        assert!(seen.len() > 60, "random MACs repeat");
        assert_eq!(local_unicast([0xff; 6])[0], 0xfe);
        assert_eq!(local_unicast([0x00; 6])[0], 0x02);
    }
}
