//! Network blocks for the `from` condition: `10.0.0.0/8`, `2001:db8::/32`, or a single
//! address. IPv4-mapped IPv6 addresses match IPv4 blocks.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;

/// An address block. The address has no bits set past the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = max_prefix(network);
        let prefix =
            match prefix {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    format!("{text:?} has a prefix length that is not 0 to {max}")
                })?,
            };
        let cidr = Cidr { network, prefix };
        if cidr.masked(network) != network {
            return Err(format!(
                "{text:?} has bits set past its prefix; did you mean {}?",
                Cidr {
                    network: cidr.masked(network),
                    prefix
                }
            ));
        }
        Ok(cidr)
    }

    /// Whether `address` lies in this block.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        let same_family = matches!(
            (self.network, address),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        );
        same_family && self.masked(address) == self.network
    }

    /// Whether every address of `other` lies in this block.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }

    fn masked(&self, address: IpAddr) -> IpAddr {
        match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

fn max_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_blocks() {
        let block = Cidr::parse("10.20.0.0/16").unwrap();
        assert!(block.contains(ip("10.20.3.4")));
        assert!(!block.contains(ip("10.21.0.1")));
        assert!(block.contains(ip("::ffff:10.20.9.9")), "IPv4-mapped IPv6");
        assert!(!block.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("192.0.2.1")));
        assert!(Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.7")));
        assert!(!Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.8")));
    }

    #[test]
    fn ipv6_blocks() {
        let block = Cidr::parse("2001:db8::/32").unwrap();
        assert!(block.contains(ip("2001:db8:1::5")));
        assert!(!block.contains(ip("2001:db9::1")));
        assert!(!block.contains(ip("10.0.0.1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "10.0.0/8",
            "host.example",
            "::/129",
            "1.2.3.4/",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(Cidr::parse("10.0.0.1/8")
            .unwrap_err()
            .contains("10.0.0.0/8"));
    }

    #[test]
    fn covering() {
        let wide = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(wide.covers(&Cidr::parse("10.1.0.0/16").unwrap()));
        assert!(!Cidr::parse("10.1.0.0/16").unwrap().covers(&wide));
        assert!(!wide.covers(&Cidr::parse("2001:db8::/32").unwrap()));
    }
}
