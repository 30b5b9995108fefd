//! The edge policy every shell applies the same way: which address is the
//! client's, and which upstream addresses the gateway may call.
//!
//! A shell reports the address the platform vouches for (the socket's peer
//! natively, the Function URL's `requestContext.http.sourceIp` on Lambda,
//! `cf-connecting-ip` on Workers, which Cloudflare overwrites). Behind
//! `trusted_proxy_hops` proxies of the operator's own, each appending the
//! address it saw to `X-Forwarded-For`, the client is the entry that many
//! places from the right: every entry to its left was written by the client
//! and proves nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;

/// Cloud metadata services by name (GCP, AWS's legacy name): never an
/// upstream unless link-local upstreams are allowed.
const METADATA_HOSTS: [&str; 4] = [
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Whether the gateway may call `ip`: link-local addresses (where cloud
/// metadata services answer, with the instance's credentials) and the
/// known metadata addresses only when the operator allows them. Loopback
/// and private LANs stay allowed: local backends live there.
pub fn upstream_ip_allowed(ip: IpAddr, allow_link_local: bool) -> bool {
    if allow_link_local {
        return true;
    }
    let v4 = |v4: Ipv4Addr| {
        // 169.254.0.0/16 (AWS, GCP, Azure: .169.254) and Alibaba's address.
        !(v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200))
    };
    match ip {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(mapped) => v4(mapped),
            // fe80::/10, and AWS's IPv6 metadata address.
            None => {
                (a.segments()[0] & 0xffc0) != 0xfe80
                    && a != Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            }
        },
    }
}

/// Whether an upstream URL's host may be called, as far as the URL alone
/// tells (an IP literal or a metadata name); names are checked again once
/// resolved, by the runtime's resolver where it has one.
pub fn upstream_url_allowed(url: &str, allow_link_local: bool) -> bool {
    url.parse::<http::Uri>()
        .is_ok_and(|u| upstream_uri_allowed(&u, allow_link_local))
}

/// [`upstream_url_allowed`] for a parsed URI (a request about to be sent).
pub fn upstream_uri_allowed(uri: &http::Uri, allow_link_local: bool) -> bool {
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    match host.parse::<IpAddr>() {
        Ok(ip) => upstream_ip_allowed(ip, allow_link_local),
        Err(_) => allow_link_local || !METADATA_HOSTS.iter().any(|m| host.eq_ignore_ascii_case(m)),
    }
}

/// The client's address for a request from `peer` with `headers`, behind
/// `trusted_proxy_hops` proxies (0: the peer itself).
pub fn client_ip(
    trusted_proxy_hops: u8,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Option<IpAddr> {
    if trusted_proxy_hops == 0 {
        return peer;
    }
    // Several header lines form one list, in order (RFC 9110 5.3).
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // Fewer entries than hops: every one was appended by a trusted proxy,
    // and the leftmost is the address the first of them saw.
    let at = entries
        .len()
        .saturating_sub(usize::from(trusted_proxy_hops));
    match entries.get(at) {
        Some(entry) => parse(entry),
        // No header at all: the request did not come through the proxies.
        None => peer,
    }
}

/// An address as proxies write it: bare, or with a port (`1.2.3.4:5`,
/// `[::1]:5`). Anything else is no address (and passes no allowlist).
fn parse(entry: &str) -> Option<IpAddr> {
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", l.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn metadata_and_link_local_upstreams_are_refused_unless_allowed() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1:8080",
            "http://100.100.100.200/",
            "http://[fe80::1]:80/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://METADATA.google.internal./",
        ] {
            assert!(!upstream_url_allowed(url, false), "{url}");
            assert!(upstream_url_allowed(url, true), "{url}");
        }
        for url in [
            "http://127.0.0.1:11434",
            "http://[::1]:8000/v1",
            "http://10.0.0.5:8000",
            "http://192.168.1.20:11434",
            "https://api.openai.com/v1",
            "http://localhost:8080",
        ] {
            assert!(upstream_url_allowed(url, false), "{url}");
        }
        assert!(!upstream_url_allowed("not a url", false));
    }

    #[test]
    fn without_trusted_proxies_only_the_peer_counts() {
        let h = headers(&["10.1.2.3"]);
        assert_eq!(client_ip(0, &h, ip("203.0.113.9")), ip("203.0.113.9"));
    }

    #[test]
    fn a_client_written_entry_never_wins() {
        // The client wrote 10.1.2.3; our one proxy appended what it saw.
        let h = headers(&["10.1.2.3, 203.0.113.9"]);
        assert_eq!(client_ip(1, &h, ip("127.0.0.1")), ip("203.0.113.9"));
        // Two proxies of ours: the client is second from the right.
        let h = headers(&["10.1.2.3, 203.0.113.9, 192.0.2.1"]);
        assert_eq!(client_ip(2, &h, ip("127.0.0.1")), ip("203.0.113.9"));
        // Split over several header lines: the same list.
        let h = headers(&["10.1.2.3", "203.0.113.9, 192.0.2.1"]);
        assert_eq!(client_ip(2, &h, ip("127.0.0.1")), ip("203.0.113.9"));
    }

    #[test]
    fn short_missing_or_garbled_headers() {
        let peer = ip("127.0.0.1");
        assert_eq!(
            client_ip(2, &headers(&["198.51.100.7"]), peer),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(1, &HeaderMap::new(), peer), peer);
        assert_eq!(client_ip(1, &headers(&["10.0.0.1, nonsense"]), peer), None);
        assert_eq!(
            client_ip(1, &headers(&["[2001:db8::1]:443"]), peer),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(1, &headers(&["198.51.100.7:80"]), peer),
            ip("198.51.100.7")
        );
    }
}
