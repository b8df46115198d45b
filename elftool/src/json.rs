//! Solo5's JSON manifest: `{"type": "solo5.manifest", "version": 1,
//! "devices": [{"name": "service0", "type": "NET_BASIC"}, ...]}`, read
//! strictly (unknown keys are errors, as upstream's tool has them) and
//! checked against what a tender accepts.

use hvt_abi::manifest::{MFT_DEV_BLOCK_BASIC, MFT_DEV_NET_BASIC, MFT_MAX_ENTRIES, MFT_NAME_MAX};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(rename = "type")]
    kind: String,
    version: i64,
    devices: Vec<Device>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Device {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

/// A device of the manifest: its name and `MFT_DEV_*` type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    pub name: String,
    pub kind: u32,
}

/// The devices `text` declares, in order, or why it is not a manifest.
pub fn parse(text: &str) -> Result<Vec<DeviceEntry>, String> {
    let manifest: Manifest =
        serde_json::from_str(text).map_err(|e| format!("JSON parse error: {e}"))?;
    if manifest.kind != "solo5.manifest" {
        return Err(".type: invalid value, expected \"solo5.manifest\"".into());
    }
    if manifest.version != 1 {
        return Err(format!(
            ".version: invalid version {}, expected 1",
            manifest.version
        ));
    }
    // The first entry of every manifest is reserved.
    let max = MFT_MAX_ENTRIES - 1;
    if manifest.devices.len() > max {
        return Err(format!(".devices[]: too many entries, maximum {max}"));
    }
    let mut devices: Vec<DeviceEntry> = Vec::new();
    for device in manifest.devices {
        let name = device.name;
        if name.is_empty() {
            return Err(".devices[...]: .name may not be empty".into());
        }
        if name.len() > MFT_NAME_MAX {
            return Err(format!(".devices[...]: name too long: {name}"));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(".devices[...]: name is not alphanumeric: {name}"));
        }
        let kind = match device.kind.as_str() {
            "BLOCK_BASIC" => MFT_DEV_BLOCK_BASIC,
            "NET_BASIC" => MFT_DEV_NET_BASIC,
            other => return Err(format!(".devices[...]: unknown type: {other}")),
        };
        // Acquiring looks a device up by name and type: a second one of
        // both could never be acquired. (Upstream's tool lets it pass.)
        if devices.iter().any(|d| d.name == name && d.kind == kind) {
            return Err(format!(".devices[...]: name declared twice: {name}"));
        }
        devices.push(DeviceEntry { name, kind });
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(devices: &str) -> String {
        format!(r#"{{"type":"solo5.manifest","version":1,"devices":[{devices}]}}"#)
    }

    #[test]
    fn reads_devices_in_order() {
        let text = manifest(
            r#"{"name":"service0","type":"NET_BASIC"},{"name":"storage","type":"BLOCK_BASIC"}"#,
        );
        assert_eq!(
            parse(&text).unwrap(),
            vec![
                DeviceEntry {
                    name: "service0".into(),
                    kind: MFT_DEV_NET_BASIC
                },
                DeviceEntry {
                    name: "storage".into(),
                    kind: MFT_DEV_BLOCK_BASIC
                },
            ]
        );
        assert_eq!(parse(&manifest("")).unwrap(), vec![]);
    }

    #[test]
    fn refuses_what_a_tender_would_refuse() {
        let device = |name: &str, kind: &str| format!(r#"{{"name":"{name}","type":"{kind}"}}"#);
        let many = |n: usize| {
            (0..n)
                .map(|i| device(&format!("storage{i}"), "BLOCK_BASIC"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(parse(&manifest(&many(63))).is_ok());
        // One name for a network and a block device: both can be acquired.
        let both = format!(
            "{},{}",
            device("a", "NET_BASIC"),
            device("a", "BLOCK_BASIC")
        );
        assert_eq!(parse(&manifest(&both)).unwrap().len(), 2);
        assert_eq!(
            parse(&manifest(&many(64))).unwrap_err(),
            ".devices[]: too many entries, maximum 63"
        );
        for (devices, error) in [
            (device("", "NET_BASIC"), ".name may not be empty"),
            (device(&"a".repeat(68), "NET_BASIC"), "name too long"),
            (device("a-b", "NET_BASIC"), "name is not alphanumeric"),
            (device("a", "DISK"), "unknown type: DISK"),
            (
                format!("{},{}", device("a", "NET_BASIC"), device("a", "NET_BASIC")),
                "name declared twice",
            ),
            (
                r#"{"name":"a","type":"NET_BASIC","mtu":1}"#.into(),
                "unknown field",
            ),
        ] {
            let message = parse(&manifest(&devices)).unwrap_err();
            assert!(message.contains(error), "{message:?} lacks {error:?}");
        }
        assert!(parse(r#"{"type":"x","version":1,"devices":[]}"#)
            .unwrap_err()
            .contains(".type"));
        assert!(
            parse(r#"{"type":"solo5.manifest","version":2,"devices":[]}"#)
                .unwrap_err()
                .contains("invalid version 2")
        );
        assert!(parse("{").unwrap_err().starts_with("JSON parse error"));
    }
}
