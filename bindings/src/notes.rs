//! The ELF notes every guest carries (§1), and the [`manifest!`](crate::manifest) macro.

#[cfg(target_os = "none")]
use hvt_abi::note::{AbiNote, OpenBsdNote, UnprivilegedNote};

// The notes and the interpreter path only belong in guest images: in a host
// binary (tests against the mock tender) `.interp` would replace the real
// dynamic loader.
#[cfg(target_os = "none")]
#[used]
#[link_section = ".note.solo5.abi"]
static ABI_NOTE: AbiNote = AbiNote::HVT;

#[cfg(target_os = "none")]
#[used]
#[link_section = ".note.solo5.not_openbsd"]
static NOT_OPENBSD_NOTE: OpenBsdNote = OpenBsdNote::NOTE;

/// These bindings execute no privileged instruction: ask to run at CPL 3.
#[cfg(target_os = "none")]
#[used]
#[link_section = ".note.tender.unprivileged"]
static UNPRIVILEGED_NOTE: UnprivilegedNote = UnprivilegedNote::CPL3;

/// Makes the host kernel refuse to exec the image directly (§1.4).
#[cfg(target_os = "none")]
#[used]
#[link_section = ".interp"]
static INTERP: [u8; 20] = *b"/nonexistent/solo5/\0";

/// Declares the application's devices, in the MFT1 note (§1.3):
/// `manifest!(net "service", block "storage")`. Handles follow the order
/// given, starting at 1. An application without devices writes `manifest!()`.
///
/// On the host (`target_os != "none"`) there is no note: the macro defines
/// the constant `__HVT_MANIFEST` (the same entries, reserved first entry
/// included) in the calling module instead, from which the runtime's
/// `main!` learns what devices to attach when the application runs as a
/// host process. `manifest!` and `main!` therefore go in the same module.
/// A manifest holds at most 63 devices (64 entries with the reserved first
/// one), as Solo5's manifest tool allows; one more does not compile:
///
/// ```
/// hvt_bindings::manifest!(block "d0", block "d1", block "d2", block "d3", block "d4",
///     block "d5", block "d6", block "d7", block "d8", block "d9", block "d10", block "d11",
///     block "d12", block "d13", block "d14", block "d15", block "d16", block "d17",
///     block "d18", block "d19", block "d20", block "d21", block "d22", block "d23",
///     block "d24", block "d25", block "d26", block "d27", block "d28", block "d29",
///     block "d30", block "d31", block "d32", block "d33", block "d34", block "d35",
///     block "d36", block "d37", block "d38", block "d39", block "d40", block "d41",
///     block "d42", block "d43", block "d44", block "d45", block "d46", block "d47",
///     block "d48", block "d49", block "d50", block "d51", block "d52", block "d53",
///     block "d54", block "d55", block "d56", block "d57", block "d58", block "d59",
///     block "d60", block "d61", block "d62");
/// ```
///
/// ```compile_fail
/// hvt_bindings::manifest!(block "d0", block "d1", block "d2", block "d3", block "d4",
///     block "d5", block "d6", block "d7", block "d8", block "d9", block "d10", block "d11",
///     block "d12", block "d13", block "d14", block "d15", block "d16", block "d17",
///     block "d18", block "d19", block "d20", block "d21", block "d22", block "d23",
///     block "d24", block "d25", block "d26", block "d27", block "d28", block "d29",
///     block "d30", block "d31", block "d32", block "d33", block "d34", block "d35",
///     block "d36", block "d37", block "d38", block "d39", block "d40", block "d41",
///     block "d42", block "d43", block "d44", block "d45", block "d46", block "d47",
///     block "d48", block "d49", block "d50", block "d51", block "d52", block "d53",
///     block "d54", block "d55", block "d56", block "d57", block "d58", block "d59",
///     block "d60", block "d61", block "d62", block "d63");
/// ```
#[macro_export]
macro_rules! manifest {
    ($($kind:ident $name:literal),* $(,)?) => {
        const _: () = {
            use $crate::abi::manifest::{Mft, MftEntry, MftHeader};
            const NAMES: &[&str] = &[$($name),*];
            const ENTRIES: usize = 1 + NAMES.len();
            // As Solo5's manifest tool says it: a tender refuses more.
            const _: () = assert!(
                ENTRIES <= $crate::abi::manifest::MFT_MAX_ENTRIES,
                "manifest!: too many entries, maximum 63"
            );
            #[cfg(target_os = "none")]
            #[used]
            #[link_section = ".note.solo5.manifest"]
            static MANIFEST: $crate::abi::note::ManifestNote<ENTRIES> =
                $crate::abi::note::ManifestNote::new(Mft {
                    header: MftHeader { version: $crate::abi::manifest::MFT_VERSION, entries: ENTRIES as u32 },
                    entries: [MftEntry::RESERVED_FIRST, $(MftEntry::new($name, $crate::__device_kind!($kind))),*],
                });
        };
        #[cfg(not(target_os = "none"))]
        #[doc(hidden)]
        #[allow(dead_code)]
        const __HVT_MANIFEST: &[$crate::abi::manifest::MftEntry] = &[
            $crate::abi::manifest::MftEntry::RESERVED_FIRST,
            $($crate::abi::manifest::MftEntry::new($name, $crate::__device_kind!($kind))),*
        ];
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __device_kind {
    (net) => {
        $crate::abi::manifest::MFT_DEV_NET_BASIC
    };
    (block) => {
        $crate::abi::manifest::MFT_DEV_BLOCK_BASIC
    };
}

/// Names the application's entry point: `fn(&StartInfo) -> i32`, whose
/// return value is the exit status.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        extern "Rust" fn __hvt_app_main(start: &$crate::StartInfo) -> i32 {
            let main: fn(&$crate::StartInfo) -> i32 = $main;
            main(start)
        }
    };
}
