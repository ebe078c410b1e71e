//! URL signing, compatible with Node-Media-Server: `?sign=EXPIRES-HASH` where
//! `HASH = hex(md5("/app/stream-EXPIRES-SECRET"))` and EXPIRES is a Unix time in seconds.
//!
//! Several secrets may be valid at once (key rotation); every one is compared, in constant time,
//! so timing does not reveal which part of a signature was right.

use md5::{Digest, Md5};

use crate::config::AuthConfig;

/// Why a signature was refused. The messages never contain the secret or the expected hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("missing sign parameter")]
    Missing,
    #[error("malformed sign parameter")]
    Malformed,
    #[error("signature expired")]
    Expired,
    #[error("signature does not match")]
    Mismatch,
}

/// The hex hash of a signature for `path` (`/app/stream`) valid until `expires`.
pub fn sign_hash(path: &str, expires: u64, secret: &str) -> String {
    let digest = Md5::digest(format!("{path}-{expires}-{secret}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of parameter `key` in a query string (`a=1&b=2`), if present.
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// Checks the `sign` parameter of `query` for `path` against every secret.
pub fn check_sign(
    query: &str,
    path: &str,
    secrets: &[&str],
    now_unix: u64,
) -> Result<(), SignError> {
    let sign = query_param(query, "sign").ok_or(SignError::Missing)?;
    let (expires, hash) = sign.split_once('-').ok_or(SignError::Malformed)?;
    let expires: u64 = expires.parse().map_err(|_| SignError::Malformed)?;
    if hash.len() != 32 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SignError::Malformed);
    }
    if expires < now_unix {
        return Err(SignError::Expired);
    }
    let given = hash.to_ascii_lowercase();
    let mut ok = false;
    for secret in secrets {
        ok |= constant_time_eq(
            given.as_bytes(),
            sign_hash(path, expires, secret).as_bytes(),
        );
    }
    if ok {
        Ok(())
    } else {
        Err(SignError::Mismatch)
    }
}

/// Equality that takes the same time wherever the first difference is (only the lengths, which
/// are public here, may show). Every secret comparison in Rill goes through this: URL signatures,
/// the API's Basic auth ([`crate::http::basic_auth`]) and webhook signatures
/// ([`super::webhooks::verify`]).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        // `black_box` keeps the optimiser from proving that the loop may stop at the first
        // difference and turning it into an early exit.
        diff = std::hint::black_box(diff | (x ^ y));
    }
    std::hint::black_box(diff) == 0
}

/// What is being signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Play,
}

/// The configured signing policy.
#[derive(Debug, Clone)]
pub struct SignPolicy {
    publish: bool,
    play: bool,
    secrets: Vec<String>,
}

impl SignPolicy {
    pub fn new(config: &AuthConfig) -> Self {
        let mut secrets: Vec<String> = Vec::new();
        for s in std::iter::once(&config.secret).chain(config.secrets.iter()) {
            if !s.is_empty() {
                secrets.push(s.clone());
            }
        }
        SignPolicy {
            publish: config.publish,
            play: config.play,
            secrets,
        }
    }

    /// Checks `action` on `/app/stream`; the first query that has a `sign` is used (the stream's
    /// own query, then the connect's).
    pub fn check(
        &self,
        action: Action,
        app: &str,
        stream: &str,
        queries: &[&str],
    ) -> Result<(), SignError> {
        let required = match action {
            Action::Publish => self.publish,
            Action::Play => self.play,
        };
        if !required {
            return Ok(());
        }
        let query = queries
            .iter()
            .copied()
            .find(|q| query_param(q, "sign").is_some())
            .unwrap_or("");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        check_sign(query, &format!("/{app}/{stream}"), &secrets, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_media_server_worked_example() {
        assert_eq!(
            sign_hash("/live/stream", 1503458721, "nodemedia2017privatekey"),
            "80c1d1ad2e0c2ab63eebb50eed64201a"
        );
        let q = "sign=1503458721-80c1d1ad2e0c2ab63eebb50eed64201a";
        assert_eq!(
            check_sign(q, "/live/stream", &["nodemedia2017privatekey"], 1503458000),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let secret = "s3cret";
        let good = format!(
            "sign=2000000000-{}",
            sign_hash("/live/a", 2_000_000_000, secret)
        );
        assert_eq!(
            check_sign(&good, "/live/a", &[secret], 1_900_000_000),
            Ok(())
        );
        assert_eq!(
            check_sign(&good, "/live/a", &[secret], 2_000_000_001),
            Err(SignError::Expired)
        );
        assert_eq!(
            check_sign(&good, "/live/b", &[secret], 1_900_000_000),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            check_sign(&good, "/live/a", &["other"], 1_900_000_000),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            check_sign("", "/live/a", &[secret], 0),
            Err(SignError::Missing)
        );
        assert_eq!(
            check_sign("token=1", "/live/a", &[secret], 0),
            Err(SignError::Missing)
        );
        for bad in [
            "sign=",
            "sign=abc",
            "sign=x-0123456789abcdef0123456789abcdef",
            "sign=1-xyz",
            "sign=1-0123",
        ] {
            assert_eq!(
                check_sign(bad, "/live/a", &[secret], 0),
                Err(SignError::Malformed),
                "{bad}"
            );
        }
        let upper = good.to_ascii_uppercase().replace("SIGN=", "sign=");
        assert_eq!(
            check_sign(&upper, "/live/a", &[secret], 0),
            Ok(()),
            "hex case does not matter"
        );
    }

    #[test]
    fn rotation_accepts_old_and_new_secrets() {
        let policy = SignPolicy::new(&AuthConfig {
            publish: true,
            secret: "new".into(),
            secrets: vec!["old".into()],
            ..AuthConfig::default()
        });
        for secret in ["new", "old"] {
            let q = format!(
                "sign=4000000000-{}",
                sign_hash("/live/a", 4_000_000_000, secret)
            );
            assert_eq!(
                policy.check(Action::Publish, "live", "a", &["", &q]),
                Ok(()),
                "{secret}"
            );
        }
        let q = format!(
            "sign=4000000000-{}",
            sign_hash("/live/a", 4_000_000_000, "retired")
        );
        assert_eq!(
            policy.check(Action::Publish, "live", "a", &[&q]),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            policy.check(Action::Play, "live", "a", &[]),
            Ok(()),
            "play not required"
        );
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
        // A difference anywhere, in any bit, is seen.
        let a = [0x5au8; 32];
        for i in 0..a.len() {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!constant_time_eq(&a, &b), "byte {i} bit {bit}");
            }
        }
        // Lengths that differ by a multiple of 256 are still unequal (no truncation).
        assert!(!constant_time_eq(&[0u8; 256], &[]));
        assert!(!constant_time_eq(&[0u8; 300], &[0u8; 44]));
    }

    #[test]
    fn a_hash_wrong_in_its_first_or_last_digit_is_a_mismatch() {
        let good = sign_hash("/live/a", 4_000_000_000, "s");
        for i in [0, 31] {
            let mut bad = good.clone().into_bytes();
            bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
            let q = format!("sign=4000000000-{}", String::from_utf8(bad).unwrap());
            assert_eq!(
                check_sign(&q, "/live/a", &["other", "s"], 0),
                Err(SignError::Mismatch),
                "digit {i}"
            );
        }
        let q = format!("sign=4000000000-{good}");
        assert_eq!(check_sign(&q, "/live/a", &["s", "other"], 0), Ok(()));
        assert_eq!(check_sign(&q, "/live/a", &["other", "s"], 0), Ok(()));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("a=1&sign=x-y&b", "sign"), Some("x-y"));
        assert_eq!(query_param("a=1&b", "b"), Some(""));
        assert_eq!(query_param("", "sign"), None);
    }
}
