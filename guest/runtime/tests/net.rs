//! The network stack on the host: one guest runs two stacks, on devices
//! "a" (handle 1, 10.0.0.1) and "b" (handle 2, 10.0.0.2) that the mock
//! tender wires back to back through the real tender's NET_WRITE/NET_READ
//! handlers. The wire can lose, reorder and duplicate frames, decided by a
//! seeded generator, and the mock's clock is virtual: every run of a test
//! sees the same frames at the same virtual times.
//!
//! Each test bounds its guest with a virtual-time timeout (a bug fails the
//! test instead of hanging it) and its thread with a wall-clock watchdog
//! (for a livelock, where virtual time stops).

use std::format;
use std::rc::Rc;
use std::string::{String, ToString};
use std::sync::mpsc;
use std::time::Duration as WallDuration;
use std::vec;
use std::vec::Vec;

use core::cell::Cell;
use core::future::Future;

use hvt_runtime::net::{
    Config, Error, IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr, Stack, TcpListener, TcpStream,
    UdpSocket,
};
use hvt_runtime::spawn;
use hvt_runtime::testing::{run_with_net, wire_stats, Outcome, WireConfig};
use hvt_runtime::time::{sleep, timeout, Duration, Instant};

const PORT: u16 = 7;

/// Ends the process if a test outlives `limit` of wall-clock time: a
/// livelock (the guest busy while virtual time stands still) would
/// otherwise hang `cargo test`.
struct Watchdog {
    _done: mpsc::Sender<()>,
}

fn watchdog(name: &'static str, limit: WallDuration) -> Watchdog {
    let (done, finished) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
            std::eprintln!("{name}: still running after {limit:?} of wall-clock time");
            std::process::exit(101);
        }
    });
    Watchdog { _done: done }
}

fn address(last: u8) -> Ipv4Address {
    Ipv4Address::new(10, 0, 0, last)
}

fn endpoint(last: u8, port: u16) -> IpEndpoint {
    IpEndpoint::new(IpAddress::Ipv4(address(last)), port)
}

/// Stack "a" at 10.0.0.1 and stack "b" at 10.0.0.2.
fn stacks() -> Result<(Stack, Stack), String> {
    let a = Stack::new("a", Config::ipv4(Ipv4Cidr::new(address(1), 24))).map_err(text)?;
    let b = Stack::new("b", Config::ipv4(Ipv4Cidr::new(address(2), 24))).map_err(text)?;
    Ok((a, b))
}

fn text(error: Error) -> String {
    error.to_string()
}

/// Byte `i` of the test data: not periodic in any power of two, so that a
/// segment delivered at the wrong offset is noticed.
// reason: truncation intended: the byte is the sequence's low 8 bits.
#[allow(clippy::cast_possible_truncation)]
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i / 1021)) as u8
}

fn check_pattern(data: &[u8], offset: usize) -> Result<(), String> {
    match data
        .iter()
        .enumerate()
        .find(|&(i, &byte)| byte != pattern(offset + i))
    {
        Some((i, &byte)) => Err(format!(
            "byte {} is {byte:#04x}, expected {:#04x}",
            offset + i,
            pattern(offset + i)
        )),
        None => Ok(()),
    }
}

/// Runs `main` (bounded by `limit` of virtual time) on a guest with the
/// devices "a" and "b" wired by `wire`, and expects it to succeed.
fn run_net<F, Fut>(name: &'static str, wire: WireConfig, limit: Duration, main: F) -> Outcome
where
    F: FnOnce() -> Fut + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    let _watchdog = watchdog(name, WallDuration::from_secs(120));
    // NET_TEST_LOG=debug shows smoltcp's log, on the console.
    let cmdline = match std::env::var("NET_TEST_LOG") {
        Ok(level) => format!("--solo5:{level}"),
        Err(_) => String::new(),
    };
    let outcome = run_with_net(&cmdline, &["a", "b"], wire, move |_| async move {
        match timeout(limit, main()).await {
            Ok(result) => result,
            Err(_) => Err(format!("{name}: not done after {limit:?} of virtual time")),
        }
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
    outcome
}

/// Sends `total` bytes of the pattern from a client on stack b to an echo
/// server on stack a, reading the echo back concurrently; checks every byte
/// both ways and returns the virtual time taken.
async fn echo_transfer(total: usize) -> Result<Duration, String> {
    let (a, b) = stacks()?;
    let started = Instant::now();
    let mut listener = TcpListener::bind(&a, PORT, 1).map_err(text)?;
    let server = spawn(async move {
        let mut conn = listener.accept().await.map_err(text)?;
        let mut buffer = vec![0u8; 4096];
        let mut echoed = 0;
        loop {
            let n = conn.read(&mut buffer).await.map_err(text)?;
            if n == 0 {
                break;
            }
            check_pattern(&buffer[..n], echoed).map_err(|e| format!("server: {e}"))?;
            conn.write_all(&buffer[..n]).await.map_err(text)?;
            echoed += n;
        }
        conn.shutdown();
        conn.flush().await.map_err(text)?;
        Ok::<usize, String>(echoed)
    });

    let conn = TcpStream::connect(&b, endpoint(1, PORT))
        .await
        .map_err(text)?;
    let (mut reader, mut writer) = conn.into_split();
    let sender = spawn(async move {
        let data: Vec<u8> = (0..total).map(pattern).collect();
        // Uneven pieces, so segments do not line up with the writes.
        for piece in data.chunks(1000 + 7) {
            writer.write_all(piece).await.map_err(text)?;
        }
        writer.shutdown();
        Ok::<(), String>(())
    });
    let mut received = 0;
    let mut buffer = vec![0u8; 3000];
    loop {
        let n = reader.read(&mut buffer).await.map_err(text)?;
        if n == 0 {
            break;
        }
        check_pattern(&buffer[..n], received).map_err(|e| format!("client: {e}"))?;
        received += n;
    }
    sender.await?;
    let echoed = server.await?;
    if (echoed, received) != (total, total) {
        return Err(format!(
            "echoed {echoed} and received {received} of {total} bytes"
        ));
    }
    Ok(Instant::now() - started)
}

#[test]
fn tcp_echo_of_one_mebibyte_over_a_clean_wire() {
    run_net(
        "tcp_echo_clean",
        WireConfig::clean(),
        Duration::from_secs(60),
        || async {
            let took = echo_transfer(1 << 20).await?;
            let stats = wire_stats(1).unwrap();
            std::eprintln!("clean: {took:?} of virtual time, {stats:?}");
            if stats.lost + stats.reordered + stats.duplicated != 0 {
                return Err(format!("a clean wire impaired frames: {stats:?}"));
            }
            // 1 MiB each way in segments of at most 1460 bytes.
            if stats.delivered < 2 * (1 << 20) / 1460 {
                return Err(format!("too few frames for the data: {stats:?}"));
            }
            Ok(())
        },
    );
}

#[test]
fn tcp_echo_survives_loss_reordering_and_duplication() {
    run_net(
        "tcp_echo_lossy",
        WireConfig::impaired(0x5eed, 0.10, 0.10, 0.05),
        Duration::from_secs(3600),
        || async {
            let took = echo_transfer(1 << 20).await?;
            let stats = wire_stats(1).unwrap();
            std::eprintln!("lossy: {took:?} of virtual time, {stats:?}");
            // The impairments did happen, in numbers.
            if stats.lost < 200 || stats.reordered < 200 || stats.duplicated < 100 {
                return Err(format!("too few impairments: {stats:?}"));
            }
            Ok(())
        },
    );
}

/// Heavier impairments, many seeds: each a different pattern of losses
/// (handshake and FIN segments included).
#[test]
fn tcp_echo_survives_heavy_impairments_for_many_seeds() {
    for seed in 1..=12 {
        run_net(
            "tcp_echo_seeds",
            WireConfig::impaired(seed, 0.2, 0.2, 0.1),
            Duration::from_secs(3600),
            || async {
                echo_transfer(96 << 10).await?;
                Ok(())
            },
        );
    }
}

#[test]
fn lossy_runs_are_deterministic() {
    let config = WireConfig::impaired(7, 0.10, 0.10, 0.05);
    let once = || {
        let result = Rc::new(Cell::new((Duration::ZERO, None)));
        let out = result.clone();
        run_net(
            "lossy_deterministic",
            config,
            Duration::from_secs(3600),
            move || async move {
                let took = echo_transfer(256 << 10).await?;
                out.set((took, wire_stats(1)));
                Ok(())
            },
        );
        result.get()
    };
    let first = once();
    assert_eq!(once(), first, "same seed, same run");
    assert!(first.1.unwrap().lost > 0, "{first:?}");
}

/// The receiver stops reading: its window fills and closes, the sender's
/// write blocks (smoltcp probes the zero window meanwhile), and everything
/// arrives intact once the receiver reads again.
#[test]
fn a_zero_window_blocks_the_writer_until_the_reader_reads() {
    run_net(
        "zero_window",
        WireConfig::clean(),
        Duration::from_secs(600),
        || async {
            const TOTAL: usize = 512 << 10;
            let (a, b) = stacks()?;
            let mut listener = TcpListener::bind(&a, PORT, 1).map_err(text)?;
            let accepted = spawn(async move { listener.accept().await });
            let mut client = TcpStream::connect(&b, endpoint(1, PORT))
                .await
                .map_err(text)?;
            let mut server = accepted.await.map_err(text)?;

            let progress = Rc::new(Cell::new(0usize));
            let written = progress.clone();
            let writer = spawn(async move {
                let data: Vec<u8> = (0..TOTAL).map(pattern).collect();
                let mut sent = 0;
                while sent < TOTAL {
                    let n = client.write(&data[sent..]).await.map_err(text)?;
                    sent += n;
                    written.set(sent);
                }
                client.flush().await.map_err(text)?;
                Ok::<TcpStream, String>(client)
            });

            // Nobody reads: 64 KiB fill the receiver's window, 64 KiB the
            // sender's buffer, and the writer blocks.
            sleep(Duration::from_secs(5)).await;
            let stalled_at = progress.get();
            let frames_then = wire_stats(1).unwrap().sent;
            sleep(Duration::from_secs(60)).await;
            if progress.get() != stalled_at || writer.is_finished() {
                return Err(format!(
                    "the writer went on from {stalled_at} to {} bytes with nobody reading",
                    progress.get()
                ));
            }
            let window = 64 << 10;
            std::eprintln!("zero window: the writer stalled after {stalled_at} bytes");
            if !(2 * window - 2048..=2 * window).contains(&stalled_at) {
                return Err(format!(
                    "the writer stalled after {stalled_at} bytes, not at two 64 KiB buffers"
                ));
            }
            // Zero-window probes (and their answers) crossed the wire.
            let probes = wire_stats(1).unwrap().sent - frames_then;
            if probes == 0 {
                return Err("no zero-window probe in a minute".into());
            }

            // Reading opens the window; everything arrives, in order.
            let resumed = Instant::now();
            let mut received = 0;
            let mut buffer = vec![0u8; 8192];
            while received < TOTAL {
                let n = server.read(&mut buffer).await.map_err(text)?;
                if n == 0 {
                    return Err(format!("end of stream after {received} bytes"));
                }
                check_pattern(&buffer[..n], received)?;
                received += n;
            }
            let _client = writer.await?;
            // The window update goes out as soon as the reader reads: no
            // waiting for a probe (the first would come after seconds).
            let took = Instant::now() - resumed;
            if took > Duration::from_millis(500) {
                return Err(format!("{took:?} to move the rest after the window opened"));
            }
            Ok(())
        },
    );
}

#[test]
fn half_close_lets_the_other_side_finish_and_answer() {
    run_net(
        "half_close",
        WireConfig::clean(),
        Duration::from_secs(60),
        || async {
            let (a, b) = stacks()?;
            let mut listener = TcpListener::bind(&a, PORT, 1).map_err(text)?;
            let server = spawn(async move {
                let mut conn = listener.accept().await.map_err(text)?;
                let mut request = Vec::new();
                let mut buffer = [0u8; 64];
                loop {
                    match conn.read(&mut buffer).await.map_err(text)? {
                        0 => break,
                        n => request.extend_from_slice(&buffer[..n]),
                    }
                }
                // The end of the stream stays the end.
                if conn.read(&mut buffer).await.map_err(text)? != 0 {
                    return Err("data after the end of the stream".to_string());
                }
                // The peer's shutdown does not stop this side writing.
                let mut answer = b"got: ".to_vec();
                answer.extend_from_slice(&request);
                conn.write_all(&answer).await.map_err(text)?;
                conn.shutdown();
                conn.flush().await.map_err(text)?;
                Ok(())
            });

            let mut client = TcpStream::connect(&b, endpoint(1, PORT))
                .await
                .map_err(text)?;
            client.write_all(b"question").await.map_err(text)?;
            client.shutdown();
            match client.write(b"more").await {
                Err(Error::BrokenPipe) => {}
                other => return Err(format!("write after shutdown: {other:?}")),
            }
            let mut answer = Vec::new();
            let mut buffer = [0u8; 64];
            loop {
                match client.read(&mut buffer).await.map_err(text)? {
                    0 => break,
                    n => answer.extend_from_slice(&buffer[..n]),
                }
            }
            server.await?;
            if answer != b"got: question" {
                return Err(format!("answer {:?}", String::from_utf8_lossy(&answer)));
            }
            Ok(())
        },
    );
}

/// Unread data is still there after the active closer's TIME-WAIT (smoltcp
/// forgets the socket then): the read gives the data and the end, not a
/// reset.
#[test]
fn half_closed_data_outlives_time_wait() {
    run_net(
        "time_wait",
        WireConfig::clean(),
        Duration::from_secs(600),
        || async {
            let (a, b) = stacks()?;
            let mut listener = TcpListener::bind(&a, PORT, 1).map_err(text)?;
            let server = spawn(async move {
                let mut conn = listener.accept().await.map_err(text)?;
                let mut buffer = [0u8; 64];
                while conn.read(&mut buffer).await.map_err(text)? != 0 {}
                conn.write_all(b"late answer").await.map_err(text)?;
                conn.shutdown();
                conn.flush().await.map_err(text)?;
                Ok::<(), String>(())
            });
            let mut client = TcpStream::connect(&b, endpoint(1, PORT))
                .await
                .map_err(text)?;
            client.shutdown();
            server.await?;
            // Well past TIME-WAIT (10 s in smoltcp).
            sleep(Duration::from_secs(30)).await;
            let mut answer = Vec::new();
            let mut buffer = [0u8; 64];
            loop {
                match client.read(&mut buffer).await {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buffer[..n]),
                    Err(e) => return Err(format!("read after TIME-WAIT: {e:?}")),
                }
            }
            if answer != b"late answer" {
                return Err(format!("answer {:?}", String::from_utf8_lossy(&answer)));
            }
            match client.write(b"too late").await {
                Err(Error::BrokenPipe) => Ok(()),
                other => Err(format!("write after TIME-WAIT: {other:?}")),
            }
        },
    );
}

#[test]
fn an_abort_is_a_connection_reset_for_the_peer() {
    run_net(
        "reset",
        WireConfig::clean(),
        Duration::from_secs(60),
        || async {
            let (a, b) = stacks()?;
            let mut listener = TcpListener::bind(&a, PORT, 2).map_err(text)?;

            // The reader is waiting when the reset comes.
            let server = spawn(async move {
                let mut first = listener.accept().await.map_err(text)?;
                let mut buffer = [0u8; 64];
                let n = first.read(&mut buffer).await.map_err(text)?;
                if &buffer[..n] != b"hi" {
                    return Err("first read".to_string());
                }
                let read = first.read(&mut buffer).await;
                let write = first.write(b"anyone?").await;
                let again = first.read(&mut buffer).await;
                Ok::<_, String>((read, write, again, listener))
            });
            let mut client = TcpStream::connect(&b, endpoint(1, PORT))
                .await
                .map_err(text)?;
            client.write_all(b"hi").await.map_err(text)?;
            client.flush().await.map_err(text)?;
            client.abort();
            let (read, write, again, mut listener) = server.await?;
            let reset = Err(Error::ConnectionReset);
            if read != reset || write != reset || again != reset {
                return Err(format!("after the reset: {read:?}, {write:?}, {again:?}"));
            }
            // The aborting side sees a reset too, not a panic.
            let mut buffer = [0u8; 8];
            let mine = client.read(&mut buffer).await;
            if mine != reset {
                return Err(format!("the aborting side read {mine:?}"));
            }
            drop(client);

            // The other way round, with data in flight: the writer blocked on
            // a full window learns of the reset.
            let mut client = TcpStream::connect(&b, endpoint(1, PORT))
                .await
                .map_err(text)?;
            let mut second = listener.accept().await.map_err(text)?;
            let writer = spawn(async move {
                let data = vec![0x55u8; 512 << 10];
                client.write_all(&data).await
            });
            sleep(Duration::from_secs(2)).await;
            second.abort();
            drop(second);
            match writer.await {
                Err(Error::ConnectionReset) => Ok(()),
                other => Err(format!("the blocked writer got {other:?}")),
            }
        },
    );
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    run_net(
        "refused",
        WireConfig::clean(),
        Duration::from_secs(60),
        || async {
            let (_a, b) = stacks()?;
            match TcpStream::connect(&b, endpoint(1, 9)).await {
                Err(Error::ConnectionReset) => Ok(()),
                Err(other) => Err(format!("connect to a closed port: {other:?}")),
                Ok(_) => Err("connected to a closed port".into()),
            }
        },
    );
}

#[test]
fn udp_datagrams_cross_between_the_stacks() {
    run_net(
        "udp",
        WireConfig::clean(),
        Duration::from_secs(60),
        || async {
            let (a, b) = stacks()?;
            let server = UdpSocket::bind(&a, 5353).map_err(text)?;
            let client = UdpSocket::bind(&b, 40000).map_err(text)?;
            let echo = spawn(async move {
                let mut buffer = vec![0u8; 2048];
                for _ in 0..50 {
                    let (n, from) = server.recv_from(&mut buffer).await.map_err(text)?;
                    let mut reply = buffer[..n].to_vec();
                    reply.reverse();
                    server.send_to(&reply, from).await.map_err(text)?;
                }
                Ok::<(), String>(())
            });
            let mut buffer = vec![0u8; 2048];
            for i in 0..50usize {
                // Sizes from empty to a full 1472-byte payload.
                let size = (i * 30).min(1472);
                let datagram: Vec<u8> = (0..size).map(|j| pattern(i * 7 + j)).collect();
                client
                    .send_to(&datagram, endpoint(1, 5353))
                    .await
                    .map_err(text)?;
                let (n, from) = client.recv_from(&mut buffer).await.map_err(text)?;
                if from != endpoint(1, 5353) {
                    return Err(format!("reply from {from}"));
                }
                let mut expected = datagram;
                expected.reverse();
                if buffer[..n] != expected[..] {
                    return Err(format!("datagram {i}: wrong reply of {n} bytes"));
                }
            }
            echo.await?;

            // A burst larger than nothing but smaller than the buffers: all
            // of it arrives, in order, on a clean wire.
            let sink = UdpSocket::bind(&a, 9999).map_err(text)?;
            for i in 0..40u8 {
                client
                    .send_to(&[i; 100], endpoint(1, 9999))
                    .await
                    .map_err(text)?;
            }
            for i in 0..40u8 {
                let (n, _) = sink.recv_from(&mut buffer).await.map_err(text)?;
                if buffer[..n] != [i; 100] {
                    return Err(format!("burst datagram {i} out of order or damaged"));
                }
            }
            Ok(())
        },
    );
}

/// Frames nobody reads (stack a is gone) keep device a readable, as a
/// level-triggered tender reports it: the guest's timers still fire, and
/// the datagrams the UDP socket dropped with it still went out.
#[test]
fn an_unread_device_does_not_stop_time() {
    run_net(
        "unread_device",
        WireConfig::clean(),
        Duration::from_secs(60),
        || async {
            let (a, b) = stacks()?;
            // a answers b's ARP request, then goes away.
            let probe = UdpSocket::bind(&a, 1).map_err(text)?;
            let client = UdpSocket::bind(&b, 2).map_err(text)?;
            client
                .send_to(b"first", endpoint(1, 1))
                .await
                .map_err(text)?;
            let mut buffer = [0u8; 16];
            probe.recv_from(&mut buffer).await.map_err(text)?;
            drop(probe);
            drop(a);
            for _ in 0..10 {
                client
                    .send_to(b"into the void", endpoint(1, 1))
                    .await
                    .map_err(text)?;
            }
            drop(client);
            let before = Instant::now();
            sleep(Duration::from_secs(5)).await;
            if Instant::now() - before != Duration::from_secs(5) {
                return Err("the sleep took the wrong time".into());
            }
            let stats = wire_stats(1).unwrap();
            // ARP request and reply, the first datagram, the ten unread.
            if stats.sent != 13 || stats.delivered != 3 {
                return Err(format!("{stats:?}"));
            }
            Ok(())
        },
    );
}

/// Waiting on a device with no timer and no frame coming would hang a real
/// tender forever; the mock ends the guest with an error instead.
#[test]
fn waiting_forever_on_a_device_ends_the_guest() {
    let _watchdog = watchdog("wait_forever", WallDuration::from_secs(120));
    let outcome = run_with_net("", &["a", "b"], WireConfig::clean(), |_| async {
        hvt_runtime::io::readable(1).await;
        Err::<(), _>("a frame came from nowhere")
    });
    assert_eq!(outcome.code, 1, "{outcome:?}");
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.starts_with("mock tender: the guest waits forever"),
        "{error}"
    );
}

#[test]
fn a_device_missing_from_the_manifest_is_no_device() {
    let outcome = run_with_net("", &["a", "b"], WireConfig::clean(), |_| async {
        match Stack::new("c", Config::default()) {
            Err(Error::NoDevice) => Ok(()),
            Err(other) => Err(format!("{other:?}")),
            Ok(_) => Err("a stack on a device that does not exist".to_string()),
        }
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
    // Without devices, the manifest is empty and nothing is attached.
    let outcome = hvt_runtime::testing::run("", |_| async {
        match Stack::new("a", Config::default()) {
            Err(Error::NoDevice) => Ok(()),
            _ => Err("a stack without devices"),
        }
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
}

/// Opens `clients` connections from stack b to an echo server on stack a
/// at once (all SYNs in one burst); each sends one byte and reads it back.
/// Returns how many were served and the errors of the others.
async fn connection_burst(
    a: &Stack,
    b: &Stack,
    backlog: usize,
    clients: usize,
    hold_open: Rc<Cell<bool>>,
) -> Result<(usize, Vec<String>), String> {
    let mut listener = TcpListener::bind(a, PORT, backlog).map_err(text)?;
    let server = spawn(async move {
        loop {
            let Ok(mut conn) = listener.accept().await else {
                return;
            };
            let hold_open = hold_open.clone();
            spawn(async move {
                let mut byte = [0u8; 1];
                if conn.read(&mut byte).await == Ok(1) && conn.write_all(&byte).await.is_ok() {
                    // Keep the connection (its socket) until told.
                    while hold_open.get() {
                        sleep(Duration::from_millis(100)).await;
                    }
                }
                conn.shutdown();
                let _ = conn.flush().await;
            });
        }
    });
    let handles: Vec<_> = (0..clients)
        .map(|id| {
            let b = b.clone();
            spawn(async move {
                let mut conn = TcpStream::connect(&b, endpoint(1, PORT))
                    .await
                    .map_err(|e| format!("client {id}: connect: {e}"))?;
                conn.write_all(&[id.to_le_bytes()[0]])
                    .await
                    .map_err(|e| format!("client {id}: write: {e}"))?;
                let mut byte = [0u8; 1];
                match conn.read(&mut byte).await {
                    Ok(1) if byte[0] == id.to_le_bytes()[0] => Ok(()),
                    other => Err(format!("client {id}: read {other:?}")),
                }
            })
        })
        .collect();
    let mut served = 0;
    let mut errors = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(()) => served += 1,
            Err(e) => errors.push(e),
        }
    }
    server.abort();
    Ok((served, errors))
}

#[test]
fn a_burst_of_connections_far_beyond_the_backlog_is_served_without_a_reset() {
    run_net(
        "burst",
        WireConfig::clean(),
        Duration::from_secs(120),
        || async {
            let (a, b) = stacks()?;
            let (served, errors) =
                connection_burst(&a, &b, 4, 300, Rc::new(Cell::new(false))).await?;
            let (stats, held) = a.backlog_stats();
            std::eprintln!("burst: {served} served, backlog {stats:?}, {held} held");
            if served != 300 || !errors.is_empty() {
                return Err(format!(
                    "{served} of 300 served; {} errors, first {:?}",
                    errors.len(),
                    errors.first()
                ));
            }
            // The 4-deep backlog made most of them wait.
            if stats.held == 0 || stats.admitted < 300 {
                return Err(format!("the backlog did not hold SYNs: {stats:?}"));
            }
            Ok(())
        },
    );
}

#[test]
fn beyond_the_socket_limit_connections_wait_until_others_close() {
    run_net(
        "limit",
        WireConfig::clean(),
        Duration::from_secs(300),
        || async {
            let (a, b) = stacks()?;
            a.set_max_tcp_sockets(10);
            let hold_open = Rc::new(Cell::new(true));
            let burst = {
                let (a, b, hold_open) = (a.clone(), b.clone(), hold_open.clone());
                spawn(async move { connection_burst(&a, &b, 64, 30, hold_open).await })
            };
            // Long enough for several SYN retransmissions of the waiting.
            sleep(Duration::from_secs(10)).await;
            let (stats, held) = a.backlog_stats();
            let sockets = a.tcp_sockets();
            std::eprintln!("limit: {sockets} sockets, {held} held, {stats:?}");
            if sockets != 10 || held != 20 {
                return Err(format!(
                    "at the limit: {sockets} sockets (10 expected), {held} SYNs held (20)"
                ));
            }
            // The held SYNs were retransmitted, and queued once each.
            if stats.held != 20 || stats.admitted != 10 {
                return Err(format!("backlog: {stats:?}"));
            }
            hold_open.set(false);
            let (served, errors) = burst.await?;
            if served != 30 || !errors.is_empty() {
                return Err(format!("{served} of 30 served; errors {errors:?}"));
            }
            Ok(())
        },
    );
}
