//! Addressing from the command line: `--ipv4=ADDR/LEN`,
//! `--ipv4-gateway=ADDR`, `--ipv6=ADDR/LEN`, `--ipv6-gateway=ADDR`. Without
//! `--ipv4` the interface asks DHCPv4.

use core::fmt;
use core::str::FromStr;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr};

use crate::Args;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// Static IPv4 address; `None` means DHCPv4.
    pub ipv4: Option<Ipv4Cidr>,
    pub ipv4_gateway: Option<Ipv4Address>,
    pub ipv6: Option<Ipv6Cidr>,
    pub ipv6_gateway: Option<Ipv6Address>,
}

/// A malformed address option: its name and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    pub option: &'static str,
    pub value: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {}={}", self.option, self.value)
    }
}

fn parse<T: FromStr>(args: &Args, option: &'static str) -> Result<Option<T>, ConfigError> {
    match args.value(option) {
        None => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|_| ConfigError { option, value }),
    }
}

impl Config {
    /// The addressing options of the command line.
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        Ok(Config {
            ipv4: parse(args, "--ipv4")?,
            ipv4_gateway: parse(args, "--ipv4-gateway")?,
            ipv6: parse(args, "--ipv6")?,
            ipv6_gateway: parse(args, "--ipv6-gateway")?,
        })
    }

    /// A static IPv4 configuration.
    pub fn ipv4(cidr: Ipv4Cidr) -> Config {
        Config {
            ipv4: Some(cidr),
            ..Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_static_addresses_and_rejects_garbage() {
        let config = Config::from_args(&Args::new(
            "--ipv4=10.0.0.2/24 --ipv4-gateway=10.0.0.1 --ipv6=fd00::2/64",
        ))
        .unwrap();
        assert_eq!(
            config.ipv4,
            Some(Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 2), 24))
        );
        assert_eq!(config.ipv4_gateway, Some(Ipv4Address::new(10, 0, 0, 1)));
        assert!(config.ipv6.is_some());
        assert_eq!(
            Config::from_args(&Args::new("x")).unwrap(),
            Config::default()
        );
        let err = Config::from_args(&Args::new("--ipv4=10.0.0.300/24")).unwrap_err();
        assert_eq!(
            err,
            ConfigError {
                option: "--ipv4",
                value: "10.0.0.300/24"
            }
        );
    }
}
