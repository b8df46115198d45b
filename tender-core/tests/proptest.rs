//! Property tests of tender-core's parsers and of the address check (§5):
//! whatever the input, no panic, and the results keep the invariants the
//! rest of the tender relies on. The fuzz targets (`fuzz/`) go deeper with
//! coverage guidance; these run in every `cargo test`.

use std::sync::Arc;

use hvt_abi::layout::{MAX_MEM_SIZE, MEM_GRANULE};
use hvt_abi::manifest::{
    mft_size, MftEntry, MFT_DEV_BLOCK_BASIC, MFT_DEV_NET_BASIC, MFT_MAX_ENTRIES, MFT_NAME_SIZE,
    MFT_RESERVED_FIRST, MFT_VERSION,
};
use proptest::prelude::*;
use tender_core::devices::console::Console;
use tender_core::devices::disk::BlockBackend;
use tender_core::devices::frame::FrameBackend;
use tender_core::devices::memdisk::MemDisk;
use tender_core::devices::wire::{self, WireConfig};
use tender_core::error::Error;
use tender_core::lifecycle::ModuleSet;
use tender_core::manifest::Manifest;
use tender_core::memory::{check_range, GuestRam};
use tender_core::modules::core::parse_mem;
use tender_core::modules::net::mac::{format_mac, parse_mac};
use tender_core::modules::{self, Host};

const ENTRY_SIZE: usize = std::mem::size_of::<MftEntry>();

// ---------------------------------------------------------------------------
// Manifest::parse (§4.3)

/// The rules of §4.3, written out again from the ABI reference: the
/// reference the parser is compared with.
fn manifest_is_valid(bytes: &[u8]) -> bool {
    let word = |off: usize| u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
    if bytes.len() < 8 {
        return false;
    }
    let (version, count) = (word(0), word(4) as usize);
    if version != MFT_VERSION || count == 0 || count > MFT_MAX_ENTRIES {
        return false;
    }
    if bytes.len() != 8 + count * ENTRY_SIZE {
        return false;
    }
    let entry = |i: usize| &bytes[8 + i * ENTRY_SIZE..8 + (i + 1) * ENTRY_SIZE];
    // Name: 68 bytes at 0; type at 68; attached at 96.
    let first = entry(0);
    if u32::from_le_bytes(first[68..72].try_into().unwrap()) != MFT_RESERVED_FIRST || first[0] != 0
    {
        return false;
    }
    (0..count).all(|i| {
        let e = entry(i);
        e[MFT_NAME_SIZE - 1] == 0 && e[96] == 0
    })
}

/// One entry as a guest may declare it: a NUL-terminated name (any bytes
/// before the NUL), any type, any union bytes, not attached.
fn declared_entry() -> impl Strategy<Value = MftEntry> {
    (
        proptest::collection::vec(any::<u8>(), MFT_NAME_SIZE - 1),
        prop_oneof![
            Just(MFT_DEV_BLOCK_BASIC),
            Just(MFT_DEV_NET_BASIC),
            any::<u32>()
        ],
        any::<[u8; 16]>(),
        any::<u64>(),
        any::<[u8; 7]>(),
    )
        .prop_map(|(name, kind, u, b, pad)| {
            let mut entry = MftEntry::ZERO;
            entry.name[..MFT_NAME_SIZE - 1].copy_from_slice(&name);
            entry.kind = kind;
            entry.u = u;
            entry.b = b;
            entry._pad = pad;
            entry
        })
}

/// A valid manifest: the reserved first entry (any bytes after its empty
/// name) and up to 63 declared entries.
fn valid_manifest() -> impl Strategy<Value = Manifest> {
    (
        declared_entry(),
        proptest::collection::vec(declared_entry(), 0..MFT_MAX_ENTRIES),
    )
        .prop_map(|(mut first, rest)| {
            first.name[0] = 0;
            first.kind = MFT_RESERVED_FIRST;
            Manifest {
                entries: std::iter::once(first).chain(rest).collect(),
            }
        })
}

proptest! {
    #[test]
    fn manifest_parse_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        match Manifest::parse(&bytes) {
            Ok(manifest) => prop_assert_eq!(manifest.to_bytes(), bytes),
            Err(err) => prop_assert_eq!(err.to_string(), "Solo5 manifest is invalid"),
        }
    }

    #[test]
    fn valid_manifests_round_trip(manifest in valid_manifest()) {
        let bytes = manifest.to_bytes();
        prop_assert_eq!(bytes.len(), mft_size(manifest.entries.len()));
        let parsed = Manifest::parse(&bytes);
        prop_assert_eq!(parsed.as_ref(), Ok(&manifest));
        prop_assert_eq!(parsed.unwrap().to_bytes(), bytes);
    }

    /// A valid manifest with one byte changed, cut or extended is accepted
    /// exactly when the rules of §4.3 accept it.
    #[test]
    fn mutated_manifests_are_judged_by_the_rules(
        manifest in valid_manifest(),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
        how in 0..4u8,
    ) {
        let mut bytes = manifest.to_bytes();
        let i = at.index(bytes.len());
        match how {
            0 => bytes[i] = value,
            1 => bytes.truncate(i),
            2 => bytes.push(value),
            // The header, where most of the rules are.
            _ => bytes[i % 8] = value,
        }
        let parsed = Manifest::parse(&bytes);
        prop_assert_eq!(parsed.is_ok(), manifest_is_valid(&bytes), "{:?}", parsed);
        if let Ok(parsed) = parsed {
            prop_assert_eq!(parsed.to_bytes(), bytes);
        }
    }
}

// ---------------------------------------------------------------------------
// --mem (§3.1)

/// What `--mem=N` must give for the number N, from the rules of §3.1 and
/// §8: N MiB in 64 bits (a negative N wraps), refused when that is 0.
fn mem_model(mib: i64) -> Option<u64> {
    let bytes = u64::from_ne_bytes(mib.to_ne_bytes()).wrapping_mul(1 << 20);
    (bytes != 0).then_some(bytes)
}

proptest! {
    #[test]
    fn parse_mem_never_panics_and_sizes_are_whole_mib(value in any::<String>()) {
        if let Ok(size) = parse_mem(&value) {
            prop_assert!(size != 0);
            prop_assert_eq!(size % (1 << 20), 0);
        }
    }

    #[test]
    fn parse_mem_follows_the_rules_for_every_number(
        mib in prop_oneof![-10i64..5000, any::<i64>(), Just(i64::MAX), Just(i64::MIN)],
    ) {
        let parsed = parse_mem(&mib.to_string());
        prop_assert_eq!(parsed.as_ref().ok().copied(), mem_model(mib));
        if let Err(err) = parsed {
            prop_assert!(matches!(err, Error::Argument(_)), "{:?}", err);
        }
    }

    /// As `sscanf("%zd")`: white space before the number and anything
    /// after it do not matter; anything else before it refuses it.
    #[test]
    fn parse_mem_reads_the_number_at_the_start(
        mib in 1i64..5000,
        space in "[ \t\n\r]{0,3}",
        after in "[ a-zA-Z.,=/-]{0,4}",
        junk in "[a-zA-Z.=/]{1,2}",
    ) {
        let decorated = parse_mem(&format!("{space}{mib}{after}"));
        prop_assert_eq!(decorated.ok(), mem_model(mib));
        let refused = parse_mem(&format!("{junk}{mib}")).is_err();
        prop_assert!(refused);
    }

    /// Guest memory as upstream sizes it: whole 2 MiB pages, at least one,
    /// never more than asked for above that.
    #[test]
    fn guest_memory_is_whole_pages(requested in any::<u64>()) {
        let (size, adjusted) = tender_core::lifecycle::size_guest_memory(requested);
        prop_assert_eq!(size % MEM_GRANULE, 0);
        prop_assert!(size >= MEM_GRANULE);
        prop_assert!(size <= requested.max(MEM_GRANULE));
        prop_assert!(requested - size.min(requested) < MEM_GRANULE);
        prop_assert_eq!(adjusted, size != requested);
    }
}

// ---------------------------------------------------------------------------
// The address check (§5)

/// Addresses and lengths near the interesting edges: 0, the limit, 2^32,
/// and the top of the 64-bit space.
fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..64,
        (0u64..64).prop_map(|d| (4u64 << 20) - d),
        (0u64..64).prop_map(|d| (1u64 << 32).wrapping_sub(d)),
        (0u64..64).prop_map(|d| u64::MAX - d),
        (0u64..64).prop_map(|d| (1u64 << 63) - d),
        any::<u64>(),
    ]
}

proptest! {
    #[test]
    fn check_range_is_ok_iff_the_end_is_below_the_limit(
        gpa in edgy_u64(),
        len in edgy_u64(),
        limit in prop_oneof![Just(4u64 << 20), edgy_u64()],
    ) {
        let expected = gpa.checked_add(len).is_some_and(|end| end < limit);
        let got = check_range(gpa, len, limit);
        prop_assert_eq!(got.is_ok(), expected, "gpa={:#x} len={:#x} limit={:#x}", gpa, len, limit);
        if let Err(access) = got {
            prop_assert_eq!((access.gpa, access.len), (gpa, len));
        }
    }
}

/// The guest memory handle applies the same rule, against the visible size.
#[test]
fn guest_ram_checks_agree_with_check_range() {
    let mut ram = GuestRam::new(4 << 20).unwrap();
    ram.reserve_top(2 << 20).unwrap();
    let visible = ram.visible_size();
    proptest!(|(gpa in edgy_u64(), len in edgy_u64())| {
        let expected = check_range(gpa, len, visible).is_ok();
        prop_assert_eq!(ram.check(gpa, len).is_ok(), expected);
        prop_assert_eq!(ram.check_access(gpa, len, true).is_ok(), expected);
        if len < (1 << 16) {
            prop_assert_eq!(ram.slice(gpa, len).is_ok(), expected);
            prop_assert_eq!(ram.slice_mut(gpa, len).is_ok(), expected);
        }
    });
}

// ---------------------------------------------------------------------------
// --net-mac (§4.5)

proptest! {
    #[test]
    fn mac_round_trips_through_its_text(mac in any::<[u8; 6]>()) {
        let text = format_mac(&mac);
        prop_assert_eq!(text.len(), 17);
        prop_assert_eq!(parse_mac(&text), Some(mac));
        prop_assert_eq!(parse_mac(&text.to_uppercase()), Some(mac));
    }

    #[test]
    fn mac_parser_never_panics_and_accepts_only_six_hex_groups(
        text in prop_oneof![
            any::<String>(),
            "[0-9a-fA-F]{0,3}(:[0-9a-fA-FxX+ -]{0,3}){3,7}",
        ],
    ) {
        if let Some(mac) = parse_mac(&text) {
            let groups: Vec<&str> = text.split(':').collect();
            prop_assert_eq!(groups.len(), 6);
            // The text is the formatted MAC, but for case and leading zeros.
            let normalized: Vec<String> = groups
                .iter()
                .map(|g| format!("{:0>2}", g.to_ascii_lowercase()))
                .collect();
            prop_assert_eq!(normalized.join(":"), format_mac(&mac));
        }
    }
}

// ---------------------------------------------------------------------------
// Module options (§4.5, §8), with in-memory back-ends only

/// A manifest with one or two devices of each kind.
fn option_manifest(two_each: bool) -> Manifest {
    let mut entries = vec![
        MftEntry::RESERVED_FIRST,
        MftEntry::new("service0", MFT_DEV_NET_BASIC),
        MftEntry::new("storage", MFT_DEV_BLOCK_BASIC),
    ];
    if two_each {
        entries.push(MftEntry::new("service1", MFT_DEV_NET_BASIC));
        entries.push(MftEntry::new("disk", MFT_DEV_BLOCK_BASIC));
    }
    Manifest { entries }
}

/// The modules with back-ends that never touch the host: the interface
/// `wire0` and the image `mem.img` exist, nothing else does.
fn in_memory_modules() -> ModuleSet {
    let (port, _) = wire::pair(WireConfig::clean(), ["wire0", "peer"]);
    let port: Arc<dyn FrameBackend> = Arc::new(port);
    let disk: Arc<dyn BlockBackend> = Arc::new(MemDisk::new("mem.img", 64 * 1024));
    ModuleSet::new(modules::all(Host {
        console: Arc::new(Console::captured()),
        open_net: Box::new(move |value: &str| match value {
            "wire0" => Ok(port.clone()),
            _ => Err(std::io::Error::from_raw_os_error(libc::ENODEV)),
        }),
        open_block: Box::new(move |value: &str, _read_only: bool| match value {
            "mem.img" => Ok(disk.clone()),
            _ => Err(Error::Device(format!("{value}: no such image"))),
        }),
    }))
}

/// Options near the ones the modules take.
fn module_option() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just("--mem="),
        Just("--net="),
        Just("--net:"),
        Just("--net-mac:"),
        Just("--no-net-ring"),
        Just("--block="),
        Just("--block:"),
        Just("--block-ro:"),
        Just("--block-sector-size:"),
        Just("--"),
    ];
    let name = prop_oneof![
        Just("service0".to_owned()),
        Just("service1".to_owned()),
        Just("storage".to_owned()),
        Just("disk".to_owned()),
        "[A-Za-z0-9_-]{0,5}",
    ];
    let value = prop_oneof![
        Just("wire0".to_owned()),
        Just("mem.img".to_owned()),
        Just("@3".to_owned()),
        Just("02:00:00:00:00:01".to_owned()),
        Just("4096".to_owned()),
        Just("64".to_owned()),
        "[0-9a-f:@=]{0,20}",
        any::<String>(),
    ];
    (prefix, name, any::<bool>(), value).prop_map(|(prefix, name, named, value)| {
        if prefix.ends_with(':') && named {
            format!("{prefix}{name}={value}")
        } else {
            format!("{prefix}{value}")
        }
    })
}

proptest! {
    #[test]
    fn module_options_never_panic(
        options in proptest::collection::vec(module_option(), 0..6),
        two_each in any::<bool>(),
    ) {
        let mut manifest = option_manifest(two_each);
        let before = manifest.clone();
        let mut set = in_memory_modules();
        match set.parse_options(&options, &mut manifest) {
            Ok(()) => {
                // Options attach nothing yet (set-up does): the manifest
                // stays as the guest declared it.
                prop_assert_eq!(&manifest, &before);
                let ram = set.allocate_memory(&manifest).unwrap();
                prop_assert!(ram.visible_size() >= MEM_GRANULE);
                prop_assert!(ram.visible_size() <= ram.alloc_size());
                prop_assert!(ram.alloc_size() <= MAX_MEM_SIZE);
                prop_assert_eq!(ram.alloc_size() % MEM_GRANULE, 0);
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }
}
