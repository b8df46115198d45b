//! Runs every fuzz target's harness over its corpus (`corpus/TARGET/`) and
//! over any crash or timeout libFuzzer left (`artifacts/TARGET/`), with a
//! stable toolchain and no sanitizer: `cargo test --manifest-path
//! fuzz/Cargo.toml`. A harness that panics fails the test, naming the file.

use std::path::Path;

type Harness = fn(&[u8]);

const TARGETS: [(&str, Harness); 4] = [
    ("elf", tender_fuzz::elf),
    ("cli", tender_fuzz::cli),
    ("hypercall", tender_fuzz::hypercall),
    ("ring", tender_fuzz::ring),
];

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|path| path.is_file());
    files.sort();
    files
}

/// One test, the targets in turn: the ring target tells its I/O thread by
/// name, so no other ring may run beside it.
#[test]
fn every_corpus_input_passes_its_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Only what is named, when asked: `REPLAY=artifacts/elf/crash-...`.
    if let Ok(only) = std::env::var("REPLAY") {
        let path = root.join(&only);
        let (_, harness) = TARGETS
            .iter()
            .find(|(name, _)| path.components().any(|c| c.as_os_str() == *name))
            .unwrap_or_else(|| panic!("{only}: not under a target's directory"));
        harness(&std::fs::read(&path).expect("read the input"));
        return;
    }
    for (name, harness) in TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "no seed corpus for {name}");
        for path in corpus
            .iter()
            .chain(&inputs(&root.join("artifacts").join(name)))
        {
            eprintln!("{name}: {}", path.display());
            harness(&std::fs::read(path).expect("read the input"));
        }
    }
}
