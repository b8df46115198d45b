//! `tender [--mem=MiB] [module options] [--] KERNEL [ARGS...]`

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(tender::main_with_args(&args));
}
