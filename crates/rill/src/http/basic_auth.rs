//! HTTP Basic authentication (RFC 7617) as an axum middleware, for any group of routes that needs a
//! login: the API and the metrics today, an admin page later.
//!
//! ```ignore
//! let auth = BasicAuth::new("rill", &user, &pass);
//! router.route_layer(axum::middleware::from_fn_with_state(auth, basic_auth::require));
//! ```
//!
//! Credentials are compared in constant time: both the offered and the configured user and
//! password are hashed with SHA-256 first, so the comparison always runs over 32 bytes whatever the
//! lengths, and user and password are both checked before the result is looked at.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Longest `Authorization` value looked at; real ones are far shorter.
const MAX_HEADER: usize = 4096;

/// The credentials a group of routes requires.
#[derive(Clone)]
pub struct BasicAuth {
    inner: Arc<Inner>,
}

struct Inner {
    user: [u8; 32],
    pass: [u8; 32],
    challenge: HeaderValue,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth").finish_non_exhaustive()
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Equality of two digests without an early exit (the crate's one constant-time comparison).
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    crate::control::auth::constant_time_eq(a, b)
}

impl BasicAuth {
    /// `realm` is shown by browsers in their login prompt; quotes and backslashes are dropped from
    /// it so the challenge header stays well-formed.
    pub fn new(realm: &str, user: &str, pass: &str) -> Self {
        let realm: String = realm
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
            .collect();
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"rill\""));
        BasicAuth {
            inner: Arc::new(Inner {
                user: digest(user.as_bytes()),
                pass: digest(pass.as_bytes()),
                challenge,
            }),
        }
    }

    /// Whether an `Authorization` header value carries the right credentials.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, pass)) = authorization.and_then(decode) else {
            return false;
        };
        let user_ok = ct_eq(&digest(&user), &self.inner.user);
        let pass_ok = ct_eq(&digest(&pass), &self.inner.pass);
        user_ok & pass_ok
    }

    /// The 401 answer, with the challenge that makes browsers and clients ask for a login.
    pub fn challenge(&self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, self.inner.challenge.clone())],
            "unauthorized\n",
        )
            .into_response()
    }
}

/// Splits `Basic base64(user:pass)` into user and password (bytes; RFC 7617 allows any charset).
fn decode(value: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let raw = value.as_bytes();
    if raw.len() > MAX_HEADER {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, rest) = decoded.split_at(colon);
    Some((user.to_vec(), rest.get(1..)?.to_vec()))
}

/// The middleware: passes the request on with the right credentials, else answers 401.
pub async fn require(State(auth): State<BasicAuth>, req: Request, next: Next) -> Response {
    if auth.check(req.headers().get(header::AUTHORIZATION)) {
        next.run(req).await
    } else {
        auth.challenge()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user_pass: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(user_pass);
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    #[test]
    fn accepts_only_the_right_pair() {
        let a = BasicAuth::new("rill", "admin", "s3cr:et");
        assert!(
            a.check(Some(&header("admin:s3cr:et"))),
            "colons in the password"
        );
        assert!(!a.check(Some(&header("admin:s3cr:eT"))));
        assert!(!a.check(Some(&header("admin:s3cr:et "))));
        assert!(!a.check(Some(&header("admin:"))));
        assert!(!a.check(Some(&header("Admin:s3cr:et"))));
        assert!(!a.check(Some(&header("admins3cr:et"))));
        assert!(!a.check(Some(&header(""))));
        assert!(!a.check(None));
    }

    #[test]
    fn parses_scheme_case_insensitively_and_rejects_junk() {
        let a = BasicAuth::new("rill", "u", "p");
        let token = base64::engine::general_purpose::STANDARD.encode("u:p");
        for ok in [format!("basic {token}"), format!("BASIC  {token} ")] {
            assert!(a.check(Some(&HeaderValue::from_str(&ok).unwrap())), "{ok}");
        }
        for bad in [
            format!("Bearer {token}"),
            format!("Basic{token}"),
            "Basic !!!not-base64".to_owned(),
            "Basic".to_owned(),
            token.clone(),
        ] {
            assert!(
                !a.check(Some(&HeaderValue::from_str(&bad).unwrap())),
                "{bad}"
            );
        }
        let long = HeaderValue::from_str(&format!("Basic {}", "A".repeat(MAX_HEADER))).unwrap();
        assert!(!a.check(Some(&long)));
        // Non-UTF-8 header bytes are refused, not a panic.
        let binary = HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap();
        assert!(!a.check(Some(&binary)));
    }

    #[test]
    fn challenge_names_the_realm() {
        let r = BasicAuth::new("rill", "u", "p").challenge();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"rill\""
        );
        let r = BasicAuth::new("a\"b\\c", "u", "p").challenge();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"abc\"");
    }

    #[test]
    fn ct_eq_compares_every_byte() {
        let a = digest(b"x");
        assert!(ct_eq(&a, &a.clone()));
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 1;
            assert!(!ct_eq(&a, &b), "byte {i}");
        }
    }

    #[test]
    fn user_and_password_are_both_compared_as_digests() {
        // A right user with a wrong password and the reverse both fail, whatever the lengths:
        // the comparison is of fixed-size digests, so a length never shows.
        let a = BasicAuth::new("rill", "admin", "pw");
        assert!(!a.check(Some(&header("admin:pw-but-longer"))));
        assert!(!a.check(Some(&header("x:pw"))));
        assert!(!a.check(Some(&header(&format!("admin:{}", "p".repeat(1000))))));
        assert!(a.check(Some(&header("admin:pw"))));
    }
}
