//! What the network probes do, for each device in turn: acquire it, print
//! "NAME: handle H", "MTU is N" and "MAC is xx:xx:xx:xx:xx:xx", check that
//! handles 0 and 99 are refused ("bad handles: EINVAL"), and write one
//! broadcast frame of type 0x88b5 whose payload is "netprobe frame from
//! NAME" ("NAME: sent frame").
//!
//! With one IPv4 address per device on the command line, the probe then
//! prints "ready", answers ARP requests for those addresses and exits 0 once
//! every device has received a UDP datagram for its address ("NAME: got
//! UDP: PAYLOAD"), or 1 after 30 seconds. With "short-write" instead, it
//! writes a 5-byte frame, which must end the tender. With "ring-garbage" it
//! corrupts the shared-memory ring's indices and rings the doorbell; with
//! "kick8" it rings the doorbell with an 8-bit OUT: both must end the
//! tender too.

use hvt_bindings::net::{self, NetError};
use hvt_bindings::{clock, poll, println};

const MAX_DEVICES: usize = 2;
const ETHERTYPE_PROBE: [u8; 2] = [0x88, 0xb5];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const TIMEOUT_NS: u64 = 30_000_000_000;

fn parse_ipv4(text: &str) -> Option<[u8; 4]> {
    let mut ip = [0u8; 4];
    let mut parts = text.split('.');
    for byte in &mut ip {
        *byte = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(ip)
}

struct Device<'a> {
    name: &'a str,
    handle: u64,
    mac: [u8; 6],
    ip: [u8; 4],
    done: bool,
}

pub fn run(names: &[&str], cmdline: &str) -> i32 {
    let mut devices: [Option<Device>; MAX_DEVICES] = [const { None }; MAX_DEVICES];
    for (slot, &name) in devices.iter_mut().zip(names) {
        let info = match net::acquire(name) {
            Ok(info) => info,
            Err(e) => {
                println!("{name}: acquire failed: {e:?}");
                return 1;
            }
        };
        let m = info.mac;
        println!("{name}: handle {}", info.handle);
        println!("MTU is {}", info.mtu);
        println!(
            "MAC is {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        *slot = Some(Device {
            name,
            handle: info.handle,
            mac: m,
            ip: [0; 4],
            done: false,
        });
    }

    let mut buffer = [0u8; 64];
    let bad = [0u64, 99].iter().all(|&h| {
        net::read(h, &mut buffer) == Err(NetError::Invalid)
            && net::write(h, &buffer) == Err(NetError::Invalid)
    });
    println!("bad handles: {}", if bad { "EINVAL" } else { "accepted" });

    for device in devices.iter().flatten() {
        let mut frame = [0u8; 64];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&device.mac);
        frame[12..14].copy_from_slice(&ETHERTYPE_PROBE);
        let payload = [b"netprobe frame from ".as_slice(), device.name.as_bytes()];
        let mut len = 14;
        for part in payload {
            frame[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        match net::write(device.handle, &frame[..len.max(60)]) {
            Ok(()) => println!("{}: sent frame", device.name),
            Err(e) => {
                println!("{}: write failed: {e:?}", device.name);
                return 1;
            }
        }
    }

    let mut ips = cmdline.split_whitespace();
    let Some(first) = ips.next() else { return 0 };
    if first == "short-write" {
        // Shorter than an Ethernet header: the tap refuses it, and the
        // tender must stop.
        if let Some(device) = devices.iter().flatten().next() {
            let result = net::write(device.handle, &[0u8; 5]);
            println!("netprobe: survived a short write: {result:?}");
        }
        return 3;
    }
    if first == "ring-garbage" || first == "kick8" {
        return abuse_ring(first);
    }
    let mut next = Some(first);
    for device in devices.iter_mut().flatten() {
        match next.and_then(parse_ipv4) {
            Some(ip) => device.ip = ip,
            None => {
                println!("usage: netprobe [IPV4 for each device]");
                return 2;
            }
        }
        next = ips.next();
    }
    serve(&mut devices)
}

fn serve(devices: &mut [Option<Device>]) -> i32 {
    println!("ready");
    let deadline = clock::monotonic_ns() + TIMEOUT_NS;
    let mut buffer = [0u8; 16384];
    while clock::monotonic_ns() < deadline {
        let ready = poll::yield_until(deadline);
        for device in devices.iter_mut().flatten() {
            if ready & (1 << device.handle) == 0 {
                continue;
            }
            loop {
                match net::read(device.handle, &mut buffer) {
                    Ok(len) => handle_frame(device, &buffer[..len]),
                    Err(NetError::Again) => break,
                    Err(e) => {
                        println!("{}: read failed: {e:?}", device.name);
                        return 1;
                    }
                }
            }
        }
        if devices.iter().flatten().all(|d| d.done) {
            println!("netprobe: done");
            return 0;
        }
    }
    println!("netprobe: timed out");
    1
}

fn handle_frame(device: &mut Device, frame: &[u8]) {
    if frame.len() < 14 {
        return;
    }
    let (ethertype, body) = ([frame[12], frame[13]], &frame[14..]);
    if ethertype == ETHERTYPE_ARP && body.len() >= 28 {
        // Request (op 1) for our address: reply.
        if body[6..8] != [0, 1] || body[24..28] != device.ip {
            return;
        }
        let mut reply = [0u8; 60];
        reply[..6].copy_from_slice(&body[8..14]);
        reply[6..12].copy_from_slice(&device.mac);
        reply[12..14].copy_from_slice(&ETHERTYPE_ARP);
        reply[14..20].copy_from_slice(&body[..6]); // htype, ptype, hlen, plen
        reply[20..22].copy_from_slice(&[0, 2]);
        reply[22..28].copy_from_slice(&device.mac);
        reply[28..32].copy_from_slice(&device.ip);
        reply[32..42].copy_from_slice(&body[8..18]); // sender MAC and IP
        let s = &body[14..18];
        match net::write(device.handle, &reply) {
            Ok(()) => println!(
                "{}: answered ARP from {}.{}.{}.{}",
                device.name, s[0], s[1], s[2], s[3]
            ),
            Err(e) => println!("{}: ARP reply failed: {e:?}", device.name),
        }
    } else if ethertype == ETHERTYPE_IPV4 && body.len() >= 20 {
        let header = usize::from(body[0] & 0x0f) * 4;
        if body[9] != 17 || body[16..20] != device.ip || body.len() < header + 8 {
            return;
        }
        let udp = &body[header..];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let payload = &udp[8..udp_len.clamp(8, udp.len())];
        let text = core::str::from_utf8(payload).unwrap_or("<not UTF-8>");
        println!("{}: got UDP: {text}", device.name);
        device.done = true;
    }
}

/// Misuses the shared-memory ring (§6.7) the way `action` says.
fn abuse_ring(action: &str) -> i32 {
    let Some(info) = hvt_bindings::boot::boot_info() else {
        return 2;
    };
    if info.host_features & hvt_bindings::abi::boot::HOST_FEATURE_RING_IO == 0 {
        println!("netprobe: no ring offered");
        return 2;
    }
    let ring = info.net_ring as *mut hvt_bindings::abi::ring::Ring;
    if action == "ring-garbage" {
        // 2^31 entries "outstanding": far more than the ring holds.
        // SAFETY: the ring is ours to write (it is the guest's half).
        unsafe {
            let tail = core::ptr::addr_of_mut!((*ring).ent_tail);
            tail.write_volatile(0x8000_0000);
            core::arch::asm!("out dx, eax", in("dx") 0x600u16, in("eax") 0u32);
        }
        // Give the I/O thread time to look.
        let deadline = clock::monotonic_ns() + 2_000_000_000;
        while clock::monotonic_ns() < deadline {
            poll::yield_until(deadline);
        }
    } else {
        // SAFETY: an 8-bit OUT to the doorbell: refused by the tender.
        unsafe { core::arch::asm!("out dx, al", in("dx") 0x600u16, in("al") 0u8) };
    }
    println!("netprobe: survived {action}");
    3
}
