//! The SSRF guard: an endpoint must be `https://` and reach public
//! addresses only. Checked when the URL is saved (its host resolved then)
//! and again at every connection, by the delivery client's resolver, so a
//! name that later resolves elsewhere (DNS rebinding) is refused too.
//! `TENANT_JWT_WEBHOOK_ALLOW_PRIVATE=true` lifts both, for local use only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::types::ids::InvalidInput;

/// Whether `ip` is a public unicast address: not loopback, private,
/// link-local (the cloud metadata service lives there), shared, unspecified,
/// multicast, broadcast, documentation or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 among them)
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 of any v4
        || ip.to_ipv4().is_some()) // v4-compatible (deprecated)
}

/// A URL an endpoint may have: absolute, `https://` (or `http://` when
/// private addresses are allowed), with a host, no credentials and no
/// fragment, at most 2 000 characters.
pub fn parse_url(raw: &str, allow_private: bool) -> Result<url::Url, InvalidInput> {
    let invalid = |reason| InvalidInput::new("url", reason);
    if raw.len() > 2000 {
        return Err(invalid("at most 2000 characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| invalid("must be an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(invalid("must be https://")),
    }
    if url.host().is_none() {
        return Err(invalid("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("may not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(invalid("may not have a fragment"));
    }
    Ok(url)
}

/// The addresses `url`'s host resolves to now, all public (unless private
/// ones are allowed); refused if there are none or any is not.
pub async fn resolve(url: &url::Url, allow_private: bool) -> Result<Vec<SocketAddr>, InvalidInput> {
    let refused = InvalidInput::new("url", "must resolve to public addresses only");
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Domain(name)) => {
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(std::time::Duration::from_secs(3), lookup).await {
                Ok(Ok(addrs)) => addrs.collect(),
                _ => return Err(InvalidInput::new("url", "its host does not resolve")),
            }
        }
        None => return Err(refused),
    };
    if addrs.is_empty() || (!allow_private && !addrs.iter().all(|a| is_public(a.ip()))) {
        return Err(refused);
    }
    Ok(addrs)
}

/// The delivery client's resolver: the same rule at every connection.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("the host resolves to no public address".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(ip: &str) -> bool {
        is_public(ip.parse().unwrap())
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "240.0.0.1",
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(public(ip), "{ip} is public");
        }
    }

    #[test]
    fn urls_are_https_with_a_host_and_no_credentials() {
        assert!(parse_url("https://hooks.example.com/x?y=1", false).is_ok());
        assert!(parse_url("http://hooks.example.com/", false).is_err());
        assert!(parse_url("http://127.0.0.1:9/", true).is_ok());
        assert!(parse_url("ftp://example.com/", true).is_err());
        assert!(parse_url("https://user:pw@example.com/", false).is_err());
        assert!(parse_url("https://example.com/#frag", false).is_err());
        assert!(parse_url("/relative", false).is_err());
        assert!(parse_url(&format!("https://e.com/{}", "a".repeat(2000)), false).is_err());
    }

    #[tokio::test]
    async fn loopback_names_and_literals_are_refused_when_saved() {
        for raw in [
            "https://127.0.0.1/",
            "https://localhost:8443/",
            "https://[::1]/",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            let url = parse_url(raw, false).unwrap();
            assert!(resolve(&url, false).await.is_err(), "{raw}");
            assert!(
                resolve(&url, true).await.is_ok(),
                "{raw} allowed when private is"
            );
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_private_answers_at_connection() {
        use reqwest::dns::Resolve;
        let name = || "localhost".parse::<reqwest::dns::Name>().unwrap();
        let guarded = GuardedResolver {
            allow_private: false,
        };
        assert!(guarded.resolve(name()).await.is_err());
        let open = GuardedResolver {
            allow_private: true,
        };
        assert!(open.resolve(name()).await.is_ok());
    }
}
