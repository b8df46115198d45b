//! Networking: a smoltcp interface per network device, driven by a task of
//! the runtime's executor (the way embassy-net drives smoltcp), with async
//! TCP and UDP sockets on top.
//!
//! ```ignore
//! let stack = Stack::from_args("service", &args)?;   // --ipv4=10.0.0.2/24, or DHCP
//! let mut listener = TcpListener::bind(&stack, 7, 8)?;
//! let mut conn = listener.accept().await?;
//! ```

mod backlog;
mod config;
mod device;
mod error;
pub(crate) mod ring;
mod stack;
mod tcp;
mod udp;

pub use backlog::{BacklogStats, HANDSHAKE_TIMEOUT, HOLD_TIME, MAX_HELD};
pub use config::{Config, ConfigError};
pub use device::NetDevice;
pub use error::Error;
pub use stack::Stack;
pub use tcp::{
    default_max_tcp_sockets, TcpListener, TcpReader, TcpStream, TcpWriter, TCP_BUFFER,
    TCP_SOCKET_MEMORY,
};
pub use udp::UdpSocket;

pub use smoltcp::wire::{
    IpAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr,
};
