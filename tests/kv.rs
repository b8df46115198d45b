//! The `kv` guest under KVM: a key-value store on a block image, served
//! over HTTP on a tap in a network namespace of its own.
//!
//! * 10,000 PUTs from four connections, a restart (SIGKILL), and every GET
//!   returns its value;
//! * 20 rounds of SIGKILL of the tender at a random moment during
//!   concurrent PUTs and GETs: after each restart every acknowledged PUT
//!   is there and intact, and no GET (during the load or after) ever
//!   returned a value that was not written for its key;
//! * a log that fills up is compacted, repeatedly, and nothing is lost (nor
//!   by a SIGKILL afterwards); live data that does not fit gets 507 and
//!   changes nothing.

mod common;
#[path = "common/http_client.rs"]
mod http_client;

use std::collections::HashMap;
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{guest, is_root, scratch, tender_bin, ConsoleLines, NetNs};
use http_client::HttpClient;

const HOST: &str = "10.81.0.1/24";
const GUEST: &str = "10.81.0.2";

fn skip(name: &str) -> bool {
    if !is_root() {
        eprintln!("{name}: needs root (network namespaces, taps); skipped");
        return true;
    }
    false
}

/// A namespace with a tap for the guest, and a zeroed image of `size`
/// bytes.
fn setup(tag: &str, size: u64) -> (NetNs, String, PathBuf) {
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some(HOST));
    let image = scratch(tag).join("disk.img");
    let file = std::fs::File::create(&image).expect("create the image");
    file.set_len(size).expect("size the image");
    (ns, tap, image)
}

/// A kv guest; SIGKILLed when dropped.
struct Kv {
    child: Child,
    console: ConsoleLines,
}

impl Kv {
    /// Starts the tender (itself, not a wrapper: `ip netns exec` execs it,
    /// so a signal to the child is a signal to the tender) and waits until
    /// kv serves.
    fn start(ns: &NetNs, tap: &str, image: &Path) -> Kv {
        let mut child = ns
            .exec(tender_bin())
            .arg(format!("--net={tap}"))
            .arg(format!("--block={}", image.display()))
            .arg(guest("kv"))
            .arg(format!("--ipv4={GUEST}/24"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the tender");
        let console = ConsoleLines::capture(&mut child);
        let mut kv = Kv { child, console };
        kv.wait_for("kv: serving on");
        kv
    }

    fn wait_for(&mut self, text: &str) -> String {
        self.console.wait_for(text, Duration::from_secs(30))
    }

    /// Everything kv printed so far.
    fn output(&mut self) -> String {
        self.console.output()
    }

    /// SIGKILL, and wait for the tender to be gone (its image lock too).
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Kv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to kv from the namespace.
fn connect(ns: &NetNs) -> HttpClient {
    ns.enter(|| HttpClient::connect(&format!("{GUEST}:80"), Duration::from_secs(10)))
        .expect("connect to kv")
}

/// A value of up to 2 KiB that says which write it is.
fn value_of(key: &str, version: u64) -> Vec<u8> {
    let len = (version.wrapping_mul(2654435761) % 2000) as usize;
    let mut value = format!("{key}@{version}:").into_bytes();
    value.extend((0..len).map(|i| (i as u64 ^ version).to_le_bytes()[0]));
    value
}

#[test]
fn ten_thousand_puts_then_a_restart_and_every_get_returns_its_value() {
    if skip("kv") {
        return;
    }
    const KEYS: u64 = 10_000;
    const CLIENTS: usize = 4;
    let (ns, tap, image) = setup("kv-10k", 64 << 20);
    let mut kv = Kv::start(&ns, &tap, &image);
    assert!(
        kv.output().contains("kv: formatted a blank device"),
        "{}",
        kv.output()
    );
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..CLIENTS as u64 {
            let mut client = connect(&ns);
            s.spawn(move || {
                for i in (c..KEYS).step_by(CLIENTS) {
                    let key = format!("key{i}");
                    assert_eq!(
                        client.put(&key, &value_of(&key, i)).expect("PUT"),
                        201,
                        "{key}"
                    );
                }
            });
        }
    });
    let took = started.elapsed();
    eprintln!("kv: {KEYS} PUTs in {took:?}");
    assert_eq!(connect(&ns).count("keys").unwrap(), KEYS);
    kv.kill();

    let mut kv = Kv::start(&ns, &tap, &image);
    assert!(kv.output().contains("kv: 10000 keys"), "{}", kv.output());
    let keys: Vec<String> = (0..=KEYS).map(|i| format!("key{i}")).collect();
    for (key, status, body) in get_all(&ns, &keys, 16) {
        let i: u64 = key[3..].parse().unwrap();
        if i == KEYS {
            assert_eq!(status, 404, "{key}");
        } else {
            assert_eq!(status, 200, "{key}");
            assert!(body == value_of(&key, i), "{key}: wrong value");
        }
    }
    drop(kv);
}

/// What the test knows of every key.
#[derive(Default)]
struct Ledger {
    /// Every version ever sent for the key (recorded before sending).
    sent: HashMap<String, Vec<u64>>,
    /// The version the store holds for sure: the last acknowledged one,
    /// or what a restart found.
    held: HashMap<String, u64>,
    /// A version sent after `held` and not acknowledged (at most one: a
    /// key is written by one client, one request at a time).
    in_flight: HashMap<String, u64>,
}

/// The version a value says it is, if it is a value written for `key`.
fn version_in(key: &str, value: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(value);
    let (head, _) = text.split_once(':')?;
    let (k, version) = head.split_once('@')?;
    let version: u64 = version.parse().ok()?;
    (k == key && value == value_of(key, version).as_slice()).then_some(version)
}

/// Checks a GET's answer for `key`: a value that was sent for it, intact.
fn check_read(ledger: &Ledger, key: &str, status: u16, body: &[u8]) -> Option<u64> {
    match status {
        404 => None,
        200 => {
            let version = version_in(key, body)
                .unwrap_or_else(|| panic!("GET {key}: a value never written (or damaged)"));
            assert!(
                ledger.sent.get(key).is_some_and(|v| v.contains(&version)),
                "GET {key}: version {version} was never sent"
            );
            Some(version)
        }
        other => panic!("GET {key}: {other}"),
    }
}

/// GETs `keys` over `connections` connections at once; returns each
/// key's status and body.
fn get_all(ns: &NetNs, keys: &[String], connections: usize) -> Vec<(String, u16, Vec<u8>)> {
    let chunk = keys.len().div_ceil(connections).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = keys
            .chunks(chunk)
            .map(|keys| {
                let mut client = connect(ns);
                s.spawn(move || {
                    keys.iter()
                        .map(|key| {
                            let (status, body) = client.get(key).expect("GET");
                            (key.clone(), status, body)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// After a restart: every key holds its acknowledged version or the one
/// that was in flight, nothing else; the ledger learns which.
fn verify_after_restart(ns: &NetNs, ledger: &mut Ledger) {
    let keys: Vec<String> = ledger.sent.keys().cloned().collect();
    for (key, status, body) in get_all(ns, &keys, 8) {
        let found = check_read(ledger, &key, status, &body);
        let held = ledger.held.get(&key).copied();
        let in_flight = ledger.in_flight.remove(&key);
        assert!(
            found == held || (found.is_some() && found == in_flight),
            "{key}: found {found:?}, acknowledged {held:?}, in flight {in_flight:?}"
        );
        match found {
            Some(version) => ledger.held.insert(key, version),
            None => ledger.held.remove(&key),
        };
    }
}

/// A seeded xorshift generator (the seed is printed: a failure can be
/// replayed with KV_KILL_SEED).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

#[test]
fn sigkill_during_concurrent_puts_loses_no_acknowledged_put() {
    if skip("kv") {
        return;
    }
    const ROUNDS: u64 = 20;
    const WRITERS: u64 = 4;
    const KEYS_PER_WRITER: u64 = 150;
    let seed = std::env::var("KV_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            (now.as_secs() ^ u64::from(now.subsec_nanos()).rotate_left(32)) | 1
        });
    eprintln!("kv: KV_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    // A small image (regions of 4095 blocks, up to 3000 of them live):
    // the rounds fill its log and compact it too.
    let (ns, tap, image) = setup("kv-kill", 4 << 20);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut acknowledged = 0u64;
    let mut reads = 0u64;
    for round in 0..ROUNDS {
        let kv = Kv::start(&ns, &tap, &image);
        verify_after_restart(&ns, &mut ledger.lock().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        let (acks, reads_done) = std::thread::scope(|s| {
            let mut writers = Vec::new();
            for w in 0..WRITERS {
                let mut client = connect(&ns);
                handles.push(client.handle().unwrap());
                let ledger = ledger.clone();
                let stop = stop.clone();
                let first = round * 37;
                writers.push(s.spawn(move || {
                    let mut acks = 0u64;
                    for n in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let key = format!("w{w}-k{}", (first + n) % KEYS_PER_WRITER);
                        let v = round * 1_000_000_000 + n * WRITERS + w;
                        {
                            let mut l = ledger.lock().unwrap();
                            l.sent.entry(key.clone()).or_default().push(v);
                            l.in_flight.insert(key.clone(), v);
                        }
                        match client.put(&key, &value_of(&key, v)) {
                            Ok(201) | Ok(204) => {
                                let mut l = ledger.lock().unwrap();
                                l.in_flight.remove(&key);
                                l.held.insert(key, v);
                                acks += 1;
                            }
                            Ok(status) => panic!("PUT {key}: {status}"),
                            Err(_) => break,
                        }
                    }
                    acks
                }));
            }
            let mut reader = connect(&ns);
            handles.push(reader.handle().unwrap());
            let ledger_for_reader = ledger.clone();
            let stop_reader = stop.clone();
            let reader = s.spawn(move || {
                let mut done = 0u64;
                let mut i = 0u64;
                while !stop_reader.load(Ordering::Relaxed) {
                    i += 1;
                    let key = format!("w{}-k{}", i % WRITERS, (i * 7) % KEYS_PER_WRITER);
                    let Ok((status, body)) = reader.get(&key) else {
                        break;
                    };
                    check_read(&ledger_for_reader.lock().unwrap(), &key, status, &body);
                    done += 1;
                }
                done
            });
            // The kill, at a random moment of the load.
            std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
            kv.kill();
            stop.store(true, Ordering::Relaxed);
            for handle in &handles {
                let _ = handle.shutdown(Shutdown::Both);
            }
            let acks: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
            (acks, reader.join().unwrap())
        });
        acknowledged += acks;
        reads += reads_done;
        eprintln!("kv: round {round}: {acks} PUTs acknowledged, {reads_done} GETs checked");
    }
    let _kv = Kv::start(&ns, &tap, &image);
    verify_after_restart(&ns, &mut ledger.lock().unwrap());
    let mut client = connect(&ns);
    eprintln!("kv: {acknowledged} PUTs acknowledged, {reads} GETs checked over {ROUNDS} kills");
    assert!(
        acknowledged > ROUNDS * 10,
        "too little load: {acknowledged}"
    );
    let held = ledger.lock().unwrap().held.len() as u64;
    assert_eq!(client.count("keys").unwrap(), held);
}

#[test]
fn a_full_log_is_compacted_and_nothing_is_lost() {
    if skip("kv") {
        return;
    }
    // 1200 blocks: regions of 599 blocks (299.5 KiB).
    let (ns, tap, image) = setup("kv-compact", 1200 * 512);
    let kv = Kv::start(&ns, &tap, &image);
    let mut client = connect(&ns);
    let mut held: HashMap<String, u64> = HashMap::new();
    // 40 keys of up to 2 KiB (at most 200 blocks live), each written 25
    // times: about 4,000 blocks of log.
    for round in 0..25u64 {
        for k in 0..40u64 {
            let key = format!("key{k}");
            let version = round * 100 + k;
            let status = client.put(&key, &value_of(&key, version)).unwrap();
            assert_eq!(status, if round == 0 { 201 } else { 204 });
            held.insert(key, version);
        }
    }
    let compactions = client.count("compactions").unwrap();
    assert!(compactions >= 4, "{compactions} compactions");
    let check = |client: &mut HttpClient, held: &HashMap<String, u64>, others: usize| {
        for (key, &version) in held {
            let (status, body) = client.get(key).unwrap();
            assert_eq!(status, 200, "{key}");
            assert!(body == value_of(key, version), "{key}");
        }
        assert_eq!(client.count("keys").unwrap(), (held.len() + others) as u64);
    };
    check(&mut client, &held, 0);

    // Live data that does not fit: 507, and nothing changes.
    let big = vec![0x42u8; 65536];
    let mut stored = 0;
    loop {
        let key = format!("big{stored}");
        match client.put(&key, &big).unwrap() {
            201 => stored += 1,
            507 => break,
            other => panic!("PUT {key}: {other}"),
        }
        assert!(stored < 10, "the region cannot hold 10 values of 64 KiB");
    }
    assert!(stored >= 1, "{stored}");
    let log_blocks = client.count("log_blocks").unwrap();
    let generation = client.count("generation").unwrap();
    assert_eq!(client.put(&format!("big{stored}"), &big).unwrap(), 507);
    assert_eq!(client.count("log_blocks").unwrap(), log_blocks);
    assert_eq!(client.count("generation").unwrap(), generation);
    check(&mut client, &held, stored);
    for i in 0..stored {
        let (status, body) = client.get(&format!("big{i}")).unwrap();
        assert!(status == 200 && body == big, "big{i}");
    }
    // A delete makes room.
    assert_eq!(client.delete("big0").unwrap(), 204);
    assert_eq!(client.put(&format!("big{stored}"), &big).unwrap(), 201);
    client.close();
    kv.kill();

    let _kv = Kv::start(&ns, &tap, &image);
    let mut client = connect(&ns);
    check_after_restart(&mut client, &held, stored, &big);
}

fn check_after_restart(
    client: &mut HttpClient,
    held: &HashMap<String, u64>,
    stored: usize,
    big: &[u8],
) {
    for (key, &version) in held {
        let (status, body) = client.get(key).unwrap();
        assert_eq!(status, 200, "{key}");
        assert!(body == value_of(key, version), "{key}");
    }
    assert_eq!(client.get("big0").unwrap().0, 404);
    for i in 1..=stored {
        let (status, body) = client.get(&format!("big{i}")).unwrap();
        assert!(status == 200 && body == big, "big{i}");
    }
    assert_eq!(client.count("keys").unwrap(), (held.len() + stored) as u64);
}
