//! A TCP echo server: `echo.hvt [--ipv4=ADDR/LEN] [--port=7] [--connections=N]`.
//! Serves clients concurrently; with `--connections=N` it exits 0 after
//! serving N echo connections. For measurements it also serves discard on
//! port 9 (reads and drops until the peer closes) and a source on port 19
//! (sends a byte pattern until the peer closes).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use hvt_runtime::net::{Stack, TcpListener, TcpStream};
use hvt_runtime::{println, spawn, Args};

hvt_runtime::manifest!(net "service");
hvt_runtime::main!(main);

async fn serve(mut conn: TcpStream) -> u64 {
    let mut buf = [0u8; 8192];
    let mut echoed = 0u64;
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if conn.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                echoed += n as u64;
            }
        }
    }
    // Our side is done too: FIN after the data.
    conn.shutdown();
    let _ = conn.flush().await;
    echoed
}

/// Port 9: read and drop everything, then close.
async fn discard(mut conn: TcpStream) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = conn.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    conn.shutdown();
    let _ = conn.flush().await;
}

/// Port 19: send a pattern until the peer goes away.
async fn source(mut conn: TcpStream) {
    let mut chunk = [0u8; 16384];
    for (byte, value) in chunk.iter_mut().zip((0..=u8::MAX).cycle()) {
        *byte = value;
    }
    while conn.write_all(&chunk).await.is_ok() {}
}

/// Serves `service` on every connection to `port`, forever.
async fn serve_forever<F, Fut>(mut listener: TcpListener, service: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: core::future::Future<Output = ()> + 'static,
{
    while let Ok(conn) = listener.accept().await {
        spawn(service(conn));
    }
}

async fn main(args: Args) -> Result<(), &'static str> {
    let stack = Stack::from_args("service", &args).map_err(|_| "bad network options")?;
    let port = args
        .value("--port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(7);
    let limit: Option<u64> = args.value("--connections").and_then(|n| n.parse().ok());
    let ip = stack.wait_ipv4().await;
    let mut listener = TcpListener::bind(&stack, port, 64).map_err(|_| "cannot listen")?;
    spawn(serve_forever(
        TcpListener::bind(&stack, 9, 8).map_err(|_| "cannot listen")?,
        discard,
    ));
    spawn(serve_forever(
        TcpListener::bind(&stack, 19, 8).map_err(|_| "cannot listen")?,
        source,
    ));
    println!("echo: listening on {ip} port {port}");
    let mut served = Vec::new();
    let mut accepted = 0u64;
    while limit.is_none_or(|l| accepted < l) {
        let conn = listener.accept().await.map_err(|_| "accept failed")?;
        accepted += 1;
        served.push(spawn(serve(conn)));
    }
    let mut bytes = 0;
    for task in served {
        bytes += task.await;
    }
    println!("echo: served {accepted} connections, {bytes} bytes");
    Ok(())
}
