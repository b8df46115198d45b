//! Property tests of what the tender parses before it creates a VM: the
//! command line's first pass (§8) and the kernel's ELF image (§1, §2), read
//! from a file as the tender reads it. Whatever the input, no panic, and
//! the results keep their invariants. The fuzz targets (`fuzz/`) go deeper
//! with coverage guidance; these run in every `cargo test`, without KVM.

use std::path::PathBuf;

use hvt_abi::layout::GUEST_MIN_BASE;
use hvt_abi::manifest::{MftEntry, MFT_DEV_BLOCK_BASIC, MFT_DEV_NET_BASIC};
use hvt_abi::note::{
    AbiDesc, NoteHeader, UnprivilegedDesc, ABI1_NOTE_TYPE, MFT1_NOTE_MAX_DESCSZ, MFT1_NOTE_TYPE,
    TENDER_NOTE_NAME, TENDER_NOTE_NAMESZ, UNPRIVILEGED_CPL3, UNPRIVILEGED_NOTE_TYPE,
};
use proptest::prelude::*;
use tender::cli::{self, Command, Invocation};
use tender::elf::{self, ElfFile, PT_LOAD, PT_NOTE};
use tender_core::manifest::Manifest;
use tender_core::memory::GuestRam;
use vm_memory::ByteValued;

// ---------------------------------------------------------------------------
// The command line (§8)

/// The first pass as §8 describes it, written out again: every argument
/// starting with '-' before the kernel is an option, "--" ends them.
fn cli_model(args: &[String]) -> Result<Command, ()> {
    let mut options = Vec::new();
    let mut i = 0;
    let kernel = loop {
        let Some(arg) = args.get(i) else {
            return Err(());
        };
        i += 1;
        match arg.as_str() {
            "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            "--" => {
                let kernel = args.get(i).ok_or(())?.clone();
                i += 1;
                break kernel;
            }
            a if a.starts_with('-') => options.push(a.into()),
            a => break a.to_owned(),
        }
    };
    Ok(Command::Run(Invocation {
        options,
        kernel: kernel.into(),
        args: args[i..].iter().map(Into::into).collect(),
    }))
}

fn cli_arg() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("--help".to_owned()),
        Just("--version".to_owned()),
        Just("--".to_owned()),
        Just("--mem=64".to_owned()),
        Just("--net:service0=tap0".to_owned()),
        Just("-".to_owned()),
        Just("-x".to_owned()),
        Just(String::new()),
        Just("kernel.hvt".to_owned()),
        "--[a-z:=0-9-]{0,12}",
        any::<String>(),
        // Long guest arguments, around the command line's limit.
        (1000usize..4200).prop_map(|n| "a".repeat(n)),
    ]
}

proptest! {
    #[test]
    fn cli_parse_never_panics_and_follows_the_rules(
        args in proptest::collection::vec(cli_arg(), 0..8),
    ) {
        let parsed = cli::parse(&args);
        let expected = cli_model(&args);
        prop_assert_eq!(parsed.as_ref().ok(), expected.as_ref().ok());
        if let Ok(Command::Run(run)) = parsed {
            prop_assert!(run
                .options
                .iter()
                .all(|o| o.as_encoded_bytes().starts_with(b"-") && o != "--"));
            // The command line is ARGS joined by single spaces, bytes as given.
            let joined: Vec<&str> = run.args.iter().map(|a| a.to_str().unwrap()).collect();
            prop_assert_eq!(run.cmdline(), joined.join(" ").into_bytes());
        }
    }
}

// ---------------------------------------------------------------------------
// The kernel image (§1, §2)

/// A scratch file for one test's images (tests run in parallel threads).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let path =
            std::env::temp_dir().join(format!("tender-proptest-{}-{tag}.hvt", std::process::id()));
        Scratch(path)
    }

    fn write(&self, bytes: &[u8]) -> &std::path::Path {
        std::fs::write(&self.0, bytes).expect("write a scratch image");
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Guest memory of the loader runs: 4 MiB, as a small `--mem=4`.
const MEM: u64 = 4 << 20;

/// Everything the tender does with an image before it creates a VM, with
/// each step's invariants; every error is fine, a panic is not.
fn check_image(path: &std::path::Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(elf) = ElfFile::open(path) else {
        return Ok(());
    };
    prop_assert_eq!(elf.file_len(), bytes.len() as u64);
    prop_assert!(!elf.phdrs.is_empty());
    prop_assert_eq!(
        elf.entry,
        u64::from_le_bytes(bytes[24..32].try_into().unwrap())
    );
    let _ = elf::find_abi_note(&elf);
    if let Ok(raw) = elf::find_manifest_note(&elf) {
        prop_assert!(raw.len() + 4 <= MFT1_NOTE_MAX_DESCSZ as usize);
        if let Ok(manifest) = Manifest::parse(&raw) {
            prop_assert_eq!(manifest.to_bytes(), raw);
        }
    }
    let _ = elf::is_unprivileged(&elf);
    let mut ram = GuestRam::new(MEM).unwrap();
    if let Ok(image) = elf::load_segments(&elf, &mut ram) {
        prop_assert!(image.entry >= GUEST_MIN_BASE && image.entry < MEM);
        prop_assert!(image.kernel_end <= MEM);
        // Every loaded byte is the file's.
        for ph in elf
            .phdrs
            .iter()
            .filter(|p| p.p_type == PT_LOAD && p.p_filesz != 0)
        {
            let len = usize::try_from(ph.p_filesz.min(64)).unwrap();
            let off = usize::try_from(ph.p_offset).unwrap();
            let mut got = vec![0u8; len];
            // A read-only or inaccessible segment cannot be read back.
            if ram.check(ph.p_vaddr, ph.p_filesz.min(64)).is_ok()
                && ram.read_bytes(ph.p_vaddr, &mut got).is_ok()
            {
                prop_assert_eq!(&got[..], &bytes[off..off + len]);
            }
        }
    }
    Ok(())
}

/// What one segment of a generated image holds.
#[derive(Debug, Clone)]
enum Content {
    Data(usize),
    Abi { target: u32, version: u32 },
    Manifest(Vec<MftEntry>),
    Unprivileged(u32),
    Garbage(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Segment {
    p_type: u32,
    flags: u32,
    vaddr: u64,
    memsz_extra: u64,
    align: u64,
    content: Content,
}

fn content() -> impl Strategy<Value = Content> {
    let entry = prop_oneof![
        Just(MftEntry::new("service0", MFT_DEV_NET_BASIC)),
        Just(MftEntry::new("storage", MFT_DEV_BLOCK_BASIC)),
        Just(MftEntry::new("x", 7)),
    ];
    prop_oneof![
        (0usize..9000).prop_map(Content::Data),
        (
            prop_oneof![Just(1u32), 0u32..8],
            prop_oneof![Just(2u32), 0u32..4]
        )
            .prop_map(|(target, version)| Content::Abi { target, version }),
        proptest::collection::vec(entry, 0..4).prop_map(Content::Manifest),
        prop_oneof![Just(UNPRIVILEGED_CPL3), any::<u32>()].prop_map(Content::Unprivileged),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Content::Garbage),
    ]
}

fn segment() -> impl Strategy<Value = Segment> {
    (
        prop_oneof![Just(PT_LOAD), Just(PT_NOTE), any::<u32>()],
        0u32..8,
        prop_oneof![
            (0u64..1024).prop_map(|page| GUEST_MIN_BASE + page * 4096),
            (0u64..2048).prop_map(|page| page * 4096),
            any::<u64>(),
        ],
        prop_oneof![Just(0u64), 0u64..0x20_0000, any::<u64>()],
        prop_oneof![
            Just(4096u64),
            Just(1u64),
            Just(0u64),
            Just(0x20_0000u64),
            any::<u64>()
        ],
        content(),
    )
        .prop_map(
            |(p_type, flags, vaddr, memsz_extra, align, content)| Segment {
                p_type,
                flags,
                vaddr,
                memsz_extra,
                align,
                content,
            },
        )
}

/// A note: header, the name padded to 8 bytes, the descriptor.
fn note(namesz: u32, name: &[u8; 8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let header = NoteHeader {
        namesz,
        descsz: u32::try_from(desc.len()).unwrap(),
        kind,
    };
    let mut bytes = header.as_slice().to_vec();
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(desc);
    bytes
}

fn content_bytes(content: &Content) -> Vec<u8> {
    let solo5 = b"Solo5\0\0\0";
    match content {
        Content::Data(len) => (0..*len).map(|i| u8::try_from(i % 251).unwrap()).collect(),
        Content::Abi { target, version } => {
            let desc = AbiDesc {
                abi_target: *target,
                abi_version: *version,
                ..AbiDesc::default()
            };
            note(6, solo5, ABI1_NOTE_TYPE, desc.as_slice())
        }
        Content::Manifest(entries) => {
            let mut mft = vec![MftEntry::RESERVED_FIRST];
            mft.extend_from_slice(entries);
            // 4 bytes of padding first, counted in `descsz` (§1.3).
            let mut desc = vec![0u8; 4];
            desc.extend_from_slice(&Manifest { entries: mft }.to_bytes());
            note(6, solo5, MFT1_NOTE_TYPE, &desc)
        }
        Content::Unprivileged(flags) => {
            let desc = UnprivilegedDesc {
                flags: *flags,
                reserved: 0,
            };
            note(
                TENDER_NOTE_NAMESZ,
                TENDER_NOTE_NAME,
                UNPRIVILEGED_NOTE_TYPE,
                desc.as_slice(),
            )
        }
        Content::Garbage(bytes) => bytes.clone(),
    }
}

/// An ELF64 x86_64 executable with `segments`, then `patches` applied
/// (`(index, byte)`, the index taken modulo the length).
fn build_image(entry: u64, segments: &[Segment], patches: &[(usize, u8)]) -> Vec<u8> {
    let phnum = segments.len();
    let mut image = vec![0u8; 64 + 56 * phnum];
    image[0..4].copy_from_slice(b"\x7fELF");
    image[4] = 2; // ELFCLASS64
    image[5] = 1; // little-endian
    image[6] = 1; // EV_CURRENT
    image[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    image[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    image[20..24].copy_from_slice(&1u32.to_le_bytes());
    image[24..32].copy_from_slice(&entry.to_le_bytes());
    image[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    image[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    image[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    image[56..58].copy_from_slice(&u16::try_from(phnum).unwrap().to_le_bytes());
    for (i, seg) in segments.iter().enumerate() {
        let data = content_bytes(&seg.content);
        let offset = image.len() as u64;
        image.extend_from_slice(&data);
        let filesz = data.len() as u64;
        let ph = 64 + 56 * i;
        let mut put = |at: usize, value: u64| {
            image[ph + at..ph + at + 8].copy_from_slice(&value.to_le_bytes());
        };
        put(8, offset);
        put(16, seg.vaddr);
        put(24, seg.vaddr);
        put(32, filesz);
        put(40, filesz.wrapping_add(seg.memsz_extra));
        put(48, seg.align);
        image[ph..ph + 4].copy_from_slice(&seg.p_type.to_le_bytes());
        image[ph + 4..ph + 8].copy_from_slice(&seg.flags.to_le_bytes());
    }
    let len = image.len();
    for &(at, byte) in patches {
        image[at % len] = byte;
    }
    image
}

proptest! {
    #[test]
    fn arbitrary_bytes_as_a_kernel_never_panic(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            // Past the ELF magic, so that the header checks run.
            proptest::collection::vec(any::<u8>(), 60..300).prop_map(|mut b| {
                b[0..4].copy_from_slice(b"\x7fELF");
                b
            }),
        ],
    ) {
        let scratch = Scratch::new("bytes");
        check_image(scratch.write(&bytes), &bytes)?;
    }

    #[test]
    fn generated_images_never_panic(
        entry in prop_oneof![
            (0u64..256).prop_map(|page| GUEST_MIN_BASE + page * 4096),
            any::<u64>(),
        ],
        segments in proptest::collection::vec(segment(), 1..6),
        patches in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        let bytes = build_image(entry, &segments, &patches);
        let scratch = Scratch::new("generated");
        check_image(scratch.write(&bytes), &bytes)?;
    }
}

/// The generator makes images the tender accepts whole, so that the
/// property above reaches the loader's copies and protections.
#[test]
fn a_generated_image_can_be_valid() {
    let code = Segment {
        p_type: PT_LOAD,
        flags: 5,
        vaddr: GUEST_MIN_BASE,
        memsz_extra: 0,
        align: 4096,
        content: Content::Data(4096),
    };
    let data = Segment {
        p_type: PT_LOAD,
        flags: 6,
        vaddr: GUEST_MIN_BASE + 0x2000,
        memsz_extra: 0x1000,
        align: 4096,
        content: Content::Data(4096),
    };
    let note = |content| Segment {
        p_type: PT_NOTE,
        flags: 4,
        vaddr: 0,
        memsz_extra: 0,
        align: 4,
        content,
    };
    let segments = [
        code,
        data,
        note(Content::Abi {
            target: 1,
            version: 2,
        }),
        note(Content::Manifest(vec![MftEntry::new(
            "service0",
            MFT_DEV_NET_BASIC,
        )])),
        note(Content::Unprivileged(UNPRIVILEGED_CPL3)),
    ];
    let bytes = build_image(GUEST_MIN_BASE, &segments, &[]);
    let scratch = Scratch::new("valid");
    let path = scratch.write(&bytes);
    let elf = ElfFile::open(path).unwrap();
    elf::find_abi_note(&elf).unwrap();
    let manifest = Manifest::parse(&elf::find_manifest_note(&elf).unwrap()).unwrap();
    assert_eq!(manifest.find("service0", MFT_DEV_NET_BASIC), Some(1));
    assert!(elf::is_unprivileged(&elf));
    let mut ram = GuestRam::new(MEM).unwrap();
    let image = elf::load_segments(&elf, &mut ram).unwrap();
    assert_eq!(image.kernel_end, GUEST_MIN_BASE + 0x4000);
    check_image(path, &bytes).unwrap();
}
