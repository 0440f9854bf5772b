//! Which Redis the service talks to, read from `REDIS_URL`:
//!
//! - `redis://[user:pass@]host:port[/db]`: one server (standalone);
//! - `redis+sentinel://[user:pass@]host1:port1[,host2:port2…]/<master-name>[/<db>]`:
//!   the master a set of Sentinels names, followed through failovers (the
//!   credentials are the master's; the Sentinels are asked without any);
//! - `redis+cluster://[user:pass@]host1:port1[,host2:port2…]`: a Redis Cluster,
//!   reached through any of the listed nodes.
//!
//! A malformed URL is refused with an error naming the part that is wrong;
//! no error ever holds the password.

use std::fmt;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

const DEFAULT_PORT: u16 = 6379;
const DEFAULT_SENTINEL_PORT: u16 = 26379;

#[derive(Clone)]
pub enum Topology {
    Standalone(ConnectionInfo),
    Sentinel {
        /// The Sentinels' addresses (asked without credentials).
        sentinels: Vec<ConnectionInfo>,
        /// The name the Sentinels know the master by.
        master: String,
        /// Database and credentials for the master itself.
        node: RedisConnectionInfo,
    },
    Cluster {
        /// Seed nodes, each with the credentials.
        nodes: Vec<ConnectionInfo>,
    },
}

/// What is wrong with `REDIS_URL`; never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("REDIS_URL is invalid: {part}: {problem}")]
pub struct UrlError {
    /// The part of the URL at fault ("the scheme", "the host list", …).
    pub part: &'static str,
    pub problem: String,
}

fn wrong(part: &'static str, problem: impl Into<String>) -> UrlError {
    UrlError {
        part,
        problem: problem.into(),
    }
}

impl Topology {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            wrong(
                "the scheme",
                "expected `redis://`, `redis+sentinel://` or `redis+cluster://`",
            )
        })?;
        match scheme {
            "redis" | "rediss" | "unix" | "redis+unix" => standalone(url),
            "redis+sentinel" => sentinel(rest),
            "redis+cluster" => cluster(rest),
            other => Err(wrong(
                "the scheme",
                format!("`{other}` is not one of redis, redis+sentinel, redis+cluster"),
            )),
        }
    }

    /// `standalone`, `sentinel` or `cluster`: for `/readyz` and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Topology::Standalone(_) => "standalone",
            Topology::Sentinel { .. } => "sentinel",
            Topology::Cluster { .. } => "cluster",
        }
    }
}

/// Addresses only, for logs: never credentials.
impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |infos: &[ConnectionInfo]| {
            infos
                .iter()
                .map(|i| i.addr().to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Topology::Standalone(info) => write!(f, "standalone {}", info.addr()),
            Topology::Sentinel {
                sentinels, master, ..
            } => write!(f, "sentinel {} master {master}", list(sentinels)),
            Topology::Cluster { nodes } => write!(f, "cluster {}", list(nodes)),
        }
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topology({self})")
    }
}

fn standalone(url: &str) -> Result<Topology, UrlError> {
    url.into_connection_info()
        .map(Topology::Standalone)
        // redis-rs's message quotes no part of the URL, so no password either.
        .map_err(|e| wrong("the standalone URL", e.to_string()))
}

/// `[user:pass@]hosts[/path]` split into credentials, hosts and path.
struct Parts<'a> {
    credentials: RedisConnectionInfo,
    hosts: &'a str,
    path: &'a str,
}

fn split(rest: &str) -> Result<Parts<'_>, UrlError> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut credentials = RedisConnectionInfo::default();
    if let Some(userinfo) = userinfo {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let decode = |part: &'static str, raw: &str| {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| wrong(part, "is not valid percent-encoded UTF-8"))
        };
        let user = decode("the user name", user)?;
        let password = decode("the password", password)?;
        if !user.is_empty() {
            credentials = credentials.set_username(user);
        }
        if !password.is_empty() {
            credentials = credentials.set_password(password);
        }
    }
    if hosts.is_empty() {
        return Err(wrong("the host list", "is empty"));
    }
    Ok(Parts {
        credentials,
        hosts,
        path,
    })
}

fn addresses(hosts: &str, default_port: u16) -> Result<Vec<ConnectionAddr>, UrlError> {
    hosts
        .split(',')
        .map(|host| {
            let (name, port) = match host.rsplit_once(':') {
                // `[::1]:26379`, `host:6379`; a bare IPv6 address needs brackets.
                Some((name, port)) if !name.is_empty() && !port.contains(']') => {
                    let port = port
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| {
                            wrong("the host list", format!("`{host}` has no valid port"))
                        })?;
                    (name, port)
                }
                _ => (host, default_port),
            };
            let name = name.trim_start_matches('[').trim_end_matches(']');
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
            if !valid {
                return Err(wrong(
                    "the host list",
                    format!("`{host}` is not a host name"),
                ));
            }
            Ok(ConnectionAddr::Tcp(name.to_owned(), port))
        })
        .collect()
}

fn database(raw: &str) -> Result<i64, UrlError> {
    raw.parse::<i64>()
        .ok()
        .filter(|db| *db >= 0)
        .ok_or_else(|| wrong("the database", format!("`{raw}` is not a database number")))
}

fn sentinel(rest: &str) -> Result<Topology, UrlError> {
    let parts = split(rest)?;
    let mut path = parts.path.split('/');
    let master = path
        .next()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| wrong("the master name", "is missing (`…/<master-name>[/<db>]`)"))?;
    let mut node = parts.credentials;
    if let Some(db) = path.next().filter(|d| !d.is_empty()) {
        node = node.set_db(database(db)?);
    }
    if path.next().is_some() {
        return Err(wrong("the path", "expected `/<master-name>[/<db>]`"));
    }
    let sentinels = addresses(parts.hosts, DEFAULT_SENTINEL_PORT)?
        .into_iter()
        .map(|addr| addr.into_connection_info())
        .collect::<Result<_, _>>()
        .map_err(|e| wrong("the host list", e.to_string()))?;
    Ok(Topology::Sentinel {
        sentinels,
        master: master.to_owned(),
        node,
    })
}

fn cluster(rest: &str) -> Result<Topology, UrlError> {
    let parts = split(rest)?;
    if !parts.path.is_empty() {
        return Err(wrong("the path", "a cluster has no database number"));
    }
    let nodes = addresses(parts.hosts, DEFAULT_PORT)?
        .into_iter()
        .map(|addr| {
            addr.into_connection_info()
                .map(|info| info.set_redis_settings(parts.credentials.clone()))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| wrong("the host list", e.to_string()))?;
    Ok(Topology::Cluster { nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(info: &ConnectionInfo) -> (String, u16) {
        match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            other => panic!("not TCP: {other:?}"),
        }
    }

    #[test]
    fn reads_the_three_forms() {
        let Topology::Standalone(info) = Topology::parse("redis://:pw@cache:6380/2").unwrap()
        else {
            panic!("standalone expected")
        };
        assert_eq!(tcp(&info), ("cache".into(), 6380));
        assert_eq!(info.redis_settings().db(), 2);

        let Topology::Sentinel {
            sentinels,
            master,
            node,
        } = Topology::parse("redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/mymaster/3")
            .unwrap()
        else {
            panic!("sentinel expected")
        };
        let sentinels: Vec<_> = sentinels.iter().map(tcp).collect();
        assert_eq!(
            sentinels,
            [
                ("s1".into(), 26380),
                ("s2".into(), 26379),
                ("::1".into(), 26381)
            ]
        );
        assert_eq!(master, "mymaster");
        assert_eq!(node.db(), 3);
        assert_eq!(node.username(), Some("app"));
        assert_eq!(node.password(), Some("p@ss"));

        let Topology::Cluster { nodes } =
            Topology::parse("redis+cluster://:secret@n1:7000,n2:7001").unwrap()
        else {
            panic!("cluster expected")
        };
        assert_eq!(nodes.len(), 2);
        assert_eq!(tcp(&nodes[1]), ("n2".into(), 7001));
        assert_eq!(nodes[0].redis_settings().password(), Some("secret"));
    }

    #[test]
    fn a_malformed_url_names_the_part_and_never_the_password() {
        let cases = [
            ("mongodb://:hunter2@h:1", "the scheme"),
            ("hunter2", "the scheme"),
            ("redis+sentinel://:hunter2@s1:26379", "the master name"),
            ("redis+sentinel://:hunter2@s1:26379/", "the master name"),
            ("redis+sentinel://:hunter2@s1:x/m", "the host list"),
            ("redis+sentinel://:hunter2@s1:0/m", "the host list"),
            ("redis+sentinel://:hunter2@s1,,s2/m", "the host list"),
            ("redis+sentinel://:hunter2@s1/m/x", "the database"),
            ("redis+sentinel://:hunter2@s1/m/1/2", "the path"),
            ("redis+sentinel://:hunter2@/m", "the host list"),
            ("redis+cluster://:hunter2@n1:7000/0", "the path"),
            ("redis+cluster://:hunter2@n1:99999", "the host list"),
            ("redis+cluster://:hunter2@n%2f1:7000", "the host list"),
            ("redis+cluster://:hunter2%ff@n1:7000", "the password"),
        ];
        for (url, part) in cases {
            let error = Topology::parse(url).expect_err(url);
            assert_eq!(error.part, part, "{url}: {error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        let standalone = Topology::parse("redis://:hunter2@h:notaport").unwrap_err();
        assert_eq!(standalone.part, "the standalone URL");
        assert!(!standalone.to_string().contains("hunter2"), "{standalone}");
    }

    #[test]
    fn shows_addresses_without_credentials() {
        let shown = Topology::parse("redis+sentinel://u:hunter2@s1:1,s2:2/m")
            .unwrap()
            .to_string();
        assert_eq!(shown, "sentinel s1:1,s2:2 master m");
        let debug = format!("{:?}", Topology::parse("redis://:hunter2@h:1").unwrap());
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
