//! Who may change things through the API. Reading (`GET`, `HEAD`, and `OPTIONS` for CORS
//! preflights) stays open, as in Node-Media-Server; every other method under `/api` (kicks, relay
//! and recording control, whatever is added later) is refused unless `auth.api` is on (then Basic
//! auth decides, checked here too, so a route added without its own login is still covered) or
//! the request comes from a loopback address and `auth.api_loopback` is on.
//!
//! The check is one layer on the whole HTTP router, keyed on the path, so a route added by any
//! sub-router under `/api` is covered without having to remember it. It runs on plain HTTP and
//! HTTPS alike: both insert the connection's [`Peer`] before the router sees the request.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::basic_auth::BasicAuth;
use super::conn::Peer;
use crate::config::AuthConfig;

/// What the guard does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Passed on to the handler.
    Allow,
    /// Passed on only with the right Basic auth credentials (`auth.api` is on).
    Login,
    /// Refused with 403.
    Deny,
}

/// The part of the configuration the rule needs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `auth.api`: Basic auth protects the API, so the guard steps aside.
    pub api_auth: bool,
    /// `auth.api_loopback`: loopback peers may mutate without auth.
    pub loopback: bool,
}

impl Policy {
    pub fn new(auth: &AuthConfig) -> Self {
        Policy {
            api_auth: auth.api,
            loopback: auth.api_loopback,
        }
    }
}

/// The layer's state: the rule and, with `auth.api`, the login it asks for.
#[derive(Debug, Clone)]
pub struct Guard {
    policy: Policy,
    login: Option<BasicAuth>,
}

impl Guard {
    pub fn new(auth: &AuthConfig) -> Self {
        Guard {
            policy: Policy::new(auth),
            login: auth
                .api
                .then(|| BasicAuth::new("rill", &auth.api_user, &auth.api_pass)),
        }
    }
}

/// Whether `path` belongs to the API (`/api` itself or anything below it).
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Methods that only read; everything else counts as a change.
fn is_read_only(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether `ip` is loopback, IPv4-mapped IPv6 (`::ffff:127.0.0.1`, what a dual-stack socket
/// reports for an IPv4 peer) included.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The rule itself. `peer` is `None` when the connection's address is unknown (a router driven
/// without the listener, as an embedding program might): treated as remote, so unknown means no.
pub fn decide(policy: Policy, peer: Option<IpAddr>, method: &Method, path: &str) -> Decision {
    if !is_api_path(path) || is_read_only(method) {
        return Decision::Allow;
    }
    if policy.api_auth {
        return Decision::Login;
    }
    match peer {
        Some(ip) if policy.loopback && is_loopback(ip) => Decision::Allow,
        _ => Decision::Deny,
    }
}

/// The text of a refusal: what to set to be let in.
fn refusal_text(policy: Policy, peer: Option<IpAddr>) -> &'static str {
    let from_loopback = peer.is_some_and(is_loopback);
    if from_loopback && !policy.loopback {
        "forbidden: changes through the API need auth.api = true (Basic auth), \
         or auth.api_loopback = true for requests from this host\n"
    } else {
        "forbidden: changes through the API need auth.api = true (Basic auth); \
         without it only loopback clients may make them (auth.api_loopback)\n"
    }
}

/// The middleware: refuses mutating API requests the policy does not allow, with one warning.
pub async fn guard(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let policy = guard.policy;
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(Peer(addr))| *addr);
    let ip = peer.map(|a| a.ip());
    match decide(policy, ip, req.method(), req.uri().path()) {
        Decision::Allow => next.run(req).await,
        Decision::Login => match &guard.login {
            Some(login) if login.check(req.headers().get(header::AUTHORIZATION)) => {
                next.run(req).await
            }
            Some(login) => login.challenge(),
            // `auth.api` without a login cannot be configured (validation); refuse anyway.
            None => (StatusCode::FORBIDDEN, "forbidden\n").into_response(),
        },
        Decision::Deny => {
            // The path only: a query may carry a signature or other secrets.
            let peer_text = peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
            tracing::warn!(
                peer = %peer_text,
                method = %req.method(),
                route = %req.uri().path(),
                "API change refused: neither auth.api nor a loopback client with auth.api_loopback"
            );
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                refusal_text(policy, ip),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Policy = Policy {
        api_auth: false,
        loopback: true,
    };
    const NO_LOOPBACK: Policy = Policy {
        api_auth: false,
        loopback: false,
    };
    const AUTH: Policy = Policy {
        api_auth: true,
        loopback: false,
    };

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn defaults_follow_the_config() {
        let p = Policy::new(&AuthConfig::default());
        assert!(!p.api_auth && p.loopback);
    }

    #[test]
    fn reads_are_open_to_anyone() {
        for policy in [DEFAULTS, NO_LOOPBACK, AUTH] {
            for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
                for peer in [ip("192.0.2.1"), ip("2001:db8::1"), None] {
                    assert_eq!(
                        decide(policy, peer, &m, "/api/streams"),
                        Decision::Allow,
                        "{policy:?} {m} {peer:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn remote_changes_are_refused_without_auth() {
        let mutating = [
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::from_bytes(b"PURGE").unwrap(),
        ];
        for m in &mutating {
            for peer in [
                ip("192.0.2.1"),
                ip("10.0.0.1"),
                ip("2001:db8::1"),
                ip("::ffff:192.0.2.1"),
                ip("0.0.0.0"),
                None,
            ] {
                for path in ["/api/streams/live/a", "/api/relay/pull", "/api", "/api/x/y"] {
                    assert_eq!(
                        decide(DEFAULTS, peer, m, path),
                        Decision::Deny,
                        "{m} {peer:?} {path}"
                    );
                }
            }
        }
    }

    #[test]
    fn loopback_changes_follow_api_loopback() {
        for peer in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            let peer = ip(peer);
            assert_eq!(
                decide(DEFAULTS, peer, &Method::DELETE, "/api/sessions/1"),
                Decision::Allow
            );
            assert_eq!(
                decide(NO_LOOPBACK, peer, &Method::DELETE, "/api/sessions/1"),
                Decision::Deny
            );
        }
    }

    #[test]
    fn with_api_auth_basic_auth_decides() {
        for peer in [ip("192.0.2.1"), ip("127.0.0.1"), None] {
            assert_eq!(
                decide(AUTH, peer, &Method::POST, "/api/relay/pull"),
                Decision::Login
            );
        }
    }

    #[test]
    fn only_api_paths_are_guarded() {
        for path in ["/live/a.flv", "/apix", "/metrics", "/live/api/x"] {
            assert_eq!(
                decide(NO_LOOPBACK, ip("192.0.2.1"), &Method::POST, path),
                Decision::Allow,
                "{path}"
            );
        }
        assert!(is_api_path("/api") && is_api_path("/api/") && !is_api_path("/apis"));
    }

    #[test]
    fn refusal_names_the_keys() {
        let remote = refusal_text(DEFAULTS, ip("192.0.2.1"));
        assert!(remote.contains("auth.api ") && remote.contains("auth.api_loopback"));
        let local = refusal_text(NO_LOOPBACK, ip("127.0.0.1"));
        assert!(local.contains("auth.api_loopback = true"), "{local}");
    }
}
