//! Attaching block images (§4.5, §6.5 and our extensions): what the guest
//! is told, every refusal with upstream's message, 63 devices at once, the
//! lock that keeps two tenders off one writable image, and read-only
//! images shared by several guests.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{guest, scratch, tender, write_image, Run};
use hvt_abi::manifest::MFT_MAX_ENTRIES;

fn blockhold() -> String {
    guest("blockhold").to_string_lossy().into_owned()
}

fn path(image: &Path) -> String {
    image.to_string_lossy().into_owned()
}

/// A clean refusal: exit 1, one message, nothing on stdout.
fn refused<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let run = tender(args);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(run.stdout, "", "{}", run.output());
    run
}

/// `blockhold` run with `options` ends with 0 and prints what it was `told`
/// of its device.
fn assert_told(options: &[String], told: &str) {
    let mut args = options.to_vec();
    args.push(blockhold());
    let run = tender(&args);
    assert_eq!(run.code, 0, "{options:?}: {}", run.output());
    assert!(
        run.stdout.contains(&format!("blockhold: {told}\n")),
        "{options:?}: {}",
        run.output()
    );
}

#[test]
fn the_guest_is_told_capacity_block_size_and_read_only() {
    let image = write_image("attach", "disk.img", &[0u8; 64 << 10]);
    for (options, told) in [
        (
            vec![format!("--block:storage={}", path(&image))],
            "capacity 65536 block size 512 read-only false",
        ),
        (
            vec![format!("--block={}", path(&image))],
            "capacity 65536 block size 512 read-only false",
        ),
        (
            vec![
                "--block-sector-size:storage=4096".into(),
                format!("--block:storage={}", path(&image)),
            ],
            "capacity 65536 block size 4096 read-only false",
        ),
        (
            vec![format!("--block-ro:storage={}", path(&image))],
            "capacity 65536 block size 512 read-only true",
        ),
    ] {
        assert_told(&options, told);
    }
}

#[test]
fn bad_images_are_refused_with_upstreams_messages() {
    let dir = scratch("bad-images");
    let missing = dir.join("missing.img");
    let unaligned = write_image("bad-images", "unaligned.img", &[0u8; 1000]);
    let empty = write_image("bad-images", "empty.img", &[]);
    let small = write_image("bad-images", "small.img", &[0u8; 2048]);
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![format!("--block:storage={}", path(&missing))],
            format!(
                "tender: Could not open block device: {}: No such file or directory\n",
                path(&missing)
            ),
        ),
        (
            vec![format!("--block:storage={}", path(&dir))],
            format!(
                "tender: Could not open block device: {}: Is a directory\n",
                path(&dir)
            ),
        ),
        (
            vec![format!("--block:storage={}", path(&unaligned))],
            "tender: storage: Backing storage size must be block aligned (512 bytes)\n".into(),
        ),
        (
            vec![format!("--block:storage={}", path(&empty))],
            "tender: storage: Backing storage must be at least 1 block (512 bytes) in size\n"
                .into(),
        ),
        (
            vec![
                format!("--block:storage={}", path(&small)),
                "--block-sector-size:storage=4096".into(),
            ],
            "tender: storage: Backing storage size must be block aligned (4096 bytes)\n".into(),
        ),
    ];
    for (options, message) in cases {
        let mut args = options.clone();
        args.push(blockhold());
        let run = refused(&args);
        assert_eq!(run.stderr, message, "{options:?}");
    }
    // A sector size that is not a power of two of at least 512: upstream's
    // warning, then the option is invalid and the usage text follows; not
    // a number: only the latter. (`%hu`: "4096k" is 4096, "65536" is 0.)
    let size = "Block size must be a multiple of 2 greater than or equal 512\ntender: ";
    for (value, why) in [
        ("1000", size),
        ("256", size),
        ("0", size),
        ("65536", size),
        ("k4", ""),
    ] {
        let option = format!("--block-sector-size:storage={value}");
        let run = refused([
            option.as_str(),
            &format!("--block:storage={}", path(&small)),
            &blockhold(),
        ]);
        assert!(
            run.stderr.starts_with(&format!(
                "tender: {why}Invalid option: `{option}'\nusage: tender "
            )),
            "{value}: {}",
            run.stderr
        );
    }
    // A device the manifest does not declare: the same three parts.
    for option in [
        format!("--block:nosuch={}", path(&small)),
        "--block-sector-size:nosuch=512".into(),
    ] {
        let run = refused([option.as_str(), &blockhold()]);
        assert!(
            run.stderr.starts_with(&format!(
                "tender: Resource not declared in manifest: 'nosuch'\n\
                 tender: Invalid option: `{option}'\nusage: tender "
            )),
            "{}",
            run.stderr
        );
    }
    // Declared but not attached.
    let run = refused([blockhold()]);
    assert!(
        run.stderr
            .starts_with("tender: Device 'storage' of type BLOCK_BASIC declared but not attached."),
        "{}",
        run.stderr
    );
}

#[test]
fn the_last_block_option_for_a_device_wins() {
    let small = write_image("twice", "small.img", &[0u8; 4096]);
    let large = write_image("twice", "large.img", &[0u8; 8192]);
    // The same image twice: the first is closed before the second opens
    // it, so its own lock does not refuse it.
    for (options, told) in [
        (
            vec![
                format!("--block:storage={}", path(&small)),
                format!("--block:storage={}", path(&small)),
            ],
            "capacity 4096 block size 512 read-only false",
        ),
        (
            vec![
                format!("--block:storage={}", path(&small)),
                "--block-sector-size:storage=1024".into(),
                format!("--block-ro:storage={}", path(&large)),
                "--block-sector-size:storage=2048".into(),
            ],
            "capacity 8192 block size 2048 read-only true",
        ),
    ] {
        assert_told(&options, told);
    }
}

#[test]
fn sixty_three_block_devices_at_once() {
    let devices = MFT_MAX_ENTRIES - 1;
    let images: Vec<PathBuf> = (1..=devices)
        .map(|i| write_image("blk63", &format!("d{i}.img"), &[0u8; 4096]))
        .collect();
    let mut args: Vec<String> = images
        .iter()
        .enumerate()
        .map(|(i, image)| format!("--block:d{}={}", i + 1, path(image)))
        .collect();
    args.push(guest("blk63").to_string_lossy().into_owned());
    let run = tender(&args);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.contains("blk63: 63 devices ok"),
        "{}",
        run.stdout
    );
    for (i, image) in images.iter().enumerate() {
        let bytes = std::fs::read(image).unwrap();
        let value = u8::try_from(i + 1).unwrap();
        assert_eq!(&bytes[..512], &[value; 512][..], "d{}", i + 1);
        assert_eq!(&bytes[512..], &[0u8; 4096 - 512][..], "d{}", i + 1);
    }
}

/// A tender holding `option` (an attachment of "storage") while its guest
/// sleeps, once the guest said what it was given.
fn holding(option: &str) -> Child {
    let mut child = Command::new(common::tender_bin())
        .args([option, &blockhold(), "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tender");
    // The guest prints once everything is attached and locked.
    let mut stdout = child.stdout.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("blockhold:") {
        assert!(Instant::now() < deadline, "the holder did not start");
        let mut byte = [0u8; 1];
        if std::io::Read::read(&mut stdout, &mut byte).unwrap_or(0) == 0 {
            panic!("the holder ended: {}", String::from_utf8_lossy(&seen));
        }
        seen.push(byte[0]);
    }
    child
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_second_tender_on_a_writable_image_is_refused() {
    let image = write_image("lock", "disk.img", &[0u8; 8192]);
    let image = path(&image);
    let first = holding(&format!("--block:storage={image}"));
    for option in [
        format!("--block:storage={image}"),
        format!("--block-ro:storage={image}"),
    ] {
        let run = refused([option.as_str(), &blockhold()]);
        let why = if option.starts_with("--block-ro") {
            "it is open for writing by another process"
        } else {
            "it is in use by another process"
        };
        assert_eq!(
            run.stderr,
            format!("tender: Could not lock block device: {image}: {why}\n")
        );
    }
    stop(first);
    // Once the first tender is gone, the image is free again.
    let run = tender([format!("--block:storage={image}"), blockhold()]);
    assert_eq!(run.code, 0, "{}", run.output());
}

#[test]
fn read_only_images_are_shared_and_never_written() {
    let image = write_image("shared", "base.img", &[0x5a; 8192]);
    let image = path(&image);
    let first = holding(&format!("--block-ro:storage={image}"));
    let second = holding(&format!("--block-ro:storage={image}"));
    // A writer is kept out while readers share it.
    let run = refused([format!("--block:storage={image}"), blockhold()]);
    assert_eq!(
        run.stderr,
        format!("tender: Could not lock block device: {image}: it is in use by another process\n")
    );
    stop(first);
    stop(second);
    assert_eq!(std::fs::read(&image).unwrap(), vec![0x5a; 8192]);
}

#[test]
fn sigterm_with_an_image_attached_syncs_and_exits_1() {
    let image = write_image("sigterm", "disk.img", &[0u8; 8192]);
    let child = holding(&format!("--block:storage={}", path(&image)));
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tender: Exiting on signal 15\n"
    );
}
