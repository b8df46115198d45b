//! The behaviour of Solo5's net conformance case: answer ARP requests for
//! our address and ICMP echo requests to it, on one or two interfaces, and
//! exit 0 after `--limit=N` echo requests in all. Frames are handled raw
//! (smoltcp's `wire` only parses and checks them), so every echo request is
//! seen and counted.
#![no_std]

extern crate alloc;

use alloc::rc::Rc;
use alloc::vec;
use core::cell::Cell;

use hvt_runtime::__bindings::net::{self, NetError, NetInfo};
use hvt_runtime::sync::channel::{channel, Sender};
use hvt_runtime::{io, println, spawn, Args};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Message, Icmpv4Packet, IpProtocol, Ipv4Address, Ipv4Packet,
};

/// Answers one frame in place; returns the reply length, if any, and
/// whether it was an echo request.
fn answer(
    frame: &mut [u8],
    len: usize,
    mac: EthernetAddress,
    ip: Ipv4Address,
) -> (Option<usize>, bool) {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut frame[..len]) else {
        return (None, false);
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let Ok(arp) = ArpPacket::new_checked(eth.payload_mut()) else {
                return (None, false);
            };
            let Ok(ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr,
                source_protocol_addr,
                target_protocol_addr,
                ..
            }) = ArpRepr::parse(&arp)
            else {
                return (None, false);
            };
            if target_protocol_addr != ip {
                return (None, false);
            }
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: mac,
                source_protocol_addr: ip,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            let eth_repr = EthernetRepr {
                src_addr: mac,
                dst_addr: source_hardware_addr,
                ethertype: EthernetProtocol::Arp,
            };
            let total = eth_repr.buffer_len() + reply.buffer_len();
            let mut out = EthernetFrame::new_unchecked(&mut frame[..total]);
            eth_repr.emit(&mut out);
            reply.emit(&mut ArpPacket::new_unchecked(out.payload_mut()));
            (Some(total), false)
        }
        EthernetProtocol::Ipv4 => {
            let peer_mac = eth.src_addr();
            let Ok(mut ip_packet) = Ipv4Packet::new_checked(eth.payload_mut()) else {
                return (None, false);
            };
            if ip_packet.dst_addr() != ip
                || ip_packet.next_header() != IpProtocol::Icmp
                || !ip_packet.verify_checksum()
            {
                return (None, false);
            }
            let peer_ip = ip_packet.src_addr();
            {
                let Ok(mut icmp) = Icmpv4Packet::new_checked(ip_packet.payload_mut()) else {
                    return (None, false);
                };
                if icmp.msg_type() != Icmpv4Message::EchoRequest || !icmp.verify_checksum() {
                    return (None, false);
                }
                icmp.set_msg_type(Icmpv4Message::EchoReply);
                icmp.fill_checksum();
            }
            ip_packet.set_src_addr(ip);
            ip_packet.set_dst_addr(peer_ip);
            ip_packet.fill_checksum();
            eth.set_src_addr(mac);
            eth.set_dst_addr(peer_mac);
            (Some(len), true)
        }
        _ => (None, false),
    }
}

/// Serves one interface until the shared count reaches `limit`.
async fn serve(
    info: NetInfo,
    ip: Ipv4Address,
    count: Rc<Cell<u64>>,
    limit: Option<u64>,
    done: Sender<Result<(), NetError>>,
) {
    let _ = done.send(answer_all(info, ip, count, limit).await);
}

async fn answer_all(
    info: NetInfo,
    ip: Ipv4Address,
    count: Rc<Cell<u64>>,
    limit: Option<u64>,
) -> Result<(), NetError> {
    let mac = EthernetAddress(info.mac);
    let mut frame = vec![0u8; usize::from(info.mtu) + 14];
    loop {
        loop {
            let len = match net::read(info.handle, &mut frame) {
                Ok(len) => len,
                Err(NetError::Again) => break,
                Err(error) => return Err(error),
            };
            let (reply, echo) = answer(&mut frame, len, mac, ip);
            if let Some(reply_len) = reply {
                net::write(info.handle, &frame[..reply_len])?;
            }
            if echo {
                count.set(count.get() + 1);
                if limit.is_some_and(|l| count.get() >= l) {
                    return Ok(());
                }
            }
        }
        // A handle beyond usize fails io::readable's range check.
        io::readable(usize::try_from(info.handle).unwrap_or(usize::MAX)).await;
    }
}

/// Runs the responder on the devices `names` with the addresses
/// `--ipv4=` (first) and `--ipv4-second=` (second).
pub async fn run(names: &[&'static str], args: Args) -> Result<(), &'static str> {
    let limit: Option<u64> = args.value("--limit").and_then(|n| n.parse().ok());
    let count = Rc::new(Cell::new(0u64));
    let options = ["--ipv4", "--ipv4-second"];
    let (done, mut finished) = channel();
    for (name, option) in names.iter().zip(options) {
        let info = net::acquire(name).map_err(|_| "network device not attached")?;
        let ip: Ipv4Address = args
            .value(option)
            .ok_or("an address option is missing")?
            .parse()
            .map_err(|_| "bad address")?;
        println!("pingd: {name} is {ip}, MTU {}", info.mtu);
        spawn(serve(info, ip, count.clone(), limit, done.clone()));
    }
    // With a limit, the interface that sees the last request finishes; any
    // read or write that fails ends the guest too.
    match finished.recv().await {
        Some(Ok(())) => {
            println!("pingd: answered {} echo requests", count.get());
            println!("SUCCESS");
            Ok(())
        }
        Some(Err(error)) => {
            println!("pingd: network error {error:?}");
            Err("network error")
        }
        None => Err("no interface"),
    }
}
