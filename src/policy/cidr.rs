//! Network blocks for the `from` condition: `10.0.0.0/8`, `2001:db8::/32`, or a single
//! address. An IPv4 address is the same host however it is written: `203.0.113.9`, mapped
//! (`::ffff:203.0.113.9`, what a dual-stack socket reports) or compatible (`::203.0.113.9`).
//! Both the address and the block are brought to IPv4 before they are compared, so
//! `::ffff:0.0.0.0/96` is `0.0.0.0/0`. `::` and `::1` stay IPv6, as do blocks shorter than
//! /96: `::/0` is every IPv6 address and no IPv4 one.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block. The address has no bits set past the prefix, and a block of mapped or
/// compatible IPv4 addresses is held as the IPv4 block it means.
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
        Ok(cidr.canonical())
    }

    /// Whether `address` lies in this block.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
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

    /// A block of /96 or longer inside `::ffff:0:0/96` or `::/96` as the IPv4 block its
    /// addresses mean; `::/127` and the blocks inside it are IPv6's own (`::`, `::1`).
    fn canonical(self) -> Cidr {
        let IpAddr::V6(v6) = self.network else {
            return self;
        };
        match (self.prefix.checked_sub(96), embedded_ipv4(v6)) {
            (Some(prefix), Some(v4))
                if !(prefix >= 31 && u32::from(v4) <= 1 && is_compatible(v6)) =>
            {
                Cidr {
                    network: IpAddr::V4(v4),
                    prefix,
                }
            }
            _ => self,
        }
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

/// An address as the host it names: mapped and compatible IPv4 addresses as IPv4,
/// except `::` and `::1`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) if !(is_compatible(v6) && u32::from(v4) <= 1) => IpAddr::V4(v4),
            _ => address,
        },
        v4 => v4,
    }
}

/// The IPv4 address in the low 32 bits of a mapped (`::ffff:a.b.c.d`) or compatible
/// (`::a.b.c.d`) address.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    v6.to_ipv4_mapped()
        .or_else(|| is_compatible(v6).then(|| Ipv4Addr::from(u128::from(v6) as u32)))
}

/// Whether the first 96 bits are zero, as in an IPv4-compatible address (RFC 4291, 2.5.5.1).
fn is_compatible(v6: Ipv6Addr) -> bool {
    u128::from(v6) >> 32 == 0
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

    /// Every way of writing a block against every way of writing an address: an IPv4
    /// host matches the same blocks whether it is written plain, mapped or compatible.
    #[test]
    fn v4_v6_mapped_and_compatible_forms() {
        let v4_host = ["203.0.113.9", "::ffff:203.0.113.9", "::203.0.113.9"];
        let other_v4_host = ["198.51.100.1", "::ffff:198.51.100.1", "::198.51.100.1"];
        let cases: &[(&str, &[&str], &[&str])] = &[
            // (block, contains, does not contain)
            ("203.0.113.0/24", &v4_host, &other_v4_host),
            ("::ffff:203.0.113.0/120", &v4_host, &other_v4_host),
            ("::203.0.113.0/120", &v4_host, &other_v4_host),
            ("::ffff:203.0.113.9", &v4_host, &other_v4_host),
            ("::203.0.113.9", &v4_host, &["203.0.113.8", "2001:db8::1"]),
            (
                "::ffff:0.0.0.0/96",
                &[
                    "203.0.113.9",
                    "::ffff:203.0.113.9",
                    "::198.51.100.1",
                    "0.0.0.1",
                ],
                &["2001:db8::1", "::1", "::"],
            ),
            (
                "::/96",
                &["203.0.113.9", "::ffff:203.0.113.9", "::203.0.113.9"],
                &["::1", "::", "2001:db8::1"],
            ),
            ("0.0.0.0/0", &v4_host, &["::1", "2001:db8::1", "::"]),
            // Blocks shorter than /96 are IPv6 only: no IPv4 host however written.
            ("::/0", &["::1", "::", "2001:db8::1"], &v4_host),
            ("::/64", &["::1", "::"], &v4_host),
            ("::fffe:0:0/95", &["::fffe:0:1"], &v4_host),
            // `::` and `::1` are IPv6's own, not 0.0.0.0 and 0.0.0.1.
            ("::1", &["::1"], &["0.0.0.1", "::ffff:0.0.0.1", "::"]),
            ("::/127", &["::", "::1"], &["0.0.0.0", "0.0.0.1", "::2"]),
            ("0.0.0.0/8", &["0.0.0.1", "::0.0.0.2"], &["::1", "::"]),
            ("2001:db8::/32", &["2001:db8::1"], &v4_host),
        ];
        for (block, inside, outside) in cases {
            let cidr = Cidr::parse(block).unwrap();
            for address in *inside {
                assert!(
                    cidr.contains(ip(address)),
                    "{block} should contain {address}"
                );
            }
            for address in *outside {
                assert!(
                    !cidr.contains(ip(address)),
                    "{block} should not contain {address}"
                );
            }
        }
    }

    #[test]
    fn mapped_and_compatible_blocks_are_held_as_ipv4() {
        for (written, held) in [
            ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:203.0.113.9", "203.0.113.9/32"),
            ("::/96", "0.0.0.0/0"),
            ("::1", "::1/128"),
            ("::/127", "::/127"),
            ("::fffe:0:0/95", "::fffe:0:0/95"),
        ] {
            assert_eq!(Cidr::parse(written).unwrap().to_string(), held, "{written}");
        }
    }

    /// `policy check` reads shadowing through `covers`: it must agree with `contains`.
    #[test]
    fn covering_across_written_forms() {
        let block = |text| Cidr::parse(text).unwrap();
        assert!(block("::ffff:0.0.0.0/96").covers(&block("10.0.0.0/8")));
        assert!(block("10.0.0.0/8").covers(&block("::ffff:10.1.0.0/112")));
        assert!(block("10.0.0.0/8").covers(&block("::10.1.0.0/112")));
        assert!(block("0.0.0.0/0").covers(&block("::/96")));
        assert!(!block("::/0").covers(&block("10.0.0.0/8")));
        assert!(!block("::/0").covers(&block("::ffff:10.0.0.0/104")));
        assert!(block("::/0").covers(&block("::1")));
        assert!(!block("0.0.0.0/0").covers(&block("::1")));
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
