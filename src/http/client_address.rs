//! Who the client is: the socket peer, unless the peer is a trusted proxy;
//! then the rightmost address of `X-Forwarded-For` that is not a trusted
//! proxy itself. A forged header from anyone else changes nothing.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted_proxies.iter().any(|net| net.contains(&ip));
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip().to_canonical());
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(**ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut req = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(forwarded) = forwarded {
            req = req.insert_header(("X-Forwarded-For", forwarded));
        }
        req.to_http_request()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |peer, xff| client_ip(&request(peer, xff), &trusted).to_string();
        assert_eq!(
            ip("203.0.113.9:1", Some("198.51.100.1")),
            "203.0.113.9",
            "untrusted peer"
        );
        assert_eq!(ip("10.0.0.1:1", Some("198.51.100.1")), "198.51.100.1");
        assert_eq!(
            ip("10.0.0.1:1", Some("198.51.100.7, 198.51.100.1, 10.0.0.2")),
            "198.51.100.1",
            "rightmost untrusted"
        );
        assert_eq!(ip("10.0.0.1:1", Some("garbage")), "10.0.0.1");
        assert_eq!(ip("10.0.0.1:1", None), "10.0.0.1");
    }
}
