//! Block I/O under KVM (§6.5, §12.6), through the runtime's guest API
//! (`hvt_runtime::block`): the probe `blockprobe` writes a pattern to every
//! 10th block and to the last block of a fresh image, reads the whole
//! device back, and checks that the API refuses bad requests in the guest
//! and the tender refuses raw ones beyond the end; then the test reads the
//! image's bytes on the host. With 512- and 4096-byte sectors, at CPL 3 and
//! CPL 0. Also: a read-only image is byte-identical after the guest tried
//! to write it, and what one run wrote the next run reads.

mod common;

use std::path::{Path, PathBuf};

use common::{cpl0_copy, guest, scratch, tender, Run};

/// Size of the test images: 8192 blocks of 512 bytes, 1024 of 4096; the
/// last block's number is not a multiple of 10.
const IMAGE_SIZE: u64 = 4 << 20;

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A zero-filled image of `size` bytes in this test's scratch directory.
fn fresh_image(tag: &str, size: u64) -> PathBuf {
    let image = scratch(tag).join("disk.img");
    let file = std::fs::File::create(&image).expect("create image");
    file.set_len(size).expect("size image");
    image
}

/// The probe's pattern for block `n` (see blockprobe.rs).
// reason: only the low byte is wanted.
#[allow(clippy::cast_possible_truncation)]
fn pattern(n: u64, block_size: usize) -> Vec<u8> {
    (0..block_size)
        .map(|i| match i {
            0..8 => n.to_le_bytes()[i],
            _ => (n.wrapping_add(i as u64) as u8) ^ 0xA5,
        })
        .collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn assert_ok(run: &Run) {
    assert_ne!(run.code, -1, "tender was killed: {}", run.output());
    assert!(!run.stderr.contains("panicked"), "{}", run.output());
    assert_eq!(run.code, 0, "{}", run.output());
}

/// The probe's `check` on a fresh image with `block_size`-byte sectors;
/// then the image, seen from the host.
fn check_probe(tag: &str, block_size: usize, cpl0: bool) {
    let image = fresh_image(tag, IMAGE_SIZE);
    let kernel = if cpl0 {
        cpl0_copy("blockprobe")
    } else {
        guest("blockprobe")
    };
    let mut args = vec![format!("--block:storage={}", path(&image))];
    if block_size != 512 {
        args.push(format!("--block-sector-size:storage={block_size}"));
    }
    args.extend([path(&kernel), "check".into()]);
    let run = tender(&args);
    assert_ok(&run);
    let blocks = IMAGE_SIZE / block_size as u64;
    let last = blocks - 1;
    let written = (0..blocks).filter(|n| n % 10 == 0 || *n == last).count();
    let line =
        format!("blockprobe: OK blocks={blocks} block_size={block_size} written={written}\n");
    assert!(run.stdout.contains(&line), "{}", run.output());
    let cpl = if cpl0 { "CPL 0" } else { "CPL 3" };
    assert!(run.stdout.contains(cpl), "{}", run.output());

    let bytes = std::fs::read(&image).expect("read image");
    assert_eq!(bytes.len() as u64, IMAGE_SIZE, "the image kept its size");
    let zeros = vec![0u8; block_size];
    for (n, block) in (0..blocks).zip(bytes.chunks(block_size)) {
        if n % 10 == 0 || n == last {
            assert!(
                block == pattern(n, block_size),
                "block {n} lacks the pattern"
            );
        } else {
            assert!(block == zeros, "block {n} was written");
        }
    }
    std::fs::remove_dir_all(scratch(tag)).ok();
}

#[test]
fn blocks_of_512_bytes_at_cpl3() {
    check_probe("blk512-cpl3", 512, false);
}

#[test]
fn blocks_of_512_bytes_at_cpl0() {
    check_probe("blk512-cpl0", 512, true);
}

#[test]
fn blocks_of_4096_bytes_at_cpl3() {
    check_probe("blk4096-cpl3", 4096, false);
}

#[test]
fn blocks_of_4096_bytes_at_cpl0() {
    check_probe("blk4096-cpl0", 4096, true);
}

#[test]
fn a_read_only_image_is_unchanged_after_the_guest_tried_to_write() {
    let image = scratch("blk-ro").join("base.img");
    let bytes: Vec<u8> = (0..256u32 << 10)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&image, &bytes).expect("write image");
    for kernel in [guest("blockprobe"), cpl0_copy("blockprobe")] {
        let run = tender([
            format!("--block-ro:storage={}", path(&image)),
            path(&kernel),
            "ro".into(),
        ]);
        assert_ok(&run);
        assert!(
            run.stdout
                .contains("blockprobe: ro OK api=ReadOnly raw=SOLO5_R_EUNSPEC\n"),
            "{}",
            run.output()
        );
        assert!(
            std::fs::read(&image).expect("read image") == bytes,
            "the read-only image changed"
        );
    }
    std::fs::remove_dir_all(scratch("blk-ro")).ok();
}

#[test]
fn what_one_run_writes_the_next_run_reads() {
    let image = fresh_image("blk-persist", 1 << 20);
    let storage = format!("--block:storage={}", path(&image));
    let probe = path(&guest("blockprobe"));
    let run = tender([&storage, &probe, "write-byte", "100", "171", "3"]);
    assert_ok(&run);
    assert!(
        run.stdout
            .contains("blockprobe: wrote 3 block(s) from 100 with byte 171\n"),
        "{}",
        run.output()
    );
    let bytes = std::fs::read(&image).expect("read image");
    assert!(bytes[100 * 512..103 * 512].iter().all(|&b| b == 171));
    assert!(bytes[..100 * 512].iter().all(|&b| b == 0));
    assert!(bytes[103 * 512..].iter().all(|&b| b == 0));

    let run = tender([&storage, &probe, "read-sum", "99", "5"]);
    assert_ok(&run);
    let expected = format!(
        "blockprobe: read-sum 99 5 fnv={:016x} first=0\n",
        fnv1a(&bytes[99 * 512..104 * 512])
    );
    assert!(run.stdout.contains(&expected), "{}", run.output());
    std::fs::remove_dir_all(scratch("blk-persist")).ok();
}

#[test]
fn raw_requests_reach_the_tender_unchecked() {
    let image = fresh_image("blk-raw", 64 << 10);
    let storage = format!("--block:storage={}", path(&image));
    let probe = path(&guest("blockprobe"));
    for (op, offset, len, answer) in [
        ("read", "1", "3", "OK"),
        ("write", "5", "2", "OK"),
        ("read", "0", "8192", "OK"),
        ("read", "65536", "512", "SOLO5_R_EINVAL"),
        ("write", "65535", "2", "SOLO5_R_EINVAL"),
    ] {
        let run = tender([&storage, &probe, "raw", op, offset, len]);
        assert_ok(&run);
        let line = format!("blockprobe: raw {op} {offset} {len} -> {answer}\n");
        assert!(run.stdout.contains(&line), "{}", run.output());
    }
    let bytes = std::fs::read(&image).expect("read image");
    assert_eq!(&bytes[..8], &[0, 0, 0, 0, 0, 0x5A, 0x5A, 0]);
    assert!(bytes[7..].iter().all(|&b| b == 0));
    std::fs::remove_dir_all(scratch("blk-raw")).ok();
}
