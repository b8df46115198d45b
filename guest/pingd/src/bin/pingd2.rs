//! `pingd2.hvt --ipv4=ADDR --ipv4-second=ADDR [--limit=N]` on two
//! interfaces, "service0" and "service1" (handles 1 and 2).
#![no_std]
#![no_main]

hvt_runtime::manifest!(net "service0", net "service1");
hvt_runtime::main!(main);

async fn main(args: hvt_runtime::Args) -> Result<(), &'static str> {
    pingd::run(&["service0", "service1"], args).await
}
