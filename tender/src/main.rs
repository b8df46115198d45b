//! `tender [--mem=MiB] [module options] [--] KERNEL [ARGS...]`

fn main() {
    // Arguments that are not UTF-8 are refused with one line, not a panic.
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(raw) => {
                eprintln!(
                    "tender: argument is not valid UTF-8: {}",
                    raw.to_string_lossy()
                );
                std::process::exit(tender_core::error::TENDER_ERROR_EXIT);
            }
        }
    }
    std::process::exit(tender::main_with_args(&args));
}
