//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/`:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds -- GUEST_DIR
//! ```
//!
//! `GUEST_DIR` holds built guest images (`hello`, `netprobe2`, `blockhold`:
//! `target/guest/x86_64-unknown-none/release` after
//! `scripts/build-guests.sh`); the `elf` seeds are those images and
//! variants of `hello` broken in one place each. The other targets' seeds
//! are made here, in their input formats (`tender_fuzz::input`).

use std::path::{Path, PathBuf};

use hvt_abi::hypercall::{nr, BlockIo, Halt, NetIo, Poll, Puts, PIO_BASE};
use hvt_abi::note::UNPRIVILEGED_NOTE_TYPE;
use hvt_abi::ring::{RingEntry, OP_NET_READ, OP_NET_WRITE};
use tender_fuzz::hypercall_ops as hc;
use tender_fuzz::input::Writer;
use tender_fuzz::ring_ops;
use vm_memory::ByteValued;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create the corpus directory");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], off: usize) -> usize {
    usize::try_from(u64::from_le_bytes(b[off..off + 8].try_into().unwrap())).unwrap()
}

/// File offsets of the program headers of `image`.
fn phdrs(image: &[u8]) -> Vec<usize> {
    let (phoff, phnum) = (u64_at(image, 32), usize::from(u16_at(image, 56)));
    (0..phnum).map(|i| phoff + 56 * i).collect()
}

fn elf_seeds(dir: &Path, guests: &Path) {
    for name in ["hello", "netprobe2", "blockhold"] {
        let image = std::fs::read(guests.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", guests.join(name).display()));
        write(dir, name, &image);
    }
    let hello = std::fs::read(guests.join("hello")).unwrap();
    let table_end = phdrs(&hello).last().unwrap() + 56;
    write(dir, "hello-header-only", &hello[..64]);
    write(dir, "hello-phdrs-only", &hello[..table_end]);
    write(dir, "hello-half", &hello[..hello.len() / 2]);
    let mut variants: Vec<(&str, Vec<u8>)> = Vec::new();
    // The first PT_LOAD moved below 1 MiB, then sized past memory.
    let load = *phdrs(&hello)
        .iter()
        .find(|&&ph| u32_at(&hello, ph) == 1)
        .unwrap();
    let mut low = hello.clone();
    low[load + 16..load + 24].copy_from_slice(&0x8000u64.to_le_bytes());
    variants.push(("hello-low-segment", low));
    let mut huge = hello.clone();
    huge[load + 40..load + 48].copy_from_slice(&(1u64 << 40).to_le_bytes());
    variants.push(("hello-huge-memsz", huge));
    // Our unprivileged note made another type: a CPL 0 guest.
    let mut cpl0 = hello.clone();
    for ph in phdrs(&hello)
        .into_iter()
        .filter(|&ph| u32_at(&hello, ph) == 4)
    {
        let off = u64_at(&hello, ph + 8);
        if u32_at(&hello, off + 8) == UNPRIVILEGED_NOTE_TYPE {
            cpl0[off + 8..off + 12].copy_from_slice(b"XXXX");
        }
    }
    variants.push(("hello-cpl0", cpl0));
    // Every note segment's p_filesz made too small for its note.
    let mut short_notes = hello.clone();
    for ph in phdrs(&hello)
        .into_iter()
        .filter(|&ph| u32_at(&hello, ph) == 4)
    {
        short_notes[ph + 32..ph + 40].copy_from_slice(&20u64.to_le_bytes());
    }
    variants.push(("hello-short-notes", short_notes));
    for (name, bytes) in variants {
        write(dir, name, &bytes);
    }
}

fn cli_seeds(dir: &Path) {
    let lines: &[(&str, u8, &[&str])] = &[
        ("plain", 0, &["hello.hvt", "Hello_Solo5"]),
        ("help", 0, &["--help"]),
        ("version", 0, &["--mem=2", "--version"]),
        (
            "dashdash",
            0,
            &["--mem=3", "--", "--odd-kernel", "--solo5:debug"],
        ),
        (
            "devices",
            1,
            &[
                "--mem=64",
                "--net:service0=tap0",
                "--block:storage=disk.img",
                "kernel",
                "a",
                "b",
            ],
        ),
        (
            "devices-ring",
            0x81,
            &[
                "--net:service0=tap0",
                "--net-mac:service0=02:aa:bb:cc:dd:ee",
                "--block-ro:storage=disk.img",
                "kernel",
            ],
        ),
        (
            "short-forms",
            1,
            &["--net=tap1", "--block=big.img", "--no-net-ring", "k"],
        ),
        (
            "two-each",
            0x82,
            &[
                "--mem=4096",
                "--net:service0=tap0",
                "--net:service1=tap2",
                "--block:storage=disk.img",
                "--block:disk=big.img",
                "--block-sector-size:disk=4096",
                "--",
                "kernel",
                "--ipv4=10.0.0.2/24",
            ],
        ),
        (
            "many",
            0x83,
            &[
                "--net:n0=tap0",
                "--net:n1=tap1",
                "--net:n2=tap2",
                "--net:n3=tap3",
                "--block:b0=disk.img",
                "--block-ro:b1=big.img",
                "--block-ro:b2=big.img",
                "--block:b3=odd.img",
                "k",
            ],
        ),
        (
            "bad-values",
            1,
            &[
                "--mem=0",
                "--net:service0=@3",
                "--block-sector-size:storage=1000",
                "k",
            ],
        ),
        (
            "fd",
            1,
            &["--net:service0=@3", "--net-mac:service0=2:0:0:0:0:1", "k"],
        ),
        (
            "unattached",
            2,
            &["--net:service0=tap0", "--block:storage=odd.img", "k"],
        ),
    ];
    for (name, variant, args) in lines {
        let mut bytes = vec![*variant];
        bytes.extend_from_slice(args.join("\0").as_bytes());
        write(dir, name, &bytes);
    }
    // A guest command line of exactly the longest length.
    let mut long = vec![0u8];
    long.extend_from_slice(b"k\0");
    long.extend(std::iter::repeat_n(b'x', 8191));
    write(dir, "longest-cmdline", &long);
}

/// Argument structs go here, their buffers at `DATA`.
const ARG: u32 = 0x1_0000;
const DATA: u32 = 0x2_0000;

/// Hypercall seeds: a little guest in operations.
struct Guest(Writer);

impl Guest {
    fn new(fault: &[u8]) -> Guest {
        let mut w = Writer::default();
        w.bytes(fault);
        Guest(w)
    }

    fn write(&mut self, gpa: u32, bytes: &[u8]) -> &mut Self {
        for (i, chunk) in (0u32..).zip(bytes.chunks(255)) {
            let len = u8::try_from(chunk.len()).unwrap();
            self.0.u8(hc::WRITE).u32(gpa + 255 * i).u8(len).bytes(chunk);
        }
        self
    }

    fn call<T: ByteValued>(&mut self, number: u16, arg: &T) -> &mut Self {
        self.write(ARG, arg.as_slice());
        self.0.u8(hc::PORT).u8(hc::hypercall(number)).u32(ARG);
        self
    }

    fn port(&mut self, access: u8, value: u32) -> &mut Self {
        self.0.u8(hc::PORT).u8(access).u32(value);
        self
    }

    fn frame(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u16::try_from(bytes.len()).unwrap();
        self.0.u8(hc::FRAME).u16(len).bytes(bytes);
        self
    }

    fn ready(&mut self, handle: u8, at: u32) -> &mut Self {
        self.0.u8(hc::READY).u8(handle).u32(at);
        self
    }

    fn bytes(&self) -> &[u8] {
        &self.0 .0
    }
}

fn net(handle: u64, len: u64) -> NetIo {
    NetIo {
        handle,
        data: u64::from(DATA),
        len,
        ..NetIo::default()
    }
}

fn block(handle: u64, offset: u64, len: u64) -> BlockIo {
    BlockIo {
        handle,
        offset,
        data: u64::from(DATA),
        len,
        ..BlockIo::default()
    }
}

fn hypercall_seeds(dir: &Path) {
    let frame: Vec<u8> = (0..60u8).collect();
    let sector: Vec<u8> = (0..=255u8).cycle().take(512).collect();
    let mut seeds: Vec<(&str, Guest)> = Vec::new();

    let mut g = Guest::new(&[0]);
    g.call(nr::WALLTIME, &0u64)
        .write(DATA, b"Hello, World\n")
        .call(
            nr::PUTS,
            &Puts {
                data: u64::from(DATA),
                len: 13,
            },
        )
        .call(
            nr::POLL,
            &Poll {
                timeout_nsecs: 1_000_000,
                ..Poll::default()
            },
        )
        .call(
            nr::HALT,
            &Halt {
                cookie: 0,
                exit_status: 0x1234,
                ..Halt::default()
            },
        );
    seeds.push(("core", g));

    let mut g = Guest::new(&[0]);
    g.write(DATA, &sector)
        .call(nr::BLOCK_WRITE, &block(3, 512, 512))
        .call(nr::BLOCK_READ, &block(3, 0, 1024))
        .call(nr::BLOCK_WRITE, &block(4, 0, 4096))
        .call(nr::BLOCK_READ, &block(4, 4096, 4096))
        .call(nr::BLOCK_READ, &block(3, 65536 - 512, 1024))
        .call(nr::BLOCK_READ, &block(9, 0, 512));
    seeds.push(("block", g));

    for (name, fault) in [
        ("block-ioerror", &[5u8, 1][..]),
        ("block-torn", &[6, 0, 100, 0]),
        ("block-crash", &[7, 1]),
    ] {
        let mut g = Guest::new(fault);
        g.write(DATA, &sector)
            .call(nr::BLOCK_WRITE, &block(3, 0, 512))
            .call(nr::BLOCK_WRITE, &block(3, 512, 512))
            .call(nr::BLOCK_READ, &block(3, 0, 512));
        seeds.push((name, g));
    }

    let mut g = Guest::new(&[0]);
    g.write(DATA, &frame)
        .call(nr::NET_WRITE, &net(1, 60))
        .call(
            nr::POLL,
            &Poll {
                timeout_nsecs: 5_000,
                ..Poll::default()
            },
        )
        .call(nr::NET_READ, &net(2, 1514))
        .call(nr::NET_READ, &net(2, 1514))
        .frame(&frame)
        .call(nr::NET_READ, &net(1, 10))
        .ready(2, 500)
        .call(
            nr::POLL,
            &Poll {
                timeout_nsecs: 1_000,
                ..Poll::default()
            },
        )
        .call(nr::NET_WRITE, &net(7, 60));
    seeds.push(("net", g));

    let mut g = Guest::new(&[0]);
    g.call(
        nr::PUTS,
        &Puts {
            data: (4 << 20) - 8,
            len: 8,
        },
    );
    seeds.push(("puts-at-the-top", g));

    let mut g = Guest::new(&[0]);
    g.call(
        nr::HALT,
        &Halt {
            cookie: u64::from(DATA),
            exit_status: -1,
            ..Halt::default()
        },
    );
    seeds.push(("halt-cookie", g));

    // Accesses that are not hypercalls: an IN, a 1-byte OUT, port 0x509.
    for (name, access) in [
        ("port-in", hc::hypercall(nr::WALLTIME) | 0x10),
        ("port-byte", hc::hypercall(nr::WALLTIME) | 0x20),
        ("port-509", hc::hypercall(9)),
    ] {
        let mut g = Guest::new(&[0]);
        g.port(access, ARG);
        seeds.push((name, g));
    }

    let mut g = Guest::new(&[0]);
    g.port(hc::hypercall(nr::WALLTIME), (4 << 20) - 4);
    seeds.push(("arg-at-the-top", g));

    for (name, g) in seeds {
        write(dir, name, g.bytes());
    }
    assert_eq!(PIO_BASE, 0x500);
}

/// One ring seed: indices, entries, then operations.
fn ring_seed(head: u32, count: u16, raw_tail: Option<u32>, entries: &[RingEntry]) -> Writer {
    let mut w = Writer::default();
    w.u32(head).u16(count);
    if let Some(tail) = raw_tail {
        w.u32(tail);
    }
    w.u32(head).u32(head); // com_tail, com_head
    w.u8(u8::try_from(entries.len()).unwrap());
    for entry in entries {
        w.bytes(entry.as_slice());
    }
    w
}

fn entry(operation: u32, handle: u32, data: u64, len: u32, id: u32) -> RingEntry {
    RingEntry {
        operation,
        handle,
        data,
        len,
        id,
        reserved: 0,
    }
}

fn ring_seeds(dir: &Path) {
    let data = u64::from(DATA);
    let frame: Vec<u8> = (0..60u8).collect();
    let mut seeds: Vec<(&str, Writer)> = Vec::new();

    let mut w = ring_seed(
        0,
        3,
        None,
        &[
            entry(OP_NET_WRITE, 1, data, 60, 1),
            entry(OP_NET_READ, 2, data + 2048, 1514, 2),
            entry(OP_NET_READ, 2, data + 4096, 1514, 3),
        ],
    );
    w.u8(ring_ops::WRITE).u32(DATA).u8(60).bytes(&frame);
    seeds.push(("write-then-read", w));

    let mut w = ring_seed(
        u32::MAX - 1,
        4,
        None,
        &[
            entry(OP_NET_READ, 1, data, 2048, 10),
            entry(OP_NET_READ, 1, data, 10, 11),
            entry(OP_NET_READ, 1, data, 2048, 12),
            entry(OP_NET_WRITE, 2, data, 1514, 13),
        ],
    );
    w.u8(ring_ops::FRAME).u16(60).bytes(&frame);
    w.u8(ring_ops::FRAME).u16(100).bytes(&[7u8; 100]);
    seeds.push(("wrap-reads", w));

    seeds.push((
        "bad-handles",
        ring_seed(
            1000,
            3,
            None,
            &[
                entry(OP_NET_READ, 9, data, 64, 1),
                entry(OP_NET_WRITE, 0, data, 64, 2),
                entry(77, 1, data, 64, 3),
            ],
        ),
    ));
    seeds.push((
        "outside-memory",
        ring_seed(
            0,
            1,
            None,
            &[entry(OP_NET_WRITE, 1, (4 << 20) + 4096, 64, 1)],
        ),
    ));
    seeds.push(("corrupt-indices", ring_seed(0, 1050, None, &[])));
    seeds.push((
        "raw-tail",
        ring_seed(5, 0xffff, Some(4), &[entry(OP_NET_READ, 1, data, 64, 1)]),
    ));
    seeds.push(("idle", ring_seed(42, 0, None, &[])));
    for (name, w) in seeds {
        write(dir, name, &w.0);
    }
}

fn main() {
    let guests = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: seeds GUEST_DIR (built guest images)"),
    );
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    elf_seeds(&corpus.join("elf"), &guests);
    cli_seeds(&corpus.join("cli"));
    hypercall_seeds(&corpus.join("hypercall"));
    ring_seeds(&corpus.join("ring"));
}
