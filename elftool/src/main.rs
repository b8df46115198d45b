//! `hvt-elftool gen-manifest MANIFEST.json OUTPUT.c`: the C source of the
//! MFT1 note (§1.3, §4.3) that declares a C unikernel's devices, from
//! Solo5's JSON manifest format, as `solo5-elftool gen-manifest` makes it.
//! `scripts/hvt-cc` compiles the output into the image.

mod json;
mod note;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: hvt-elftool gen-manifest MANIFEST.json OUTPUT.c";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, source, output] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    if command != "gen-manifest" {
        eprintln!("hvt-elftool: unknown command: {command}\n{USAGE}");
        return ExitCode::FAILURE;
    }
    match gen_manifest(Path::new(source), Path::new(output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hvt-elftool: {message}");
            ExitCode::FAILURE
        }
    }
}

fn gen_manifest(source: &Path, output: &Path) -> Result<(), String> {
    let name = source.display();
    let text = std::fs::read_to_string(source)
        .map_err(|e| format!("{name}: Could not open for reading: {e}"))?;
    let devices = json::parse(&text).map_err(|e| format!("{name}: {e}"))?;
    let c_source = note::c_source(&devices, &name.to_string());
    std::fs::write(output, c_source)
        .map_err(|e| format!("{}: Could not open for writing: {e}", output.display()))
}
