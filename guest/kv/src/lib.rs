//! `kv`: a key-value store on a block device, served over HTTP/1.1.
//!
//! ```text
//! tender --net:service=tap0 --block:storage=disk.img kv.hvt --ipv4=10.0.0.2/24 [--port=80]
//! curl -X PUT --data-binary @file http://10.0.0.2/KEY     # 201 created, 204 replaced
//! curl http://10.0.0.2/KEY                                # 200 the value, 404
//! curl -X DELETE http://10.0.0.2/KEY                      # 204, 404
//! curl http://10.0.0.2/                                   # counts
//! ```
//!
//! * [`store`]: the store over any [`disk::Disk`] (the format is in
//!   [`format`]): a log of checksummed records, recovery, compaction.
//! * [`http`] and [`service`]: requests, responses and the connection loop.
//! * [`fake`]: an in-memory disk with injectable faults, for tests.
//!
//! The unikernel (`src/main.rs`) is [`app`] on the block device `storage`
//! and the network device `service`. See `docs/kv.md`.
#![no_std]

extern crate alloc;

pub mod crc32;
pub mod disk;
pub mod fake;
pub mod format;
pub mod http;
pub mod service;
pub mod store;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;

use hvt_runtime::block::BlockDevice;
use hvt_runtime::net::{Stack, TcpListener};
use hvt_runtime::{println, spawn, Args};

use crate::disk::Disk;
use crate::service::{Limits, Service};
use crate::store::Store;

/// The manifest's block device.
pub const BLOCK_DEVICE: &str = "storage";
/// The manifest's network device.
pub const NET_DEVICE: &str = "service";

/// The unikernel: opens (or formats) the store on the block device
/// `storage` and serves it on the network device `service`. Options:
/// the network's (`--ipv4=ADDR/LEN`, ...; DHCPv4 without), `--port=N`
/// (default 80).
pub async fn app(args: Args) -> Result<(), String> {
    let disk = BlockDevice::open(BLOCK_DEVICE)
        .map_err(|e| format!("block device '{BLOCK_DEVICE}': {e}"))?;
    serve(args, disk).await
}

/// [`app`] on any disk.
pub async fn serve<D: Disk + 'static>(args: Args, disk: D) -> Result<(), String> {
    let store = Store::open(disk).map_err(|e| format!("cannot open the store: {e}"))?;
    if store.stats().formatted {
        println!(
            "kv: formatted a blank device: 2 x {} blocks of {} bytes",
            store.region_blocks(),
            store.block_size()
        );
    }
    println!(
        "kv: {} keys, {} bytes of values, log {} of {} blocks{}",
        store.len(),
        store.value_bytes(),
        store.log_blocks(),
        store.region_blocks(),
        if store.is_read_only() {
            " (read-only)"
        } else {
            ""
        }
    );
    let port = match args.value("--port") {
        Some(port) => port.parse().map_err(|_| format!("bad --port={port}"))?,
        None => 80,
    };
    let stack = Stack::from_args(NET_DEVICE, &args)
        .map_err(|e| format!("network device '{NET_DEVICE}': {e}"))?;
    let ip = stack.wait_ipv4().await;
    let mut listener = TcpListener::bind(&stack, port, 64)
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    println!("kv: serving on {ip} port {port}");
    let service = Rc::new(Service::new(store, Limits::default()));
    loop {
        let mut conn = listener
            .accept()
            .await
            .map_err(|e| format!("accept failed: {e}"))?;
        // Responses go out whole at once (see TcpStream::set_nodelay).
        conn.set_nodelay(true);
        let service = service.clone();
        spawn(async move { service.serve(&mut conn).await });
    }
}
