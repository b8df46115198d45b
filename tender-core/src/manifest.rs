//! The application manifest: validation of the note (§4.3) and the tender's
//! working copy that modules fill in and the guest receives (§4.4).

use hvt_abi::manifest::{
    mft_size, MftEntry, MftHeader, MFT_DEV_BLOCK_BASIC, MFT_DEV_NET_BASIC, MFT_MAX_ENTRIES,
    MFT_NAME_SIZE, MFT_RESERVED_FIRST, MFT_VERSION,
};
use vm_memory::ByteValued;

use crate::error::{Error, Result};

const HEADER_SIZE: usize = std::mem::size_of::<MftHeader>();
const ENTRY_SIZE: usize = std::mem::size_of::<MftEntry>();

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<MftEntry>,
}

/// Human name of a device type, as upstream prints it.
pub fn type_name(kind: u32) -> &'static str {
    match kind {
        MFT_DEV_BLOCK_BASIC => "BLOCK_BASIC",
        MFT_DEV_NET_BASIC => "NET_BASIC",
        _ => "UNKNOWN",
    }
}

impl Manifest {
    /// Validates the raw manifest from the MFT1 note. Any failure gives the
    /// one upstream message.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let invalid = || Error::Manifest("Solo5 manifest is invalid".into());
        if bytes.len() < HEADER_SIZE {
            return Err(invalid());
        }
        let mut header = MftHeader::default();
        header.as_mut_slice().copy_from_slice(&bytes[..HEADER_SIZE]);
        let count = header.entries as usize;
        if header.version != MFT_VERSION
            || count > MFT_MAX_ENTRIES
            || count == 0
            || bytes.len() != mft_size(count)
        {
            return Err(invalid());
        }
        let entries: Vec<MftEntry> = bytes[HEADER_SIZE..]
            .chunks_exact(ENTRY_SIZE)
            .map(|raw| {
                let mut entry = MftEntry::ZERO;
                entry.as_mut_slice().copy_from_slice(raw);
                entry
            })
            .collect();
        let first = &entries[0];
        if first.kind != MFT_RESERVED_FIRST || first.name[0] != 0 {
            return Err(invalid());
        }
        if entries
            .iter()
            .any(|e| e.name[MFT_NAME_SIZE - 1] != 0 || e.attached != 0)
        {
            return Err(invalid());
        }
        Ok(Manifest { entries })
    }

    /// Index (= guest handle) of the device `name` of type `kind`.
    pub fn find(&self, name: &str, kind: u32) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.kind == kind && e.name_bytes() == name.as_bytes())
    }

    /// Handles of every device of type `kind`.
    pub fn handles_of(&self, kind: u32) -> impl Iterator<Item = usize> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.kind == kind)
            .map(|(i, _)| i)
    }

    /// The attach check run after module setup (§4.5).
    pub fn check_all_attached(&self) -> Result<()> {
        let missing: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.kind < MFT_RESERVED_FIRST && e.attached == 0)
            .map(|e| {
                format!(
                    "Device '{}' of type {} declared but not attached.",
                    String::from_utf8_lossy(e.name_bytes()),
                    type_name(e.kind)
                )
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Manifest(format!(
            "{}\nAll declared devices must be attached. See --help for syntax.",
            missing.join("\n")
        )))
    }

    /// The bytes the guest receives (header + entries).
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = MftHeader {
            version: MFT_VERSION,
            entries: u32::try_from(self.entries.len())
                .expect("a manifest has at most MFT_MAX_ENTRIES entries"),
        };
        let mut out = Vec::with_capacity(mft_size(self.entries.len()));
        out.extend_from_slice(header.as_slice());
        for entry in &self.entries {
            out.extend_from_slice(entry.as_slice());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(entries: &[MftEntry]) -> Vec<u8> {
        Manifest {
            entries: entries.to_vec(),
        }
        .to_bytes()
    }

    #[test]
    fn accepts_a_well_formed_manifest() {
        let bytes = manifest(&[MftEntry::RESERVED_FIRST, MftEntry::new("storage", 1)]);
        let m = Manifest::parse(&bytes).unwrap();
        assert_eq!(m.find("storage", MFT_DEV_BLOCK_BASIC), Some(1));
        assert_eq!(m.find("storage", MFT_DEV_NET_BASIC), None);
        assert_eq!(m.to_bytes(), bytes);
    }

    #[test]
    fn rejects_every_malformed_manifest() {
        let good = manifest(&[MftEntry::RESERVED_FIRST, MftEntry::new("a", 2)]);
        let mut cases: Vec<Vec<u8>> = vec![good[..7].to_vec(), good[..good.len() - 1].to_vec()];
        let mut bad_version = good.clone();
        bad_version[0] = 2;
        cases.push(bad_version);
        let mut zero_entries = good.clone();
        zero_entries[4] = 0;
        cases.push(zero_entries[..8].to_vec());
        let mut too_many = good.clone();
        too_many[4] = 65;
        cases.push(too_many);
        cases.push(manifest(&[MftEntry::new("a", 2)])); // no reserved entry
        let mut named_reserved = MftEntry::RESERVED_FIRST;
        named_reserved.name[0] = b'x';
        cases.push(manifest(&[named_reserved]));
        let mut attached = MftEntry::new("a", 2);
        attached.attached = 1;
        cases.push(manifest(&[MftEntry::RESERVED_FIRST, attached]));
        let mut unterminated = MftEntry::new("a", 2);
        unterminated.name = [b'a'; MFT_NAME_SIZE];
        cases.push(manifest(&[MftEntry::RESERVED_FIRST, unterminated]));
        for (i, case) in cases.iter().enumerate() {
            let err = Manifest::parse(case).expect_err(&format!("case {i} accepted"));
            assert_eq!(err.to_string(), "Solo5 manifest is invalid");
        }
    }

    #[test]
    fn attach_check_names_each_missing_device() {
        let m = Manifest::parse(&manifest(&[
            MftEntry::RESERVED_FIRST,
            MftEntry::new("disk", 1),
            MftEntry::new("eth", 2),
        ]))
        .unwrap();
        let err = m.check_all_attached().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Device 'disk' of type BLOCK_BASIC declared but not attached.\n\
             Device 'eth' of type NET_BASIC declared but not attached.\n\
             All declared devices must be attached. See --help for syntax."
        );
    }
}
