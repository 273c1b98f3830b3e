//! Who a web request really comes from, and whether its page may talk to us.
//!
//! Behind a reverse proxy every connection comes from the proxy; when the
//! peer is one of `--trusted-proxy`, the client is the last address in
//! `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends
//! the address it heard from, so only the right end can be believed). From
//! anyone else the header is ignored: a client cannot choose its address.
//!
//! A browser names the page that opens a WebSocket in `Origin`; only the
//! page's own origin and those of `--web-origin` may, so another site
//! cannot chat in a visitor's name. Programs send no `Origin` and may.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use ipnet::IpNet;

/// The client's address: `peer`, or what a trusted proxy says it forwarded.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer.ip()) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|entry| entry.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    // From the right: the first entry that is not one of our proxies. An
    // entry that does not parse ends the walk: nothing left of it is known.
    for entry in forwarded.iter().rev() {
        match entry {
            Some(ip) if is_trusted(ip) => continue,
            Some(ip) => return SocketAddr::new(canonical(*ip), peer.port()),
            None => break,
        }
    }
    peer
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) counts as itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether a WebSocket request may be served: no `Origin` (not a browser),
/// the page's own origin (`scheme` and the request's `Host`), or one of
/// `allowed` (already lower case, as `--web-origin` parses them).
pub fn origin_allowed(headers: &HeaderMap, scheme: &str, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let origin = origin.to_ascii_lowercase();
    let own = headers
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| origin == format!("{scheme}://{}", host.to_ascii_lowercase()));
    own || allowed.contains(&origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn nets(typed: &[&str]) -> Vec<IpNet> {
        typed.iter().map(|t| t.parse().expect("a CIDR range")).collect()
    }

    #[test]
    fn only_a_trusted_proxy_is_believed_and_only_from_the_right() {
        let proxy: SocketAddr = "10.0.0.5:4000".parse().expect("addr");
        let stranger: SocketAddr = "192.0.2.9:4000".parse().expect("addr");
        let trusted = nets(&["10.0.0.0/8"]);
        let forwarded = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.7, 10.0.0.9")]);
        assert_eq!(client_addr(proxy, &forwarded, &trusted).ip().to_string(), "203.0.113.7");
        assert_eq!(client_addr(stranger, &forwarded, &trusted), stranger, "not a proxy");
        assert_eq!(client_addr(proxy, &headers(&[]), &trusted), proxy, "no header");
        let garbage = headers(&[("x-forwarded-for", "203.0.113.7, nonsense")]);
        assert_eq!(client_addr(proxy, &garbage, &trusted), proxy, "unreadable entry");
        let mapped = headers(&[("x-forwarded-for", "::ffff:203.0.113.8")]);
        assert_eq!(client_addr(proxy, &mapped, &trusted).ip().to_string(), "203.0.113.8");
        assert_eq!(client_addr(proxy, &forwarded, &[]), proxy, "no proxy trusted");
    }

    #[test]
    fn a_page_of_another_origin_is_refused_unless_allowed() {
        let own = headers(&[("host", "127.0.0.1:7880"), ("origin", "http://127.0.0.1:7880")]);
        assert!(origin_allowed(&own, "http", &[]));
        assert!(!origin_allowed(&own, "https", &[]), "the scheme is part of the origin");
        let foreign = headers(&[("host", "127.0.0.1:7880"), ("origin", "https://evil.example")]);
        assert!(!origin_allowed(&foreign, "http", &[]));
        assert!(origin_allowed(&foreign, "http", &["https://evil.example".to_owned()]));
        assert!(origin_allowed(&headers(&[("host", "x")]), "http", &[]), "a program");
        let no_host = headers(&[("origin", "http://127.0.0.1:7880")]);
        assert!(!origin_allowed(&no_host, "http", &[]));
    }
}
