//! Which IP addresses a remote fetch may connect to: the table of refused (non-public)
//! addresses, and the resolver that applies it after DNS, to the address actually connected
//! to. URL syntax and the host allow-list are `target`'s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use super::target::normalize_host;

/// Why a connection to `ip` is refused when private addresses are not allowed, or `None` for a
/// public address. Covers loopback, private, shared, link-local (cloud metadata), multicast,
/// reserved ranges, and IPv6 forms that embed or route to IPv4 addresses.
pub(super) fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => refusal_v4(ip),
        IpAddr::V6(ip) => refusal_v6(ip),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (255, 255, 255) if ip == Ipv4Addr::BROADCAST => "broadcast",
        (0, _, _) => "unspecified",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private",
        // 100.64/10, which includes Alibaba Cloud's metadata service 100.100.100.200.
        (100, 64..=127, _) => "shared (CGNAT)",
        (127, _, _) => "loopback",
        // Includes the AWS/GCP/Azure metadata service 169.254.169.254.
        (169, 254, _) => "link-local",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (mapped): the kernel connects to the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_v4(v4);
    }
    match s {
        // ::a.b.c.d (IPv4-compatible, deprecated): never legitimate.
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(refusal_v4(embedded(hi, lo)).unwrap_or("reserved")),
        // NAT64 well-known prefix: reaches the embedded IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => refusal_v4(embedded(hi, lo)),
        // 6to4: reaches the embedded IPv4 address.
        [0x2002, hi, lo, ..] => refusal_v4(embedded(hi, lo)),
        // Teredo tunnels embed addresses we cannot vet.
        [0x2001, 0, ..] => Some("reserved"),
        [0x2001, 0xdb8, ..] => Some("documentation"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("unique-local"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("link-local"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Some("site-local"),
        [first, ..] if first & 0xff00 == 0xff00 => Some("multicast"),
        // Only 2000::/3 is global unicast; everything else is reserved or special.
        [first, ..] if first & 0xe000 != 0x2000 => Some("reserved"),
        _ => None,
    }
}

/// A resolver that drops refused addresses after DNS, so the check applies to the address
/// actually connected to (a name cannot rebind between a check and the connect).
#[derive(Debug)]
pub(super) struct GuardedResolver {
    pub(super) allow_private: bool,
}

/// Every address of a host was refused; carried through ureq as `Error::Other`.
#[derive(Debug, thiserror::Error)]
#[error("host {host} resolves to a {why} address ({ip})")]
pub(super) struct Refused {
    pub(super) host: String,
    ip: IpAddr,
    why: &'static str,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let found = DefaultResolver::default().resolve(uri, config, timeout)?;
        if self.allow_private {
            return Ok(found);
        }
        let mut kept = self.empty();
        let mut refused = None;
        for addr in &found {
            match refusal(addr.ip()) {
                None => kept.push(*addr),
                Some(why) => refused = Some((addr.ip(), why)),
            }
        }
        match refused {
            Some((ip, why)) if kept.is_empty() => {
                let host = uri.host().map(normalize_host).unwrap_or_default();
                let refused = Refused { host, ip, why };
                log::warn!("refused remote source {uri}: {refused}");
                Err(ureq::Error::Other(Box::new(refused)))
            }
            _ => Ok(kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_table() {
        let table: &[(&str, Option<&str>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.215.14", None),
            ("172.15.255.255", None),
            ("172.32.0.1", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("223.255.255.255", None),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.254", Some("loopback")),
            ("10.0.0.1", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("shared (CGNAT)")),
            ("100.100.100.200", Some("shared (CGNAT)")),
            ("169.254.169.254", Some("link-local")),
            ("192.0.0.170", Some("reserved")),
            ("192.0.2.1", Some("documentation")),
            ("198.18.0.1", Some("benchmarking")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("240.0.0.1", Some("reserved")),
            ("255.255.255.255", Some("broadcast")),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:80b::200e", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
            ("2002:808:808::1", None),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("fc00::1", Some("unique-local")),
            ("fd00:ec2::254", Some("unique-local")),
            ("ff02::1", Some("multicast")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("::ffff:10.1.2.3", Some("private")),
            ("::127.0.0.1", Some("loopback")),
            ("::8.8.8.8", Some("reserved")),
            ("64:ff9b::a9fe:a9fe", Some("link-local")),
            ("2002:7f00:1::", Some("loopback")),
            ("2001::1", Some("reserved")),
            ("2001:db8::1", Some("documentation")),
            ("100::1", Some("reserved")),
        ];
        for (ip, want) in table {
            let got = refusal(ip.parse().unwrap());
            assert_eq!(got, *want, "{ip}");
        }
    }
}
