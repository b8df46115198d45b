//! A task panics while main sleeps: the guest ends with the panic message
//! and exit 255.
#![no_std]
#![no_main]

use hvt_runtime::time::{sleep, Duration};
use hvt_runtime::{spawn, Args};

hvt_runtime::manifest!();
hvt_runtime::main!(main);

async fn main(_args: Args) -> Result<(), &'static str> {
    spawn(async {
        sleep(Duration::from_millis(10)).await;
        let items: [u32; 3] = [1, 2, 3];
        let index = items.len() + hvt_runtime::live_tasks();
        panic!("task gave up: index {index} of {}", items.len());
    });
    sleep(Duration::from_secs(5)).await;
    Err("the panicking task did not end the guest")
}
