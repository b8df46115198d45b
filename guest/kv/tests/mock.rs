//! kv on the mock tender: the store over the runtime's `BlockDevice` (the
//! tender's own block module and checks, an in-memory `MemDisk`), with the
//! disk's faults injected at every write of a workload (a write error is
//! fatal for the tender: the guest stops there) and a second guest on the
//! same disk checking what it finds; and the whole unikernel, `kv::app`,
//! serving HTTP on one network device to a client on another, wired back
//! to back, across restarts and a crash.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use common::{apply, dump, perform, small_workload, value, Model, Op};
use hvt_runtime::block::BlockDevice;
use hvt_runtime::net::{Config, IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr, Stack, TcpStream};
use hvt_runtime::spawn;
use hvt_runtime::testing::{run_config, DiskFault, MemDisk, MockConfig, MockDisk, Outcome};
use hvt_runtime::time::{sleep, timeout, Duration};
use kv::fake::FakeDisk;
use kv::store::Store;

const CAPACITY: u64 = 200 * 512;

/// Runs `main` as a guest with the block device `storage` on `disk`.
fn guest<F, Fut>(disk: &Arc<MemDisk>, main: F) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: core::future::Future<Output = Result<(), String>> + 'static,
{
    let disks = [MockDisk::new(kv::BLOCK_DEVICE, disk)];
    let config = MockConfig {
        disks: &disks,
        ..MockConfig::default()
    };
    run_config(&config, |_| main())
}

fn device() -> Result<BlockDevice, String> {
    BlockDevice::open(kv::BLOCK_DEVICE).map_err(|e| e.to_string())
}

/// What the store on `disk` holds, read by a guest.
fn contents(disk: &Arc<MemDisk>) -> Model {
    let found = Rc::new(RefCell::new(None));
    let out = found.clone();
    let outcome = guest(disk, move || async move {
        let mut store = Store::open(device()?).map_err(|e| e.to_string())?;
        *out.borrow_mut() = Some(dump(&mut store));
        Ok(())
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let model = found.borrow_mut().take().unwrap();
    model
}

#[test]
fn the_store_works_on_the_block_device() {
    let disk = Arc::new(MemDisk::new("storage", CAPACITY));
    let expected = Rc::new(RefCell::new(Model::new()));
    let model = expected.clone();
    let outcome = guest(&disk, move || async move {
        let mut store = Store::open(device()?).map_err(|e| e.to_string())?;
        assert!(store.stats().formatted);
        for op in small_workload() {
            perform(&mut store, &mut model.borrow_mut(), &op).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(contents(&disk), *expected.borrow());
    // The same bytes as on the fake disk: the device adds nothing.
    let fake = FakeDisk::new(512, CAPACITY / 512);
    let mut store = Store::open(fake.clone()).unwrap();
    let mut model = Model::new();
    for op in small_workload() {
        perform(&mut store, &mut model, &op).unwrap();
    }
    assert_eq!(disk.contents(), fake.contents());
    assert_eq!(disk.writes(), fake.writes());
}

#[test]
fn a_device_of_4096_byte_sectors() {
    let disk = Arc::new(MemDisk::new("storage", 64 * 4096));
    let disks = [MockDisk {
        block_size: Some(4096),
        ..MockDisk::new(kv::BLOCK_DEVICE, &disk)
    }];
    let config = MockConfig {
        disks: &disks,
        ..MockConfig::default()
    };
    let outcome = run_config(&config, |_| async {
        let mut store = Store::open(device()?).map_err(|e| e.to_string())?;
        assert_eq!(store.block_size(), 4096);
        store
            .put(b"k", &value(1, 10_000))
            .map_err(|e| e.to_string())?;
        assert_eq!(store.get(b"k").unwrap().unwrap(), value(1, 10_000));
        Ok::<(), String>(())
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
}

#[test]
fn a_read_only_device_is_served_but_not_changed() {
    let disk = Arc::new(MemDisk::new("storage", CAPACITY));
    let outcome = guest(&disk, || async {
        let mut store = Store::open(device()?).map_err(|e| e.to_string())?;
        store.put(b"k", b"v").map_err(|e| e.to_string())?;
        Ok(())
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let disks = [MockDisk {
        read_only: true,
        ..MockDisk::new(kv::BLOCK_DEVICE, &disk)
    }];
    let config = MockConfig {
        disks: &disks,
        ..MockConfig::default()
    };
    let outcome = run_config(&config, |_| async {
        let mut store = Store::open(device()?).map_err(|e| e.to_string())?;
        assert_eq!(store.get(b"k").unwrap().unwrap(), b"v");
        assert_eq!(store.put(b"k", b"w"), Err(kv::store::StoreError::ReadOnly));
        Ok::<(), String>(())
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
}

/// Runs `ops` in a guest on `disk` until the tender stops it; returns the
/// acknowledged changes and the one in flight.
fn run_until_stopped(disk: &Arc<MemDisk>, ops: &[Op]) -> (Model, Option<Op>, Outcome) {
    let state = Rc::new(RefCell::new((Model::new(), None::<Op>)));
    let shared = state.clone();
    let ops = ops.to_vec();
    let outcome = guest(disk, move || async move {
        let mut store = Store::open(device()?).map_err(|e| e.to_string())?;
        for op in ops {
            shared.borrow_mut().1 = Some(op.clone());
            let mut acked = shared.borrow().0.clone();
            perform(&mut store, &mut acked, &op).map_err(|e| e.to_string())?;
            *shared.borrow_mut() = (acked, None);
        }
        Ok(())
    });
    let (acked, in_flight) = state.borrow().clone();
    (acked, in_flight, outcome)
}

#[test]
fn the_disk_fails_at_every_write_of_a_workload() {
    let ops = small_workload();
    // The writes, as the store on the fake disk makes them (the same
    // sequence, checked in the_store_works_on_the_block_device).
    let fake = FakeDisk::new(512, CAPACITY / 512);
    let mut store = Store::open(fake.clone()).unwrap();
    let mut model = Model::new();
    for op in &ops {
        perform(&mut store, &mut model, op).unwrap();
    }
    let mut tried = 0;
    for (at, &(_, len)) in fake.write_log().iter().enumerate() {
        let at = at as u64;
        let len = len as u64;
        let mut faults = vec![
            DiskFault::CrashAfter { writes: at },
            DiskFault::IoError { at },
        ];
        for keep in [1, 256, 512, 1024, len / 2, len - 512, len - 1, len] {
            if keep <= len {
                faults.push(DiskFault::Torn { at, keep });
            }
        }
        for fault in faults {
            tried += 1;
            let disk = Arc::new(MemDisk::new("storage", CAPACITY));
            disk.set_fault(Some(fault));
            let (acked, in_flight, outcome) = run_until_stopped(&disk, &ops);
            assert_eq!(outcome.code, 1, "{fault:?}: {outcome:?}");
            assert!(
                outcome
                    .error
                    .as_deref()
                    .unwrap_or("")
                    .contains("Fatal error"),
                "{fault:?}: {outcome:?}"
            );
            disk.set_fault(None);
            let found = contents(&disk);
            let mut with = acked.clone();
            if let Some(op) = &in_flight {
                apply(&mut with, op);
            }
            assert!(found == acked || found == with, "{fault:?}: {in_flight:?}");
        }
    }
    assert!(tried > 100, "{tried}");
}

// --- The unikernel over the network -------------------------------------

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);

/// Runs `kv::app` on devices `service` and `storage` (at 10.0.0.1, port
/// 80) and `client(stack)` on a stack at 10.0.0.2 wired to `service`.
fn with_kv<F, Fut>(disk: &Arc<MemDisk>, client: F) -> Outcome
where
    F: FnOnce(Stack) -> Fut + 'static,
    Fut: core::future::Future<Output = Result<(), String>> + 'static,
{
    let disks = [MockDisk::new(kv::BLOCK_DEVICE, disk)];
    let config = MockConfig {
        cmdline: "--ipv4=10.0.0.1/24",
        net_devices: &[kv::NET_DEVICE, "client"],
        disks: &disks,
        ..MockConfig::default()
    };
    run_config(&config, |args| async move {
        spawn(async move {
            if let Err(e) = kv::app(args).await {
                panic!("kv: {e}");
            }
        });
        let address = Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 2), 24);
        let stack = Stack::new("client", Config::ipv4(address)).map_err(|e| e.to_string())?;
        // Let the server start listening.
        sleep(Duration::from_millis(1)).await;
        match timeout(Duration::from_secs(600), client(stack)).await {
            Ok(result) => result,
            Err(_) => Err("the client did not finish".into()),
        }
    })
}

/// A keep-alive HTTP client connection.
struct Client {
    conn: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    async fn connect(stack: &Stack) -> Result<Client, String> {
        let server = IpEndpoint::new(IpAddress::Ipv4(SERVER), 80);
        let conn = TcpStream::connect(stack, server)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Client {
            conn,
            buffer: Vec::new(),
        })
    }

    /// Sends `request`; returns the status and body of the answer.
    async fn call(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
        self.conn
            .write_all(request)
            .await
            .map_err(|e| e.to_string())?;
        let mut chunk = vec![0u8; 8192];
        loop {
            if let Some(end) = kv::http::head_end(&self.buffer) {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let status: u16 = head[9..12].parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |l| l.trim().parse().unwrap());
                if self.buffer.len() >= end + length {
                    let body = self.buffer[end..end + length].to_vec();
                    self.buffer.drain(..end + length);
                    return Ok((status, body));
                }
            }
            let n = self
                .conn
                .read(&mut chunk)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    async fn put(&mut self, key: &str, value: &[u8]) -> Result<u16, String> {
        let mut request = format!(
            "PUT /{key} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            value.len()
        )
        .into_bytes();
        request.extend_from_slice(value);
        Ok(self.call(&request).await?.0)
    }

    async fn get(&mut self, key: &str) -> Result<(u16, Vec<u8>), String> {
        self.call(format!("GET /{key} HTTP/1.1\r\n\r\n").as_bytes())
            .await
    }
}

#[test]
fn the_unikernel_serves_and_keeps_its_data_across_restarts() {
    let disk = Arc::new(MemDisk::new("storage", 4 << 20));
    let outcome = with_kv(&disk, |stack| async move {
        let mut client = Client::connect(&stack).await?;
        for i in 0..200u64 {
            let status = client
                .put(&format!("key{i}"), &value(i, (i * 331 % 5000) as usize))
                .await?;
            assert_eq!(status, 201);
        }
        assert_eq!(client.put("key7", b"replaced").await?, 204);
        let (status, body) = client.call(b"DELETE /key8 HTTP/1.1\r\n\r\n").await?;
        assert_eq!((status, body.len()), (204, 0));
        assert_eq!(client.get("key7").await?, (200, b"replaced".to_vec()));
        assert_eq!(client.get("key8").await?.0, 404);
        let (status, counts) = client.get("").await?;
        assert_eq!(status, 200);
        let counts = String::from_utf8(counts).unwrap();
        assert!(counts.starts_with("keys 199\n"), "{counts}");
        Ok(())
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(
        outcome.console.contains("kv: formatted a blank device"),
        "{}",
        outcome.console
    );
    assert!(
        outcome
            .console
            .contains("kv: serving on 10.0.0.1/24 port 80"),
        "{}",
        outcome.console
    );

    let outcome = with_kv(&disk, |stack| async move {
        let mut client = Client::connect(&stack).await?;
        for i in (0..200u64).filter(|&i| i != 7 && i != 8) {
            let (status, body) = client.get(&format!("key{i}")).await?;
            assert_eq!(status, 200);
            assert!(body == value(i, (i * 331 % 5000) as usize), "key{i}");
        }
        assert_eq!(client.get("key7").await?, (200, b"replaced".to_vec()));
        assert_eq!(client.get("key8").await?.0, 404);
        Ok(())
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(
        !outcome.console.contains("formatted"),
        "{}",
        outcome.console
    );
    assert!(
        outcome.console.contains("kv: 199 keys"),
        "{}",
        outcome.console
    );
}

#[test]
fn a_device_holding_something_else_is_refused() {
    let mut bytes = vec![0u8; 1 << 20];
    bytes[4096..4100].copy_from_slice(b"data");
    let disk = Arc::new(MemDisk::from_bytes("storage", bytes.clone()));
    let outcome = with_kv(&disk, |_| async { Ok(()) });
    assert_eq!(outcome.code, 255, "{outcome:?}");
    assert!(outcome
        .error
        .unwrap_or_default()
        .contains("cannot open the store: the device holds something else"),);
    assert_eq!(disk.contents(), bytes);
}

#[test]
fn acknowledged_puts_survive_a_crash_during_concurrent_puts() {
    // Four clients put keys at once; the disk loses power at write 150.
    let disk = Arc::new(MemDisk::new("storage", 1 << 20));
    disk.set_fault(Some(DiskFault::CrashAfter { writes: 150 }));
    let acked = Rc::new(RefCell::new(Vec::<(String, Vec<u8>)>::new()));
    let record = acked.clone();
    let outcome = with_kv(&disk, move |stack| async move {
        let clients: Vec<_> = (0..4u64)
            .map(|c| {
                let stack = stack.clone();
                let record = record.clone();
                spawn(async move {
                    let mut client = Client::connect(&stack).await?;
                    for i in 0..100u64 {
                        let key = format!("c{c}-{i}");
                        let value = value(c * 1000 + i, (i * 97 % 3000) as usize);
                        if client.put(&key, &value).await? == 201 {
                            record.borrow_mut().push((key, value));
                        }
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        for client in clients {
            client.await?;
        }
        Ok(())
    });
    assert_eq!(
        outcome.code, 1,
        "the tender stops at the failed write: {outcome:?}"
    );
    let acked = acked.borrow().clone();
    assert!(acked.len() >= 140, "{} acknowledged", acked.len());
    disk.set_fault(None);
    let found = contents(&disk);
    for (key, value) in &acked {
        assert_eq!(found.get(key.as_bytes()), Some(value), "{key}");
    }
    assert!(
        found.len() <= acked.len() + 1,
        "at most the one in flight more"
    );
}
