//! A network application that `tests/host_process.rs` runs as a host
//! process on a tap (`HVT_NET_service=TAP`): with `--ipv4=ADDR/LEN` it
//! answers ping, and echoes one TCP connection on port 7, then exits.
#![no_std]
#![no_main]

use hvt_runtime::net::{Stack, TcpListener};
use hvt_runtime::{println, Args};

hvt_runtime::manifest!(net "service");
hvt_runtime::main!(main);

async fn main(args: Args) -> Result<(), &'static str> {
    let stack = Stack::from_args("service", &args).map_err(|_| "bad network options")?;
    let ip = stack.wait_ipv4().await;
    let mut listener = TcpListener::bind(&stack, 7, 1).map_err(|_| "cannot listen")?;
    println!("ready on {ip}");
    let mut conn = listener.accept().await.map_err(|_| "accept failed")?;
    let mut buf = [0u8; 2048];
    let mut echoed = 0;
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                conn.write_all(&buf[..n])
                    .await
                    .map_err(|_| "write failed")?;
                echoed += n;
            }
        }
    }
    conn.shutdown();
    let _ = conn.flush().await;
    println!("echoed {echoed} bytes");
    Ok(())
}
