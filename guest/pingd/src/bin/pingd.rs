//! `pingd.hvt --ipv4=ADDR [--limit=N]` on one interface, "service0".
#![no_std]
#![no_main]

hvt_runtime::manifest!(net "service0");
hvt_runtime::main!(main);

async fn main(args: hvt_runtime::Args) -> Result<(), &'static str> {
    pingd::run(&["service0"], args).await
}
