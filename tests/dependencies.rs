//! The guest runtime does not depend on KVM: on the host it runs against
//! the mock tender, which is built from the KVM-free tender-core.

mod common;

use std::process::Command;

/// `cargo tree -p PACKAGE -e normal`, one package name per line.
fn normal_dependencies(package: &str) -> Vec<String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(common::repo_root())
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_runtime_and_the_mock_have_no_kvm_and_no_tender() {
    for package in ["hvt-runtime", "tender-mock", "tender-core"] {
        let deps = normal_dependencies(package);
        assert!(deps.iter().any(|d| d == package), "{package}: {deps:?}");
        for banned in ["kvm-ioctls", "kvm-bindings", "tender"] {
            assert!(
                !deps.iter().any(|d| d == banned),
                "{package} depends on {banned}: {deps:?}"
            );
        }
    }
    // The check can fail: the tender itself has both.
    let tender = normal_dependencies("tender");
    assert!(tender.iter().any(|d| d == "kvm-ioctls"), "{tender:?}");
}
