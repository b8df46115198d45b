//! `tender [--mem=MiB] [module options] [--] KERNEL [ARGS...]`

fn main() {
    // Rust starts programs with SIGPIPE ignored; upstream's C tender keeps
    // the default, so a console whose reader went away ends the tender by
    // that signal, as it ends `solo5-hvt` (docs/solo5-compatibility.md).
    // SAFETY: setting a signal's disposition to its default, before any
    // thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let mut args = std::env::args_os();
    // Every line on stderr names the program as it was invoked (a tender
    // installed as solo5-hvt says "solo5-hvt: ...").
    tender_core::diag::set_program_name(args.next().as_deref());
    let args: Vec<_> = args.collect();
    std::process::exit(tender::main_with_args(&args));
}
