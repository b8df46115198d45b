//! Every hypercall with boundary values in every field (§5, §6): argument
//! structs and buffers at, just below and across the top of guest memory,
//! lengths 0, 1, huge and wrapping, handles 0, 63, 64 and `u64::MAX`, the
//! wrong device kind, odd addresses, and the network ring's doorbell and
//! entries (§6.7). Each case ends with the documented message and exit
//! code, or returns the documented result code; the tender never crashes,
//! and block images are unchanged by the requests it refuses.
//!
//! The guests are `hostile` (no devices) and `hostile-dev` (`service`, a
//! network device, handle 1; `storage`, a block device, handle 2), run at
//! CPL 3 and at CPL 0. Their command line is a script of steps
//! (`guest/probes/src/bin/hostile-lib/script.rs`): `hc:NR:ADDR:W,W,...`
//! stores the words at ADDR, issues hypercall NR with ADDR in EAX and prints
//! the words read back, as `hostile: STEP => 0x.. 0x..`. The tests with
//! devices need root (a network namespace and a tap); skipped otherwise.

mod common;
#[path = "common/hostile_script.rs"]
mod hostile_script;

use std::path::{Path, PathBuf};

use common::{cpl0_copy, guest, is_root, tender, write_image, NetNs, Run};
use hostile_script::{assert_no_crash, run_script, step_words};
use hvt_abi::hypercall::{name, nr, result};

/// Guest memory of every run, as `--mem=64` sets it: `top` in the scripts.
const MEM: u64 = 64 << 20;
/// `buf` in the scripts: free scratch memory.
const BUF: u64 = 0x40_0000;
/// Size of the block image of `hostile-dev`.
const CAPACITY: u64 = 64 << 10;
/// Handles in `hostile-dev`.
const NET: u64 = 1;
const BLOCK: u64 = 2;
/// Handles that name no device of any kind: 0 (the reserved entry), past
/// the manifest, the last a POLL mask can hold, one more, the largest.
const NO_DEVICE: [u64; 5] = [0, 3, 63, 64, u64::MAX];
/// What `hostile rodata!\n` (the guest's `rodata`) holds.
const RODATA: &[u8] = b"hostile rodata!\n";

fn size_of_arg(number: u16) -> u64 {
    let shape = hvt_abi::hypercall::arg_shape(number).expect("an ABI hypercall");
    shape.size as u64
}

/// The step `hc:NR:AT:W,W,...`.
fn hc(number: u16, at: &str, words: &[&str]) -> String {
    if words.is_empty() {
        format!("hc:{number}:{at}")
    } else {
        format!("hc:{number}:{at}:{}", words.join(","))
    }
}

/// A value for a script, in hex.
fn hex(value: u64) -> String {
    format!("{value:#x}")
}

/// The guest image `name` at CPL 3 and its CPL 0 copy.
fn both(name: &str) -> [PathBuf; 2] {
    [guest(name), cpl0_copy(name)]
}

/// Runs `hostile` (no devices) with the script `steps`.
fn plain(image: &Path, steps: &[String]) -> Run {
    run_script(image, MEM, steps)
}

/// `words`, for a step that must have returned.
fn returned(run: &Run, step: &str) -> Vec<u64> {
    step_words(run, step).unwrap_or_else(|| panic!("step {step} did not return: {}", run.output()))
}

/// The bytes a `dump:ADDR:LEN` step printed.
fn dumped(run: &Run, step: &str) -> Vec<u8> {
    let prefix = format!("hostile: {step} => ");
    let line = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {step}: {}", run.output()));
    (0..line.len() / 2)
        .map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).expect("hex byte"))
        .collect()
}

/// The value a `val:X` step printed.
fn value_of(run: &Run, symbol: &str) -> u64 {
    returned(run, &format!("val:{symbol}"))[0]
}

/// The `ret` field (a C int) of a struct whose words were printed.
fn ret(words: &[u64], index: usize) -> i32 {
    let bytes = words[index].to_le_bytes();
    i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The script ran to its end: exit 0.
fn assert_done(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what}: {}", run.output());
    assert!(
        run.stdout.contains("hostile: script done"),
        "{what}: {}",
        run.output()
    );
}

/// The tender stopped the guest: exit 1, `message` on stderr.
fn assert_stopped(run: &Run, message: &str, what: &str) {
    assert_eq!(run.code, 1, "{what}: {}", run.output());
    assert!(
        run.stderr.contains(&format!("tender: {message}")),
        "{what}: expected '{message}' in {}",
        run.output()
    );
    assert!(
        !run.stdout.contains("script done"),
        "{what}: {}",
        run.output()
    );
}

/// The message for a refused range in hypercall `number`'s arguments.
fn refused(number: u16, gpa: u64, size: u64) -> String {
    format!(
        "hypercall {}: Invalid guest access: gpa={gpa:#x}, sz={size}",
        name(number)
    )
}

/// Argument struct addresses the tender must refuse for a struct of `size`
/// bytes: ending exactly at the top, across it, at it, past it, and the
/// largest addresses EAX can carry.
fn bad_struct_addresses(size: u64) -> [u64; 6] {
    [
        MEM - size,
        MEM - size / 2,
        MEM,
        MEM + 0x1000,
        0xffff_fff8,
        0xffff_ffff,
    ]
}

fn now_ns() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(now.as_nanos()).unwrap()
}

/// A WALLTIME result: the wall clock within a minute.
fn assert_wall_time(nsecs: u64, what: &str) {
    let now = now_ns();
    assert!(
        nsecs.abs_diff(now) < 60_000_000_000,
        "{what}: WALLTIME gave {nsecs}, now is {now}"
    );
}

#[test]
fn argument_structs_at_and_across_the_top_of_memory() {
    // The last legal place of each struct ends one byte below the top (and
    // is odd, so misaligned); the guest's call there returns.
    let legal = [
        (nr::WALLTIME, Some(hc(nr::WALLTIME, "top-9", &["0"]))),
        (nr::PUTS, Some(hc(nr::PUTS, "top-17", &["buf", "0"]))),
        (nr::POLL, Some(hc(nr::POLL, "top-25", &["0", "0", "0"]))),
        // A legal HALT ends the guest: see `halt_at_its_boundaries`.
        (nr::HALT, None),
    ];
    // One thread per hypercall.
    std::thread::scope(|scope| {
        for (number, last_legal) in &legal {
            scope.spawn(move || {
                let size = size_of_arg(*number);
                for image in both("hostile") {
                    for bad in bad_struct_addresses(size) {
                        let mut steps: Vec<String> = last_legal.iter().cloned().collect();
                        steps.push(hc(*number, &hex(bad), &[]));
                        let run = plain(&image, &steps);
                        let what = steps.join(" ");
                        assert_stopped(&run, &refused(*number, bad, size), &what);
                        if let Some(step) = last_legal {
                            let back = returned(&run, step);
                            match *number {
                                nr::WALLTIME => assert_wall_time(back[0], &what),
                                nr::POLL => assert_eq!(back, [0, 0, 0], "{what}"),
                                _ => {}
                            }
                        }
                    }
                }
            });
        }
    });
}

/// With 4 GiB of memory, the top is past what EAX can name: the struct
/// ending at 0xffffffff is the last legal one, the one ending at 4 GiB is
/// refused.
#[test]
fn the_highest_addresses_eax_can_carry() {
    const FOUR_GIB: u64 = 4 << 30;
    let legal = [
        hc(nr::WALLTIME, "0xfffffff7", &["0"]),
        hc(nr::WALLTIME, "0xfffffff0", &["0"]),
        // An empty PUTS at the last byte.
        hc(nr::PUTS, "buf", &["0xffffffff", "0"]),
    ];
    for image in both("hostile") {
        let mut steps = vec!["val:top".to_string()];
        steps.extend(legal.iter().cloned());
        steps.push(hc(nr::WALLTIME, "0xfffffff8", &[]));
        let run = run_script(&image, FOUR_GIB, &steps);
        assert_eq!(value_of(&run, "top"), FOUR_GIB, "{}", run.output());
        assert_stopped(&run, &refused(nr::WALLTIME, 0xffff_fff8, 8), "4 GiB");
        for step in &legal[..2] {
            assert_wall_time(returned(&run, step)[0], step);
        }
        returned(&run, &legal[2]);
    }
}

/// A legal PUTS of all of guest memory below the top, page 0, the page
/// tables and the boot info included: 64 MiB in one hypercall.
#[test]
fn a_puts_of_all_guest_memory_is_served() {
    for image in both("hostile") {
        let step = hc(nr::PUTS, "buf", &["0", "top-1"]);
        let run = plain(&image, std::slice::from_ref(&step));
        assert_done(&run, "PUTS of everything");
        assert!(
            run.stdout.len() as u64 > MEM - 1,
            "printed {} bytes",
            run.stdout.len()
        );
    }
}

#[test]
fn misaligned_and_page_crossing_argument_structs_are_served() {
    let walltimes =
        ["buf+1", "buf+3", "buf+7", "buf+0xffd", "0x5ffffc"].map(|at| hc(nr::WALLTIME, at, &["0"]));
    let puts = hc(nr::PUTS, "buf+0x1001", &["rodata", "16"]);
    let poll = hc(nr::POLL, "buf+0x1ffb", &["1", "99", "99"]);
    for image in both("hostile") {
        let mut steps = walltimes.to_vec();
        steps.extend([puts.clone(), poll.clone()]);
        let run = plain(&image, &steps);
        assert_done(&run, "misaligned");
        for step in &walltimes {
            assert_wall_time(returned(&run, step)[0], step);
        }
        assert!(run.stdout.contains("hostile rodata!\n"), "{}", run.output());
        // POLL wrote its results: no device is ready.
        let back = returned(&run, &poll);
        assert_eq!((back[1], ret(&back, 2)), (0, 0), "{}", run.output());
    }
}

#[test]
fn puts_buffers_at_every_boundary() {
    let legal = [
        // Empty, one below the top; one byte ending one below the top.
        hc(nr::PUTS, "buf", &["top-1", "0"]),
        hc(nr::PUTS, "buf+0x100", &["top-2", "1"]),
        // Guest code and read-only data may be read.
        hc(nr::PUTS, "buf+0x200", &["rodata", "16"]),
        hc(nr::PUTS, "buf+0x300", &["text", "0"]),
    ];
    for image in both("hostile") {
        let run = plain(&image, &legal);
        assert_done(&run, "legal PUTS");
        assert!(run.stdout.contains("hostile rodata!\n"), "{}", run.output());
    }
    // (data, len): an empty range at the top, a byte ending at it, a range
    // across it, a huge length, a length that wraps to exactly 0, the
    // largest address with 1 and 0 bytes.
    let bad = [
        (MEM, 0),
        (MEM - 1, 1),
        (MEM - 16, 32),
        (BUF, u64::MAX),
        (BUF, BUF.wrapping_neg()),
        (u64::MAX, 1),
        (u64::MAX, 0),
        (MEM + 0x1000, 8),
    ];
    for image in both("hostile") {
        for (data, len) in bad {
            let step = hc(nr::PUTS, "buf", &[&hex(data), &hex(len)]);
            let run = plain(&image, std::slice::from_ref(&step));
            assert_stopped(&run, &refused(nr::PUTS, data, len), &step);
        }
    }
}

#[test]
fn halt_at_its_boundaries() {
    // (script, exit code) for HALTs the tender accepts.
    let accepted = [
        // The last legal place of the struct (odd).
        (hc(nr::HALT, "top-17", &["0", "7"]), 7),
        // A cookie whose 512 bytes end one below the top.
        (hc(nr::HALT, "buf", &["top-513", "9"]), 9),
        // Cookies in guest code and in page 0 (unmapped for the guest, but
        // §5 only asks for the range to lie below the top).
        (hc(nr::HALT, "buf", &["text", "10"]), 10),
        (hc(nr::HALT, "buf", &["1", "11"]), 11),
        // A misaligned struct; status 511 exits with its low byte.
        (hc(nr::HALT, "buf+1", &["0", "0x1ff"]), 255),
    ];
    let cookie = hvt_abi::hypercall::HALT_COOKIE_MAX;
    let refused_cookies = [MEM - cookie, MEM - 1, MEM, u64::MAX, u64::MAX - cookie + 1];
    for image in both("hostile") {
        for (step, code) in &accepted {
            let run = plain(&image, std::slice::from_ref(step));
            assert_eq!(run.code, *code, "{step}: {}", run.output());
            assert!(!run.stdout.contains("script done"), "{}", run.output());
        }
        for gpa in refused_cookies {
            let step = hc(nr::HALT, "buf", &[&hex(gpa), "0"]);
            let run = plain(&image, std::slice::from_ref(&step));
            assert_stopped(&run, &refused(nr::HALT, gpa, cookie), &step);
        }
    }
}

#[test]
fn poll_with_odd_timeouts_returns() {
    // A zero timeout, one nanosecond, and a struct whose `ret` straddles a
    // 4 KiB page.
    let steps = [
        hc(nr::POLL, "buf", &["0", "5", "5"]),
        hc(nr::POLL, "buf+0x100", &["1", "5", "5"]),
        hc(nr::POLL, "buf+0xfee", &["1000", "5", "5"]),
    ];
    for image in both("hostile") {
        let run = plain(&image, &steps);
        assert_done(&run, "POLL");
        for step in &steps {
            let back = returned(&run, step);
            assert_eq!((back[1], ret(&back, 2)), (0, 0), "{step}: {}", run.output());
        }
    }
}

#[test]
fn device_hypercalls_without_devices_are_invalid_hypercalls() {
    for image in both("hostile") {
        for number in [nr::BLOCK_WRITE, nr::BLOCK_READ, nr::NET_WRITE, nr::NET_READ] {
            // The number is refused before the argument is looked at.
            for at in ["buf", "top"] {
                let step = hc(number, at, &[]);
                let run = plain(&image, std::slice::from_ref(&step));
                assert_stopped(
                    &run,
                    &format!("Invalid guest hypercall: num={number}"),
                    &step,
                );
            }
        }
    }
}

/// `hostile-dev` with a tap and an image in a network namespace of its own.
struct Devices {
    ns: NetNs,
    tap: String,
    image: PathBuf,
    original: Vec<u8>,
}

impl Devices {
    /// `None` when not root: the test is skipped.
    fn new(tag: &str) -> Option<Devices> {
        if !is_root() {
            eprintln!("hostile_boundaries: needs root (a netns and a tap); skipped");
            return None;
        }
        let mut ns = NetNs::new();
        let tap = ns.add_tap(None, true, None);
        let original: Vec<u8> = (0..CAPACITY)
            .map(|i| u8::try_from((i * 7 + 3) % 251).unwrap())
            .collect();
        let image = write_image(tag, "storage.img", &original);
        Some(Devices {
            ns,
            tap,
            image,
            original,
        })
    }

    /// Runs `guest` (a copy of `hostile-dev`) with the devices attached,
    /// `options` before the kernel and the script `steps`.
    fn run(&self, guest: &Path, options: &[&str], steps: &[String]) -> Run {
        self.run_attached(guest, "--block:storage", options, steps)
    }

    /// `run`, with the image attached by `block` (`--block-ro:storage`).
    fn run_attached(&self, guest: &Path, block: &str, options: &[&str], steps: &[String]) -> Run {
        let mut argv = vec![
            format!("--mem={}", MEM >> 20),
            format!("--net:service={}", self.tap),
            format!("{block}={}", self.image.display()),
        ];
        argv.extend(options.iter().map(|o| o.to_string()));
        argv.push(guest.display().to_string());
        argv.extend(steps.iter().cloned());
        let run = self.ns.tender(argv);
        assert_no_crash(&run, &steps.join(" "));
        run
    }

    fn image_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.image).expect("read image")
    }

    /// The image is byte for byte what it was.
    fn assert_image_unchanged(&self, what: &str) {
        assert!(
            self.image_bytes() == self.original,
            "{what}: the image changed"
        );
    }

    fn reset_image(&self) {
        std::fs::write(&self.image, &self.original).expect("reset image");
    }
}

#[test]
fn block_requests_out_of_range_or_for_no_block_device_are_einval() {
    let Some(dev) = Devices::new("blk-einval") else {
        return;
    };
    let data = "buf+0x1000";
    let mut steps = vec![format!("fill:{data}:512:0xaa")];
    let mut einval = Vec::new();
    for number in [nr::BLOCK_WRITE, nr::BLOCK_READ] {
        // No block device: the net handle, and handles of nothing. A bad
        // buffer is not even looked at.
        for handle in NO_DEVICE.into_iter().chain([NET]) {
            for buffer in [data, "top"] {
                einval.push(hc(number, "buf", &[&hex(handle), "0", buffer, "512", "0"]));
            }
        }
        // The block device, out of its range: at the end (0 and 1 byte),
        // across it, longer than it, huge and wrapping lengths, lengths
        // above SSIZE_MAX.
        for (offset, len) in [
            (CAPACITY, 0),
            (CAPACITY, 1),
            (CAPACITY - 1, 2),
            (0, CAPACITY + 1),
            (512, u64::MAX),
            (u64::MAX, 2),
            (1 << 63, 1 << 63),
            (0, 1 << 63),
            (0, i64::MAX as u64),
        ] {
            einval.push(hc(
                number,
                "buf",
                &[&hex(BLOCK), &hex(offset), "top", &hex(len), "0"],
            ));
        }
    }
    steps.extend(einval.iter().cloned());
    let dump = format!("dump:{data}:16");
    steps.push(dump.clone());
    for image in both("hostile-dev") {
        let run = dev.run(&image, &[], &steps);
        assert_done(&run, "EINVAL block requests");
        for step in &einval {
            let back = returned(&run, step);
            assert_eq!(ret(&back, 4), result::EINVAL, "{step}: {}", run.output());
        }
        // BLOCK_READ left the buffer alone.
        assert_eq!(dumped(&run, &dump), [0xaa; 16], "{}", run.output());
        dev.assert_image_unchanged("EINVAL block requests");
    }
}

/// A read-only image (§12.6): writes in range are EUNSPEC, out of range
/// still EINVAL, reads work, and the image does not change.
#[test]
fn a_read_only_block_device_refuses_every_write() {
    let Some(dev) = Devices::new("blk-ro") else {
        return;
    };
    let b = hex(BLOCK);
    let b = b.as_str();
    let last = hex(CAPACITY - 1);
    let eunspec = [
        hc(nr::BLOCK_WRITE, "buf", &[b, "0", "buf+0x1000", "512", "0"]),
        hc(nr::BLOCK_WRITE, "buf+0x40", &[b, &last, "rodata", "1", "0"]),
        hc(
            nr::BLOCK_WRITE,
            "buf+0x80",
            &[b, "0", "buf+0x1000", "0", "0"],
        ),
    ];
    let einval = [
        hc(
            nr::BLOCK_WRITE,
            "buf+0xc0",
            &[b, &hex(CAPACITY), "buf", "1", "0"],
        ),
        hc(nr::BLOCK_WRITE, "buf+0x100", &["0", "0", "buf", "512", "0"]),
    ];
    let read = hc(
        nr::BLOCK_READ,
        "buf+0x140",
        &[b, "0", "buf+0x2000", "16", "0"],
    );
    let mut steps = vec!["fill:buf+0x1000:512:0x5a".to_string()];
    steps.extend(eunspec.iter().cloned());
    steps.extend(einval.iter().cloned());
    steps.push(read.clone());
    steps.push("dump:buf+0x2000:16".into());
    for image in both("hostile-dev") {
        let run = dev.run_attached(&image, "--block-ro:storage", &[], &steps);
        assert_done(&run, "read-only device");
        for step in &eunspec {
            assert_eq!(ret(&returned(&run, step), 4), result::EUNSPEC, "{step}");
        }
        for step in &einval {
            assert_eq!(ret(&returned(&run, step), 4), result::EINVAL, "{step}");
        }
        assert_eq!(ret(&returned(&run, &read), 4), result::OK);
        assert_eq!(dumped(&run, "dump:buf+0x2000:16"), dev.original[..16]);
        dev.assert_image_unchanged("read-only device");
    }
}

#[test]
fn block_transfers_at_the_edges_of_device_and_memory() {
    let Some(dev) = Devices::new("blk-edges") else {
        return;
    };
    let block = hex(BLOCK);
    let b = block.as_str();
    let last = hex(CAPACITY - 1);
    let ok_steps = [
        // The last byte of the device, from read-only data.
        hc(nr::BLOCK_WRITE, "buf", &[b, &last, "rodata", "1", "0"]),
        // Nothing, from just below the top, at the start and at the end.
        hc(nr::BLOCK_WRITE, "buf+0x40", &[b, "0", "top-1", "0", "0"]),
        hc(nr::BLOCK_WRITE, "buf+0x80", &[b, &last, "top-1", "0", "0"]),
        // The struct at its last legal place, from read-only data.
        hc(nr::BLOCK_WRITE, "top-41", &[b, "512", "rodata", "16", "0"]),
        // Guest code to the device.
        hc(nr::BLOCK_WRITE, "buf+0xc0", &[b, "1024", "text", "16", "0"]),
        // Three bytes at offset 1 into an odd buffer, odd struct.
        hc(
            nr::BLOCK_READ,
            "buf+0x801",
            &[b, "1", "buf+0x1001", "3", "0"],
        ),
        // Into the last legal buffer.
        hc(
            nr::BLOCK_READ,
            "buf+0x840",
            &[b, "0", "top-513", "512", "0"],
        ),
        // The last byte, into the last byte below the top.
        hc(nr::BLOCK_READ, "buf+0x880", &[b, &last, "top-2", "1", "0"]),
    ];
    let dumps = [
        "dump:buf+0x1001:3",
        "dump:top-513:16",
        "dump:top-2:1",
        "dump:text:16",
    ];
    for image in both("hostile-dev") {
        dev.reset_image();
        let mut steps = ok_steps.to_vec();
        steps.extend(dumps.iter().map(|d| d.to_string()));
        let run = dev.run(&image, &[], &steps);
        assert_done(&run, "edge block transfers");
        for step in &ok_steps {
            assert_eq!(
                ret(&returned(&run, step), 4),
                result::OK,
                "{step}: {}",
                run.output()
            );
        }
        let mut expected = dev.original.clone();
        let last = expected.len() - 1;
        expected[last] = RODATA[0];
        expected[512..528].copy_from_slice(RODATA);
        let text = dumped(&run, dumps[3]);
        expected[1024..1040].copy_from_slice(&text);
        assert!(dev.image_bytes() == expected, "edge block transfers: image");
        assert_eq!(dumped(&run, dumps[0]), expected[1..4]);
        assert_eq!(dumped(&run, dumps[1]), expected[..16]);
        assert_eq!(dumped(&run, dumps[2]), [RODATA[0]]);
    }
    dev.reset_image();
}

#[test]
fn block_requests_with_bad_buffers_stop_the_tender_and_change_nothing() {
    let Some(dev) = Devices::new("blk-bad") else {
        return;
    };
    let b = hex(BLOCK);
    // (hypercall, buffer, length): across the top, an empty range at it,
    // the largest address, the ring area above it; reads into guest code
    // and read-only data, which the host maps read-only.
    let cases: [(u16, &str, u64); 8] = [
        (nr::BLOCK_WRITE, "top-512", 512),
        (nr::BLOCK_WRITE, "top", 0),
        (nr::BLOCK_WRITE, "max", 1),
        (nr::BLOCK_WRITE, "ring", 512),
        (nr::BLOCK_READ, "top-256", 512),
        (nr::BLOCK_READ, "ring+512", 512),
        (nr::BLOCK_READ, "text", 512),
        (nr::BLOCK_READ, "rodata", 16),
    ];
    for image in both("hostile-dev") {
        for (number, buffer, len) in cases {
            let steps = [
                format!("val:{buffer}"),
                hc(number, "buf", &[&b, "0", buffer, &hex(len), "0"]),
            ];
            let run = dev.run(&image, &[], &steps);
            let gpa = value_of(&run, buffer);
            assert_stopped(&run, &refused(number, gpa, len), &steps[1]);
            dev.assert_image_unchanged(&steps[1]);
        }
    }
}

#[test]
fn device_argument_structs_at_and_across_the_top_of_memory() {
    if !is_root() {
        eprintln!("hostile_boundaries: needs root (a netns and a tap); skipped");
        return;
    }
    // One thread per hypercall, each with its own namespace, tap and image.
    std::thread::scope(|scope| {
        for number in [nr::BLOCK_WRITE, nr::BLOCK_READ, nr::NET_WRITE, nr::NET_READ] {
            scope.spawn(move || {
                let dev = Devices::new(&format!("dev-args-{number}")).expect("root");
                let size = size_of_arg(number);
                // The last legal place, with handle 0: EINVAL.
                let fields: &[&str] = if size == 40 {
                    &["0", "0", "buf", "1", "0"]
                } else {
                    &["0", "buf", "1", "0"]
                };
                let last_legal = hc(number, &format!("top-{}", size + 1), fields);
                for image in both("hostile-dev") {
                    for bad in bad_struct_addresses(size) {
                        let steps = [last_legal.clone(), hc(number, &hex(bad), &[])];
                        let run = dev.run(&image, &[], &steps);
                        assert_stopped(&run, &refused(number, bad, size), &steps[1]);
                        let back = returned(&run, &last_legal);
                        assert_eq!(
                            ret(&back, fields.len() - 1),
                            result::EINVAL,
                            "{}",
                            run.output()
                        );
                    }
                }
                dev.assert_image_unchanged("device argument structs");
            });
        }
    });
}

#[test]
fn net_requests_for_no_net_device_are_einval_and_edges_are_served() {
    let Some(dev) = Devices::new("net-edges") else {
        return;
    };
    let mut einval = Vec::new();
    for number in [nr::NET_WRITE, nr::NET_READ] {
        // The block handle and handles of nothing, with a buffer that would
        // be refused: the handle is checked first.
        for handle in NO_DEVICE.into_iter().chain([BLOCK]) {
            einval.push(hc(number, "buf", &[&hex(handle), "top", "60", "0"]));
        }
    }
    let n = hex(NET);
    let n = n.as_str();
    // Reads first (the tap is idle: nothing to read), then writes.
    let again = [
        hc(nr::NET_READ, "buf+0x100", &[n, "top-1", "0", "0"]),
        hc(nr::NET_READ, "buf+0x140", &[n, "top-1515", "1514", "0"]),
        hc(nr::NET_READ, "top-33", &[n, "buf+0x1000", "1514", "0"]),
        hc(nr::NET_READ, "buf+0x183", &[n, "buf+0x1001", "1514", "0"]),
    ];
    let ok = [
        // The smallest frame, guest code as a frame, the last legal buffer,
        // the last legal struct, and 1 MiB: the tender does not compare
        // lengths with the MTU (§6.4).
        hc(nr::NET_WRITE, "buf+0x200", &[n, "buf+0x1000", "14", "0"]),
        hc(nr::NET_WRITE, "buf+0x240", &[n, "text", "60", "0"]),
        hc(nr::NET_WRITE, "buf+0x280", &[n, "top-61", "60", "0"]),
        hc(nr::NET_WRITE, "top-33", &[n, "buf+0x1000", "60", "0"]),
        hc(
            nr::NET_WRITE,
            "buf+0x2c3",
            &[n, "buf+0x1000", "0x100000", "0"],
        ),
    ];
    let mut steps = einval.clone();
    steps.extend(again.iter().cloned());
    steps.extend(ok.iter().cloned());
    for image in both("hostile-dev") {
        let run = dev.run(&image, &[], &steps);
        assert_done(&run, "net requests");
        for step in &einval {
            let back = returned(&run, step);
            assert_eq!((back[2], ret(&back, 3)), (60, result::EINVAL), "{step}");
        }
        for step in &again {
            let back = returned(&run, step);
            assert_eq!(ret(&back, 3), result::AGAIN, "{step}: {}", run.output());
        }
        for step in &ok {
            assert_eq!(ret(&returned(&run, step), 3), result::OK, "{step}");
        }
    }
}

#[test]
fn net_requests_with_bad_buffers_or_lengths_stop_the_tender() {
    let Some(dev) = Devices::new("net-bad") else {
        return;
    };
    let n = hex(NET);
    // (hypercall, buffer, length) refused by the §5 check.
    let refused_buffers: [(u16, &str, u64); 8] = [
        (nr::NET_READ, "text", 64),
        (nr::NET_READ, "rodata", 16),
        (nr::NET_READ, "top-1514", 1514),
        (nr::NET_READ, "top", 0),
        (nr::NET_WRITE, "top-60", 60),
        (nr::NET_WRITE, "buf", u64::MAX),
        (nr::NET_WRITE, "ring", 60),
        (nr::NET_WRITE, "max", 60),
    ];
    for image in both("hostile-dev") {
        for (number, buffer, len) in refused_buffers {
            let steps = [
                format!("val:{buffer}"),
                hc(number, "buf", &[&n, buffer, &hex(len), "0"]),
            ];
            let run = dev.run(&image, &[], &steps);
            let gpa = value_of(&run, buffer);
            assert_stopped(&run, &refused(number, gpa, len), &steps[1]);
        }
        // Frames shorter than an Ethernet header: the tap refuses them,
        // and a failed write ends the tender (§6.4).
        for len in ["0", "13"] {
            let step = hc(nr::NET_WRITE, "buf", &[&n, "buf+0x1000", len, "0"]);
            let run = dev.run(&image, &[], std::slice::from_ref(&step));
            assert_stopped(
                &run,
                &format!("Fatal error when writing to {}: Invalid argument", dev.tap),
                &step,
            );
        }
    }
}

/// Argument structs in read-only memory (guest code, read-only data): the
/// tender may read them (§5) but not write its results back, and stops the
/// guest with "Invalid guest access" instead of crashing.
#[test]
fn argument_structs_in_read_only_memory_are_refused() {
    for image in both("hostile") {
        for (number, at) in [
            (nr::WALLTIME, "text"),
            (nr::WALLTIME, "rodata"),
            (nr::POLL, "ro_poll"),
        ] {
            let steps = [format!("val:{at}"), hc(number, at, &[])];
            let run = plain(&image, &steps);
            let gpa = value_of(&run, at);
            assert_stopped(&run, &refused(number, gpa, size_of_arg(number)), &steps[1]);
        }
    }
    let Some(dev) = Devices::new("ro-args") else {
        return;
    };
    for image in both("hostile-dev") {
        for (number, at) in [
            (nr::BLOCK_READ, "ro_block"),
            (nr::BLOCK_WRITE, "ro_block"),
            (nr::NET_READ, "ro_net"),
            (nr::NET_WRITE, "ro_net"),
        ] {
            let steps = [
                format!("val:{at}"),
                "fill:buf:64:0x5a".to_string(),
                hc(number, at, &[]),
            ];
            let run = dev.run(&image, &[], &steps);
            let gpa = value_of(&run, at);
            assert_stopped(&run, &refused(number, gpa, size_of_arg(number)), &steps[2]);
        }
        dev.reset_image();
    }
}

/// The same BLOCK_WRITE, refused because its result cannot be written
/// back, must not have written the image either. It has: the tender checks
/// the struct for reading, does the `pwrite`, and only then finds it cannot
/// store `ret` (likewise NET_WRITE sends its frame and POLL waits first).
#[test]

fn a_block_write_refused_for_its_read_only_struct_leaves_the_image_alone() {
    let Some(dev) = Devices::new("ro-write") else {
        return;
    };
    for image in both("hostile-dev") {
        let steps = [
            "fill:buf:64:0x5a".to_string(),
            hc(nr::BLOCK_WRITE, "ro_block", &[]),
        ];
        let run = dev.run(&image, &[], &steps);
        assert_eq!(run.code, 1, "{}", run.output());
        dev.assert_image_unchanged("BLOCK_WRITE with a read-only struct");
    }
}

/// Offsets in the ring (§6.7).
const ENT_TAIL: u64 = 0;
const ENT_HEAD: u64 = 64;
const COM_TAIL: u64 = 68;
const ENTRIES: u64 = 128;
const COMMITS: u64 = 32_896;

/// Steps that fill ring entry `slot`.
fn ring_entry(
    slot: u64,
    operation: u32,
    handle: u64,
    data: &str,
    len: u64,
    id: u32,
) -> Vec<String> {
    let at = ENTRIES + 32 * slot;
    vec![
        format!("w32:ring+{at}:{operation}"),
        format!("w32:ring+{}:{handle}", at + 4),
        format!("w64:ring+{}:{data}", at + 8),
        format!("w32:ring+{}:{len}", at + 16),
        format!("w32:ring+{}:{id}", at + 20),
    ]
}

/// Steps that publish entries up to `tail`, ring the doorbell and wait up
/// to 2 s for the host to consume them.
fn ring_publish(tail: u64) -> Vec<String> {
    vec![
        format!("w32:ring+{ENT_TAIL}:{tail}"),
        "out:0x600:4:0".into(),
        format!("wait32:ring+{ENT_HEAD}:{tail}:2000"),
    ]
}

#[test]
fn ring_doorbell_and_entries_misused() {
    let Some(dev) = Devices::new("ring") else {
        return;
    };
    let door = "Invalid guest port access: port=0x600";
    for (ours, image) in [true, false].into_iter().zip(both("hostile-dev")) {
        // The ring is offered at the top; the doorbell is served in the
        // kernel for the value 0 only, and only as a 4-byte OUT; our guests
        // may also ask for service with the value 1 (§12.8).
        let steps = [
            "r64:bi+40",
            "r64:bi+48",
            "out:0x600:4:0",
            // Two kicks as one string OUT.
            "w64:buf:0",
            "outs:0x600:buf:2",
        ]
        .map(String::from);
        let run = dev.run(&image, &[], &steps);
        assert_done(&run, "doorbell");
        // Bit 0, the ring; bit 2, service at exits, for our guests only.
        let features = returned(&run, "r64:bi+40")[0];
        assert_eq!(features & 1, 1, "{}", run.output());
        assert_eq!(features & 4 != 0, ours, "{}", run.output());
        assert_eq!(returned(&run, "r64:bi+48"), [MEM], "{}", run.output());
        let serve_now = ["out:0x600:4:1".to_owned()];
        let run = dev.run(&image, &[], &serve_now);
        if ours {
            assert_done(&run, "serve-now doorbell");
        } else {
            assert_stopped(&run, door, "serve-now doorbell of an upstream guest");
        }
        for step in [
            "out:0x600:4:2",
            "out:0x600:4:0xffffffff",
            "out:0x600:1:0",
            "out:0x600:2:0",
            "in:0x600:4",
            "in:0x600:1",
            "w32:buf:2 outs:0x600:buf:1",
        ] {
            let steps: Vec<String> = step.split(' ').map(String::from).collect();
            let run = dev.run(&image, &[], &steps);
            assert_stopped(&run, door, step);
        }
        // Without the ring, no doorbell.
        let steps = ["r64:bi+40", "out:0x600:4:0"].map(String::from);
        let run = dev.run(&image, &["--no-net-ring"], &steps);
        assert_stopped(&run, door, "--no-net-ring");
        assert_eq!(returned(&run, "r64:bi+40")[0] & 1, 0, "{}", run.output());

        // A hypercall argument inside the ring area: above the top.
        let step = hc(nr::WALLTIME, "ring+256", &[]);
        let run = dev.run(&image, &[], std::slice::from_ref(&step));
        assert_stopped(&run, &refused(nr::WALLTIME, MEM + 256, 8), &step);

        // Entries the host must survive: a read for the block handle (an
        // EINVAL commit), an unknown operation (skipped), a write for a
        // handle of nothing with a bad buffer (dropped without a word).
        let mut steps = ring_entry(0, 2, BLOCK, "buf", 100, 7);
        steps.extend(ring_entry(1, 9, NET, "top", 60, 8));
        steps.extend(ring_entry(2, 1, 64, "top", 60, 9));
        steps.extend(ring_publish(3));
        steps.push(format!("wait32:ring+{COM_TAIL}:1:2000"));
        steps.push(format!("r64:ring+{COMMITS}"));
        steps.push(format!("r64:ring+{}", COMMITS + 8));
        let run = dev.run(&image, &[], &steps);
        assert_done(&run, "odd ring entries");
        let waits: Vec<&String> = steps.iter().filter(|s| s.starts_with("wait32")).collect();
        for wait in waits {
            assert!(
                run.stdout.contains(&format!("hostile: {wait} => ok")),
                "{wait}: {}",
                run.output()
            );
        }
        let commit = returned(&run, &format!("r64:ring+{COMMITS}"))[0];
        let einval = u64::try_from(result::EINVAL).unwrap();
        assert_eq!(
            commit,
            7 | einval << 32,
            "commit id 7, EINVAL: {}",
            run.output()
        );
        assert_eq!(returned(&run, &format!("r64:ring+{}", COMMITS + 8)), [0]);

        // 1024 entries outstanding is a full ring (of zeros: skipped); 1025
        // is a corrupt one.
        let run = dev.run(&image, &[], &ring_publish(1024));
        assert_done(&run, "full ring");
        let run = dev.run(&image, &[], &ring_publish(1025));
        assert_stopped(
            &run,
            "net ring: invalid indices ent_head=0, ent_tail=1025",
            "1025 entries",
        );
        let run = dev.run(&image, &[], &ring_publish(u64::from(u32::MAX)));
        // The value the tender reports may be the tail half written: its
        // I/O thread may be awake (it spins a while after start) and read
        // the index while the guest writes it. Any such value is refused.
        assert_stopped(
            &run,
            "net ring: invalid indices ent_head=0, ent_tail=",
            "ent_tail u32::MAX",
        );

        // Buffers the §5 check refuses, from the ring thread.
        for (operation, data, len) in [
            (1, "top-10", 60),
            (1, "ring", 60),
            (2, "text", 64),
            (2, "top", 0),
        ] {
            let mut steps = vec![format!("val:{data}")];
            steps.extend(ring_entry(0, operation, NET, data, len, 1));
            steps.extend(ring_publish(1));
            let run = dev.run(&image, &[], &steps);
            let gpa = value_of(&run, data);
            assert_stopped(
                &run,
                &format!("net ring: Invalid guest access: gpa={gpa:#x}, sz={len}"),
                &steps.join(" "),
            );
        }
        // A frame too short for the tap, sent through the ring.
        let mut steps = ring_entry(0, 1, NET, "buf", 0, 1);
        steps.extend(ring_publish(1));
        let run = dev.run(&image, &[], &steps);
        assert_stopped(
            &run,
            &format!(
                "Fatal error when writing to {} (ring): Invalid argument",
                dev.tap
            ),
            "empty ring frame",
        );
    }
    dev.assert_image_unchanged("ring");
}
