//! Puts the linker script where the guest's link step finds it: guests pass
//! `-C link-arg=-Thvt.lds` and the search path set here resolves it.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    std::fs::copy("hvt.lds", out.join("hvt.lds")).expect("copy hvt.lds");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=hvt.lds");
}
