//! Solo5's conformance cases for hvt (§10 of the ABI notes), with C guests
//! of our own (`tests/conformance/`) built against our Solo5 C API by
//! `scripts/hvt-cc`, run under the tender and checked as upstream's
//! `tests.bats` checks them: exit code, and text in the output.
//!
//! Every guest carries our unprivileged note, so the tender runs it at
//! CPL 3; each case that means something at CPL 0 runs there too, on a copy
//! without the note (`cpl0_copy_of`). The guests are built with
//! `-mgeneral-regs-only` so that their CPL 0 copies contain no SSE, which
//! this project's KVM host cannot run at CPL 0 (§11); `fpu` is the
//! exception and runs at CPL 3 only. CPL 0 code is emulated here (§11), so
//! the CPL 0 runs of the cases that loop are scaled down: a smaller disk,
//! fewer pings, one sleep.
//!
//! `tests/conformance/README.md` lists the cases, what each checks, and the
//! Rust guests and tests that cover the same ground.
//!
//! `HVT_CC=PATH` builds the guests with another wrapper of `hvt-cc`'s
//! command line instead of `scripts/hvt-cc`.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{
    cpl0_copy_of, is_root, repo_root, scratch, tender, ConsoleLines, Elf, NetNs, Run, PT_NOTE,
};
use hvt_abi::note::{MFT1_NOTE_TYPE, UNPRIVILEGED_NOTE_TYPE};

/// Guest memory of every run. Upstream's suite gives 4096 MiB; these
/// guests need far less, and a small guest boots faster.
const MEM: &str = "--mem=8";

// ---------------------------------------------------------------------------
// Building the guests

/// How one guest image is built: `hvt-cc [--manifest=MANIFEST] -o IMAGE
/// SOURCE FLAGS...`, all paths relative to `tests/conformance/`.
struct Build {
    image: &'static str,
    source: &'static str,
    manifest: Option<&'static str>,
    flags: &'static [&'static str],
}

/// No SSE, so that the image also runs at CPL 0 here (§11).
const NO_SSE: &[&str] = &["-mgeneral-regs-only"];

const fn build(image: &'static str, source: &'static str, manifest: Option<&'static str>) -> Build {
    Build {
        image,
        source,
        manifest,
        flags: NO_SSE,
    }
}

const BUILDS: &[Build] = &[
    build("hello", "hello.c", None),
    build("quiet", "quiet.c", None),
    build("output", "output.c", None),
    build("globals", "globals.c", None),
    build("exception", "exception.c", None),
    build("zeropage", "zeropage.c", None),
    build("notls", "notls.c", None),
    build("xnow", "xnow.c", None),
    build("rnow", "rnow.c", None),
    build("tls", "tls.c", None),
    build("ssp", "ssp.c", None),
    build("time", "time.c", None),
    build("blk", "blk.c", Some("blk.json")),
    build(
        "mft_maxdevices",
        "mft_maxdevices.c",
        Some("mft_maxdevices.json"),
    ),
    build("net", "net.c", Some("net.json")),
    Build {
        image: "net_2if",
        source: "net.c",
        manifest: Some("net_2if.json"),
        flags: &["-mgeneral-regs-only", "-DNICS=2"],
    },
    build("net_mtu", "net_mtu.c", Some("net.json")),
    // SSE on purpose; CPL 3 only.
    Build {
        image: "fpu",
        source: "fpu.c",
        manifest: None,
        flags: &[],
    },
];

/// The guests' sources.
fn sources() -> PathBuf {
    repo_root().join("tests").join("conformance")
}

/// The compiler wrapper: `$HVT_CC`, else `scripts/hvt-cc`.
fn hvt_cc() -> PathBuf {
    std::env::var_os("HVT_CC")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("scripts").join("hvt-cc"))
}

/// Runs `hvt-cc` on `source` (relative to the sources) with `manifest`,
/// writing `output`.
fn hvt_cc_command(source: &str, manifest: Option<&str>, output: &Path, flags: &[&str]) -> Command {
    let mut command = Command::new(hvt_cc());
    // hvt-cc runs cargo for the C API library: none of this test's cargo
    // settings may leak into that build (as `common::guest_dir`).
    common::without_host_build_settings(command.current_dir(sources()));
    if let Some(manifest) = manifest {
        command.arg(format!("--manifest={manifest}"));
    }
    command.arg("-o").arg(output).arg(source).args(flags);
    command
}

/// The image `name` of [`BUILDS`], built once per test process.
fn image(name: &str) -> &'static Path {
    static IMAGES: [OnceLock<PathBuf>; BUILDS.len()] = [const { OnceLock::new() }; BUILDS.len()];
    let index = BUILDS
        .iter()
        .position(|b| b.image == name)
        .unwrap_or_else(|| panic!("no conformance guest {name}"));
    IMAGES[index].get_or_init(|| {
        let b = &BUILDS[index];
        let output = scratch("conformance").join(format!("{}.hvt", b.image));
        let out = hvt_cc_command(b.source, b.manifest, &output, b.flags)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", hvt_cc().display()));
        assert!(
            out.status.success(),
            "building {name} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            has_note(&Elf::load(&output), UNPRIVILEGED_NOTE_TYPE),
            "{name}: hvt-cc's image lacks our unprivileged note"
        );
        output
    })
}

/// Whether one of the image's PT_NOTE segments starts with a note of `n_type`.
fn has_note(elf: &Elf, n_type: u32) -> bool {
    elf.phdrs_of(PT_NOTE).into_iter().any(|i| {
        let offset = elf.u64_at(elf.phdr(i) + Elf::P_OFFSET);
        let offset = usize::try_from(offset).expect("a file offset");
        elf.bytes.len() >= offset + 12 && elf.u32_at(offset + common::NOTE_TYPE) == n_type
    })
}

// ---------------------------------------------------------------------------
// Running them

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cpl {
    /// The image as built: the tender runs it at CPL 3.
    Three,
    /// A copy without our note: the tender runs it at CPL 0, as upstream.
    Zero,
}

/// The kernel to run for guest `name` at `cpl`.
fn kernel(name: &str, cpl: Cpl) -> PathBuf {
    match cpl {
        Cpl::Three => image(name).to_owned(),
        Cpl::Zero => cpl0_copy_of(image(name)),
    }
}

/// The tender's arguments: memory, `options`, `--`, the kernel, `args`.
fn tender_args(name: &str, cpl: Cpl, options: &[&str], args: &[&str]) -> Vec<String> {
    let mut all = vec![MEM.to_owned()];
    all.extend(options.iter().map(|&o| o.to_owned()));
    all.push("--".to_owned());
    all.push(kernel(name, cpl).to_string_lossy().into_owned());
    all.extend(args.iter().map(|&a| a.to_owned()));
    all
}

/// Runs guest `name` at `cpl` to its end.
fn run(name: &str, cpl: Cpl, options: &[&str], args: &[&str]) -> Run {
    tender(tender_args(name, cpl, options, args))
}

/// Upstream's `expect_success`: exit 0 and "SUCCESS" in the output.
fn assert_success(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what}: {}", run.output());
    assert!(run.output().contains("SUCCESS"), "{what}: {}", run.output());
}

/// A page fault. At CPL 3 the tender's trap path takes it (§12.4): the
/// tender reports vector 14 with `cr2` the faulting address, and exits
/// 255, the status of upstream's ABORT. At CPL 0 the C API's IDT takes it,
/// as upstream's bindings do: the trap report with `cr2`, "ABORT", the
/// HALT status 255.
fn assert_page_fault(run: &Run, cpl: Cpl, cr2: u64, what: &str) {
    let out = run.output();
    match cpl {
        Cpl::Three => {
            common::assert_guest_fault(run, true, what);
            // A user-mode access (error bit 2), read or write.
            assert!(
                run.stderr
                    .contains("Guest fault: vector 14 (#PF) error=0x4 ")
                    || run
                        .stderr
                        .contains("Guest fault: vector 14 (#PF) error=0x6 "),
                "{what}: {out}"
            );
            assert!(
                run.stderr.contains(&format!(" cr2={cr2:#x} ")),
                "{what}: {out}"
            );
        }
        Cpl::Zero => {
            assert_eq!(run.code, 255, "{what}: {out}");
            assert!(
                run.stdout.contains("Solo5: trap: type=#PF ec=0x"),
                "{what}: {out}"
            );
            assert!(
                run.stdout
                    .contains(&format!("Solo5: trap: cr2={cr2:#x}\nSolo5: ABORT: ")),
                "{what}: {out}"
            );
            assert!(run.stdout.contains(": Fatal trap\n"), "{what}: {out}");
        }
    }
    assert!(!out.contains("FAILURE"), "{what}: {out}");
}

/// A zero-filled (sparse) image file of `len` bytes.
fn blank_image(tag: &str, name: &str, len: u64) -> PathBuf {
    let path = scratch(tag).join(name);
    File::create(&path)
        .and_then(|f| f.set_len(len))
        .expect("create an image file");
    path
}

// ---------------------------------------------------------------------------
// Cases without devices

/// noexec host: the image names an interpreter that does not exist
/// (§1.4), so the host kernel refuses to run it (upstream: the shell's 127
/// and "No such file or directory"; here execve's ENOENT itself).
#[test]
fn noexec_host() {
    use std::os::unix::fs::PermissionsExt;
    let path = image("hello");
    let mode = std::fs::metadata(path).expect("stat").permissions().mode();
    assert_ne!(mode & 0o111, 0, "hvt-cc's image is not executable");
    let err = Command::new(path)
        .output()
        .expect_err("the host ran the unikernel");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
}

fn hello(cpl: Cpl) {
    let run = run("hello", cpl, &[], &["Hello_Solo5"]);
    assert_success(&run, "hello");
    assert!(run.stdout.contains("Hello, World\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("Command line is: 'Hello_Solo5'\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn hello_cpl3() {
    hello(Cpl::Three);
}

#[test]
fn hello_cpl0() {
    hello(Cpl::Zero);
}

/// The guest also fails if the option reached its command line.
fn quiet(cpl: Cpl) {
    let run = run("quiet", cpl, &[], &["--solo5:quiet"]);
    assert_success(&run, "quiet");
    assert!(!run.output().contains("Solo5:"), "{}", run.output());
}

#[test]
fn quiet_cpl3() {
    quiet(Cpl::Three);
}

#[test]
fn quiet_cpl0() {
    quiet(Cpl::Zero);
}

/// The text `output.c` writes in one call.
fn output_text() -> String {
    (0..65)
        .map(|line: u32| {
            let letters: String = (line..line + 48)
                .map(|l| char::from(b'a' + u8::try_from(l % 26).expect("below 26")))
                .collect();
            format!("output line {line:02} {letters}\n")
        })
        .collect()
}

/// Upstream checks the exit code only; here the text arrives whole, once.
fn output(cpl: Cpl) {
    let text = output_text();
    assert_eq!(text.len(), 4160);
    let run = run("output", cpl, &[], &["Output_Solo5"]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert_eq!(run.stdout.matches(&text).count(), 1, "{}", run.stdout);
}

#[test]
fn output_cpl3() {
    output(Cpl::Three);
}

#[test]
fn output_cpl0() {
    output(Cpl::Zero);
}

#[test]
fn globals_cpl3() {
    assert_success(&run("globals", Cpl::Three, &[], &[]), "globals");
}

#[test]
fn globals_cpl0() {
    assert_success(&run("globals", Cpl::Zero, &[], &[]), "globals");
}

#[test]
fn exception_cpl3() {
    let run = run("exception", Cpl::Three, &[], &[]);
    assert_page_fault(&run, Cpl::Three, 0x4_0000_0000, "exception");
}

#[test]
fn exception_cpl0() {
    let run = run("exception", Cpl::Zero, &[], &[]);
    assert_page_fault(&run, Cpl::Zero, 0x4_0000_0000, "exception");
}

/// `--dumpcore` with the C API's trap frame as the HALT cookie (§6.6):
/// the core's `rip` and `rsp` are the trap report's, not the HALT's.
#[test]
fn exception_cpl0_dumps_the_trap_frame() {
    let dir = scratch("conformance-dumpcore");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let option = format!("--dumpcore={}", dir.display());
    let run = run("exception", Cpl::Zero, &[&option], &[]);
    assert_page_fault(&run, Cpl::Zero, 0x4_0000_0000, "exception");
    let reported = |name: &str| {
        let at = run
            .stdout
            .find(&format!(" {name}=0x"))
            .expect("trap report")
            + name.len()
            + 4;
        let digits: String = run.stdout[at..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        u64::from_str_radix(&digits, 16).unwrap()
    };
    let cores: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(cores.len(), 1, "{}", run.output());
    let core = std::fs::read(cores[0].as_ref().unwrap().path()).unwrap();
    // NT_PRSTATUS after the ELF header, two program headers, the note's
    // header and name; its registers 112 bytes in (user_regs_struct).
    let register = |index: usize| {
        let at = 64 + 2 * 56 + 12 + 8 + 112 + 8 * index;
        u64::from_le_bytes(core[at..at + 8].try_into().unwrap())
    };
    assert_eq!(register(16), reported("rip"), "rip");
    assert_eq!(register(19), reported("rsp"), "rsp");
    assert_eq!(register(18), reported("rflags"), "rflags");
}

#[test]
fn zeropage_cpl3() {
    let run = run("zeropage", Cpl::Three, &[], &[]);
    assert_page_fault(&run, Cpl::Three, 8, "zeropage");
}

#[test]
fn zeropage_cpl0() {
    let run = run("zeropage", Cpl::Zero, &[], &[]);
    assert_page_fault(&run, Cpl::Zero, 8, "zeropage");
}

#[test]
fn notls_cpl3() {
    let run = run("notls", Cpl::Three, &[], &[]);
    assert_page_fault(&run, Cpl::Three, 0x28, "notls");
}

#[test]
fn notls_cpl0() {
    let run = run("notls", Cpl::Zero, &[], &[]);
    assert_page_fault(&run, Cpl::Zero, 0x28, "notls");
}

/// xnow, and rnow (which upstream runs on OpenBSD only, but which holds on
/// Linux too): a store into the guest's text or read-only data. The host
/// maps both read-only (§2), so the tender reports a translation fault at
/// either level. (xnor, rnox and wnox are OpenBSD-only upstream and not
/// here: on Linux nothing stops a guest from reading its text or executing
/// its data, §2.)
fn store_into_read_only(name: &str, cpl: Cpl) {
    let run = run(name, cpl, &[], &[]);
    assert_eq!(run.code, 1, "{name}: {}", run.output());
    assert!(
        run.stderr
            .contains("tender: KVM: host/guest translation fault: rip=0x"),
        "{name}: {}",
        run.output()
    );
    assert!(!run.output().contains("FAILURE"), "{}", run.output());
}

#[test]
fn xnow_cpl3() {
    store_into_read_only("xnow", Cpl::Three);
}

#[test]
fn xnow_cpl0() {
    store_into_read_only("xnow", Cpl::Zero);
}

#[test]
fn rnow_cpl3() {
    store_into_read_only("rnow", Cpl::Three);
}

#[test]
fn rnow_cpl0() {
    store_into_read_only("rnow", Cpl::Zero);
}

/// At CPL 3 the C API sets the FS base with `wrfsbase`, at CPL 0 with
/// `wrmsr` as upstream does: both levels matter.
#[test]
fn tls_cpl3() {
    assert_success(&run("tls", Cpl::Three, &[], &[]), "tls");
}

#[test]
fn tls_cpl0() {
    assert_success(&run("tls", Cpl::Zero, &[], &[]), "tls");
}

/// Upstream's `expect_abort`: exit 255 and "ABORT" in the output.
fn ssp(cpl: Cpl) {
    let run = run("ssp", cpl, &[], &[]);
    assert_eq!(run.code, 255, "{}", run.output());
    assert!(run.output().contains("ABORT"), "{}", run.output());
    assert!(!run.output().contains("FAILURE"), "{}", run.output());
}

#[test]
fn ssp_cpl3() {
    ssp(Cpl::Three);
}

#[test]
fn ssp_cpl0() {
    ssp(Cpl::Zero);
}

/// CPL 3 only: SSE at CPL 0 ends the VM on this project's KVM host (§11).
#[test]
fn fpu_cpl3() {
    assert_success(&run("fpu", Cpl::Three, &[], &[]), "fpu");
}

/// Upstream's five one-second sleeps.
#[test]
fn time_cpl3() {
    let run = run("time", Cpl::Three, &[], &["5"]);
    assert_success(&run, "time");
    assert_eq!(
        run.stdout.matches(" ns wall\n").count(),
        5,
        "{}",
        run.stdout
    );
}

/// One sleep: the sleeps are what this case spends its time on, and the
/// CPL 3 run already makes upstream's five.
#[test]
fn time_cpl0() {
    let run = run("time", Cpl::Zero, &[], &["1"]);
    assert_success(&run, "time");
}

// ---------------------------------------------------------------------------
// Block devices

/// blk on a fresh zero-filled image of `capacity` bytes with blocks of
/// `block_size` (none: the default, 512).
fn blk(cpl: Cpl, capacity: u64, block_size: Option<u64>) {
    let tag = format!("blk-{cpl:?}-{capacity}-{block_size:?}");
    let disk = blank_image(&tag, "storage.img", capacity);
    let mut options = vec![format!("--block:storage={}", disk.display())];
    if let Some(size) = block_size {
        options.push(format!("--block-sector-size:storage={size}"));
    }
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let run = run("blk", cpl, &options, &[]);
    assert_success(&run, "blk");
    let told = format!(
        "capacity {capacity}, block size {}\n",
        block_size.unwrap_or(512)
    );
    assert!(run.stdout.contains(&told), "{}", run.stdout);
}

/// Upstream's disk: 4 MiB.
const DISK: u64 = 4 << 20;
/// At CPL 0: 64 KiB. The guest's loops over each byte of a tenth of the
/// blocks of 4 MiB take about 2 s there (0.15 s at CPL 3); 64 KiB still
/// has every edge of the case.
const SMALL_DISK: u64 = 64 << 10;

#[test]
fn blk_cpl3() {
    blk(Cpl::Three, DISK, None);
}

#[test]
fn blk_cpl0() {
    blk(Cpl::Zero, SMALL_DISK, None);
}

#[test]
fn blk_sector_size_4096_cpl3() {
    blk(Cpl::Three, DISK, Some(4096));
}

#[test]
fn blk_sector_size_4096_cpl0() {
    blk(Cpl::Zero, SMALL_DISK, Some(4096));
}

/// blk misaligned, odd and too small: the tender refuses the image or the
/// block size before the guest runs, so one level is enough.
#[test]
fn blk_bad_images_are_refused() {
    for (name, len, block_size, message) in [
        (
            "misaligned",
            6 << 10,
            4096,
            "Backing storage size must be block aligned",
        ),
        ("odd", 3 * 521, 521, "Block size must be a multiple of 2"),
        (
            "too-small",
            256,
            256,
            "Block size must be a multiple of 2 greater than or equal 512",
        ),
    ] {
        let disk = blank_image(&format!("blk-{name}"), "storage.img", len);
        let run = run(
            "blk",
            Cpl::Three,
            &[
                &format!("--block:storage={}", disk.display()),
                &format!("--block-sector-size:storage={block_size}"),
            ],
            &[],
        );
        assert_eq!(run.code, 1, "{name}: {}", run.output());
        assert!(run.output().contains(message), "{name}: {}", run.output());
        assert!(!run.output().contains("conformance: blk"), "{name}");
    }
}

/// 63 block devices, the most a manifest holds; upstream's images are
/// 4 KiB each.
fn mft_maxdevices(cpl: Cpl) {
    let options: Vec<String> = (0..63)
        .map(|n| {
            let disk = blank_image(&format!("mft-{cpl:?}"), &format!("storage{n}.img"), 4096);
            format!("--block:storage{n}={}", disk.display())
        })
        .collect();
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let run = run("mft_maxdevices", cpl, &options, &[]);
    assert_success(&run, "mft_maxdevices");
}

#[test]
fn mft_maxdevices_cpl3() {
    mft_maxdevices(Cpl::Three);
}

#[test]
fn mft_maxdevices_cpl0() {
    mft_maxdevices(Cpl::Zero);
}

// ---------------------------------------------------------------------------
// The toolchain and bad images

/// too_many_entries: a manifest of 64 devices is one more than a manifest
/// holds beside its reserved entry (§4.3); the manifest tool refuses it.
#[test]
fn too_many_entries_are_refused_by_the_manifest_tool() {
    let output = scratch("conformance").join("too_many_entries.hvt");
    let out = hvt_cc_command("hello.c", Some("too_many_entries.json"), &output, NO_SSE)
        .output()
        .expect("run hvt-cc");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("too many entries, maximum 63"), "{text}");
    assert!(!output.exists(), "hvt-cc left an image behind");
}

/// buggyelf: upstream ships a prebuilt image whose note does not fit its
/// segment. `tests/bad_elf.rs` breaks every note field of our Rust `hello`
/// one at a time; here the same check holds for an image of the C
/// toolchain: its manifest note claims a descriptor longer than its
/// PT_NOTE segment (§1.4).
#[test]
fn buggy_elf_is_refused() {
    let mut elf = Elf::load(image("hello"));
    let off = elf.note_offset(MFT1_NOTE_TYPE);
    let descsz = off + 4; // n_descsz follows n_namesz
    let filesz = elf.u64_at(elf.phdr(elf.note_phdr(MFT1_NOTE_TYPE)) + Elf::P_FILESZ);
    elf.set_u32(descsz, u32::try_from(filesz).expect("a small note"));
    let path = common::write_image("buggyelf", "buggyelf.hvt", &elf.bytes);
    let run = tender([MEM.as_ref(), path.as_os_str()]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr.contains("note does not fall within valid size"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
}

// ---------------------------------------------------------------------------
// Network devices (as root: each test makes a namespace and taps of its own)

/// Echo requests the guest answers before it exits, at CPL 3 and CPL 0.
/// Upstream floods 100 000 (net_ring: 10 000); here a CPL 3 guest answers
/// about 4000 a second (each costs it three exits) and a CPL 0 guest, whose
/// code is emulated, about 2000: a few seconds at most.
const PINGS_CPL3: u32 = 10_000;
const PINGS_CPL0: u32 = 1000;

fn pings(cpl: Cpl) -> u32 {
    match cpl {
        Cpl::Three => PINGS_CPL3,
        Cpl::Zero => PINGS_CPL0,
    }
}

/// A tender running in the background, its console read as it comes.
struct Background {
    child: Child,
    console: ConsoleLines,
}

impl Background {
    fn start(ns: &NetNs, args: &[String]) -> Background {
        let mut child = ns
            .tender_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the tender");
        let console = ConsoleLines::capture(&mut child);
        Background { child, console }
    }

    /// Waits for the guest to say `text` (it is ready for traffic).
    fn wait_for(&mut self, text: &str) {
        self.console.wait_for(text, Duration::from_secs(20));
    }

    /// Waits for the guest to end by itself: its exit code and output.
    fn wait(mut self) -> (i32, String) {
        let status = self.child.wait().expect("wait for the tender");
        self.console.settle(Duration::from_millis(200));
        (status.code().unwrap_or(-1), self.console.output())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Ends a tender a failed test left running; one that was reaped
        // (by `wait`) is left alone, its process id may be another's now.
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signals our own child process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// `ping -f -q -c COUNT [EXTRA] TARGET` inside `ns`; fails unless every
/// request got its reply. At most 30 s: a flood to a guest that is gone
/// slows to 100 requests a second.
fn flood(ns: &NetNs, target: &str, count: u32, extra: &[&str]) {
    let out = ns
        .exec("ping")
        .args(["-f", "-q", "-W", "2", "-w", "30", "-c", &count.to_string()])
        .args(extra)
        .arg(target)
        .output()
        .expect("run ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{count} packets transmitted, {count} received")),
        "ping {target}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// net (and net_ring with `pattern`): one tap, 10.0.0.1 on the host side;
/// the guest answers `pings(cpl)` echo requests from one flood.
fn net(cpl: Cpl, pattern: bool) {
    if !is_root() {
        eprintln!("skipped: needs root for a network namespace");
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.0.0.1/24"));
    let count = pings(cpl);
    let mut args = vec![count.to_string()];
    if pattern {
        args.push("verify".to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut guest = Background::start(
        &ns,
        &tender_args("net", cpl, &[&format!("--net:service0={tap}")], &args),
    );
    guest.wait_for("echo requests");
    let extra: &[&str] = if pattern { &["-p", "deadbeef"] } else { &[] };
    flood(&ns, "10.0.0.2", count, extra);
    let (code, output) = guest.wait();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("SUCCESS"), "{output}");
    assert!(
        output.contains(&format!("answered {count} echo requests")),
        "{output}"
    );
}

#[test]
fn net_cpl3() {
    net(Cpl::Three, false);
}

#[test]
fn net_cpl0() {
    net(Cpl::Zero, false);
}

/// net_ring: every echo request's payload arrives intact (upstream: Linux
/// only, through its shared-memory ring; here through whatever path the
/// C API takes).
#[test]
fn net_ring_cpl3() {
    net(Cpl::Three, true);
}

#[test]
fn net_ring_cpl0() {
    net(Cpl::Zero, true);
}

/// net_2if: two taps, 10.0.0.1 and 10.1.0.1; two floods at once, half the
/// requests each, so the guest sees both handles in one ready set.
fn net_2if(cpl: Cpl) {
    if !is_root() {
        eprintln!("skipped: needs root for a network namespace");
        return;
    }
    let mut ns = NetNs::new();
    let tap0 = ns.add_tap(None, true, Some("10.0.0.1/24"));
    let tap1 = ns.add_tap(None, true, Some("10.1.0.1/24"));
    let count = pings(cpl);
    let mut guest = Background::start(
        &ns,
        &tender_args(
            "net_2if",
            cpl,
            &[
                &format!("--net:service0={tap0}"),
                &format!("--net:service1={tap1}"),
            ],
            &[&count.to_string()],
        ),
    );
    guest.wait_for("echo requests");
    std::thread::scope(|s| {
        let first = s.spawn(|| flood(&ns, "10.0.0.2", count / 2, &[]));
        flood(&ns, "10.1.0.2", count / 2, &[]);
        first.join().expect("the first flood");
    });
    let (code, output) = guest.wait();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("SUCCESS"), "{output}");
}

#[test]
fn net_2if_cpl3() {
    net_2if(Cpl::Three);
}

#[test]
fn net_2if_cpl0() {
    net_2if(Cpl::Zero);
}

/// net_mtu: the tap's MTU of 9000 reaches the guest.
fn net_mtu(cpl: Cpl) {
    if !is_root() {
        eprintln!("skipped: needs root for a network namespace");
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(Some(9000), true, None);
    let run: Run = ns.tender(tender_args(
        "net_mtu",
        cpl,
        &[&format!("--net:service0={tap}")],
        &[],
    ));
    assert_success(&run, "net_mtu");
    assert!(run.stdout.contains("MTU is 9000\n"), "{}", run.stdout);
}

#[test]
fn net_mtu_cpl3() {
    net_mtu(Cpl::Three);
}

#[test]
fn net_mtu_cpl0() {
    net_mtu(Cpl::Zero);
}

// ---------------------------------------------------------------------------
// The same images under upstream's solo5-hvt

/// Upstream's tender, when `SOLO5_HVT` names a build of it (not part of
/// CI, which has none): hvt-cc's images must run there at CPL 0 as they
/// run under ours, our note ignored.
fn upstream_tender() -> Option<PathBuf> {
    std::env::var_os("SOLO5_HVT")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
}

#[test]
fn the_images_run_on_upstream_solo5_hvt_too() {
    let Some(solo5_hvt) = upstream_tender() else {
        eprintln!("skipped: set SOLO5_HVT to upstream's solo5-hvt");
        return;
    };
    let upstream = |name: &str, args: &[&str]| -> Run {
        Command::new("timeout")
            .arg("60")
            .arg(&solo5_hvt)
            .arg(MEM)
            .arg("--")
            .arg(image(name))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run upstream's solo5-hvt")
            .into()
    };
    for (name, args) in [
        ("hello", &["Hello_Solo5"][..]),
        ("quiet", &["--solo5:quiet"][..]),
        ("globals", &[][..]),
        ("tls", &[][..]),
    ] {
        assert_success(&upstream(name, args), name);
    }
    let quiet = upstream("quiet", &["--solo5:quiet"]);
    assert!(!quiet.output().contains("Solo5:"), "{}", quiet.output());
    let smashed = upstream("ssp", &[]);
    assert_eq!(smashed.code, 255, "{}", smashed.output());
    assert!(smashed.output().contains("ABORT"), "{}", smashed.output());
    for (name, cr2) in [
        ("exception", 0x4_0000_0000),
        ("zeropage", 8),
        ("notls", 0x28),
    ] {
        assert_page_fault(&upstream(name, &[]), Cpl::Zero, cr2, name);
    }
}
