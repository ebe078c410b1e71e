//! Target URLs and the loopback rule.
//!
//! A load generator pointed at the wrong host is a denial-of-service tool, so every URL the bench
//! opens goes through [`Target::parse`], which accepts only loopback hosts: `localhost`, an IPv4
//! address in 127.0.0.0/8, or `[::1]`. Names are never resolved through DNS (`localhost` is mapped
//! to 127.0.0.1 here), so no resolver configuration can redirect the traffic elsewhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// URL schemes the bench speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Rtmp,
    Http,
    Ws,
}

/// A parsed, loopback-checked URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// Host as written in the URL (with brackets for IPv6, with the port if one was given): what
    /// goes into `Host:` and RTMP's tcUrl.
    pub authority: String,
    pub addr: SocketAddr,
    /// Path and query, always starting with `/`.
    pub path: String,
}

impl Target {
    /// Parses `scheme://host[:port]/path` and refuses any host that is not loopback.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest, default_port) = if let Some(r) = url.strip_prefix("rtmp://") {
            (Scheme::Rtmp, r, 1935)
        } else if let Some(r) = url.strip_prefix("http://") {
            (Scheme::Http, r, 80)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (Scheme::Ws, r, 80)
        } else {
            return Err(format!(
                "{url}: only rtmp://, http:// and ws:// URLs are supported"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| format!("{url}: bad host or port in {authority:?}"))?;
        let ip = loopback_ip(host).ok_or_else(|| {
            format!(
                "{url}: refused: {host} is not a loopback address (127.0.0.0/8, ::1, localhost)"
            )
        })?;
        Ok(Target {
            scheme,
            authority: authority.to_owned(),
            addr: SocketAddr::new(ip, port.unwrap_or(default_port)),
            path: path.to_owned(),
        })
    }

    /// RTMP app and stream name (with its query) from the path `/app/stream[?query]`.
    pub fn rtmp_parts(&self) -> Result<(String, String), String> {
        let p = self.path.trim_start_matches('/');
        match p.split_once('/') {
            Some((app, stream)) if !app.is_empty() && !stream.is_empty() => {
                Ok((app.to_owned(), stream.to_owned()))
            }
            _ => Err(format!("RTMP URL path {:?} must be /app/stream", self.path)),
        }
    }

    /// `rtmp://authority/app`, as RTMP's connect command wants it.
    pub fn tc_url(&self, app: &str) -> String {
        format!("rtmp://{}/{}", self.authority, app)
    }
}

/// Splits `host[:port]` or `[v6][:port]`; `None` if malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.contains('@') {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p.parse().ok()?))),
        Some(_) => None,
        None if authority.is_empty() => None,
        None => Some((authority, None)),
    }
}

/// The loopback address `host` names, or `None` if it names anything else.
pub fn loopback_ip(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return v4.is_loopback().then_some(IpAddr::V4(v4));
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return (v6 == Ipv6Addr::LOCALHOST).then_some(IpAddr::V6(v6));
    }
    None
}

/// Replaces `{stream}` in a URL template.
pub fn fill(template: &str, stream: &str) -> String {
    template.replace("{stream}", stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_forms() {
        let t = Target::parse("rtmp://127.0.0.1:1936/live/bench?k=1").unwrap();
        assert_eq!(t.scheme, Scheme::Rtmp);
        assert_eq!(t.addr, "127.0.0.1:1936".parse().unwrap());
        assert_eq!(t.path, "/live/bench?k=1");
        assert_eq!(t.rtmp_parts().unwrap(), ("live".into(), "bench?k=1".into()));
        assert_eq!(t.tc_url("live"), "rtmp://127.0.0.1:1936/live");

        let t = Target::parse("http://localhost/live/a.flv").unwrap();
        assert_eq!(t.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(t.authority, "localhost");

        let t = Target::parse("ws://[::1]:8000/live/a.flv").unwrap();
        assert_eq!(t.scheme, Scheme::Ws);
        assert_eq!(t.addr, "[::1]:8000".parse().unwrap());

        let t = Target::parse("rtmp://127.8.9.10/live/x").unwrap();
        assert_eq!(t.addr.port(), 1935);
        assert_eq!(Target::parse("http://LOCALHOST:1").unwrap().path, "/");
    }

    #[test]
    fn refuses_everything_else() {
        for url in [
            "rtmp://10.0.0.1/live/x",
            "rtmp://192.168.1.2:1935/live/x",
            "http://8.8.8.8/live/x.flv",
            "http://example.com/live/x.flv",
            "http://localhost.example.com/x",
            "http://127.0.0.1.nip.io/x",
            "ws://[::2]/x",
            "ws://[::ffff:8.8.8.8]/x",
            "http://0.0.0.0:8000/x",
            "http://user@127.0.0.1/x",
            "https://127.0.0.1/x",
            "ftp://127.0.0.1/x",
            "http://127.0.0.1:99999/x",
            "http://:80/x",
            "http://[::1/x",
        ] {
            assert!(Target::parse(url).is_err(), "{url} must be refused");
        }
        let e = Target::parse("rtmp://10.1.2.3/live/x").unwrap_err();
        assert!(e.contains("not a loopback"), "{e}");
    }

    #[test]
    fn loopback_ip_rule() {
        assert!(loopback_ip("127.0.0.1").is_some());
        assert!(loopback_ip("127.255.255.254").is_some());
        assert!(loopback_ip("::1").is_some());
        assert!(loopback_ip("localhost").is_some());
        assert!(loopback_ip("128.0.0.1").is_none());
        assert!(loopback_ip("::").is_none());
        assert!(loopback_ip("").is_none());
    }

    #[test]
    fn rtmp_parts_need_app_and_stream() {
        for url in [
            "rtmp://127.0.0.1/live",
            "rtmp://127.0.0.1/live/",
            "rtmp://127.0.0.1//x",
        ] {
            assert!(Target::parse(url).unwrap().rtmp_parts().is_err(), "{url}");
        }
        assert_eq!(
            fill("http://h/live/{stream}.flv", "s-3"),
            "http://h/live/s-3.flv"
        );
    }
}
