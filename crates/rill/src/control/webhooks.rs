//! HTTP webhooks: Rill POSTs each event as JSON to the URLs configured for it. For `pre*` events a
//! non-2xx answer, an error or a timeout refuses the session. With `hooks.secret` set, the body is
//! signed (`X-Rill-Signature: sha256=<hex HMAC-SHA256(secret, body)>`) so the receiver can trust it;
//! [`verify`] checks such a header in constant time, for receivers written in Rust.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;

use super::hooks::{Event, EventKind, Rejection};
use crate::config::HooksConfig;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The configured webhook URLs and the client that calls them.
pub struct Webhooks {
    urls: BTreeMap<EventKind, Vec<String>>,
    secret: Vec<u8>,
    client: HttpClient,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    pub fn new(config: &HooksConfig) -> Self {
        let urls = EventKind::ALL
            .iter()
            .map(|k| (*k, config.urls(*k).to_vec()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let client = Client::builder(TokioExecutor::new()).build_http();
        Webhooks {
            urls,
            secret: config.secret.as_bytes().to_vec(),
            client,
        }
    }

    pub fn has(&self, kind: EventKind) -> bool {
        self.urls.contains_key(&kind)
    }

    /// Calls every URL of the event in turn; the first failure is returned.
    pub async fn call(&self, event: &Event, timeout: Duration) -> Result<(), Rejection> {
        let Some(urls) = self.urls.get(&event.event) else {
            return Ok(());
        };
        let body =
            Bytes::from(serde_json::to_vec(event).map_err(|e| Rejection::new(e.to_string()))?);
        for url in urls {
            let result = tokio::time::timeout(timeout, self.post(url, event, body.clone())).await;
            let outcome = match result {
                Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
                Ok(Ok(status)) => Err(format!("webhook {url} answered {status}")),
                Ok(Err(e)) => Err(format!("webhook {url} failed: {e}")),
                Err(_) => Err(format!("webhook {url} timed out")),
            };
            if let Err(reason) = outcome {
                if !event.event.is_pre() {
                    tracing::warn!(event = event.event.name(), session = event.id, %reason, "webhook");
                }
                return Err(Rejection::new(reason));
            }
        }
        Ok(())
    }

    async fn post(&self, url: &str, event: &Event, body: Bytes) -> Result<u16, String> {
        let mut req = hyper::Request::post(url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("X-Rill-Event", event.event.name());
        if !self.secret.is_empty() {
            req = req.header(
                "X-Rill-Signature",
                format!("sha256={}", sign(&self.secret, &body)),
            );
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        Ok(resp.status().as_u16())
    }
}

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `header` (an `X-Rill-Signature` value, `sha256=<hex>`) is the signature of `body`
/// under `secret`: for webhook receivers written in Rust. The MAC is compared in constant time
/// (by the `hmac` crate's `verify_slice`), so a forger learns nothing from how long a wrong guess
/// took to be refused.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(given) = header.trim().strip_prefix("sha256=").and_then(from_hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Hex (either case) to bytes; `None` for an odd length or a non-hex digit.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_only_the_right_signature() {
        let body = br#"{"event":"prePublish","id":7}"#;
        let good = format!("sha256={}", sign(b"shared", body));
        assert!(verify(b"shared", body, &good));
        assert!(verify(
            b"shared",
            body,
            &good.to_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(!verify(b"other", body, &good), "wrong key");
        assert!(!verify(b"shared", b"{}", &good), "other body");
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert!(!verify(
            b"shared",
            body,
            std::str::from_utf8(&flipped).unwrap()
        ));
        for bad in [
            "",
            "sha256=",
            "sha1=00",
            &good[7..],
            &good[..good.len() - 2],
            "sha256=zz",
            "sha256=abc",
        ] {
            assert!(!verify(b"shared", body, bad), "{bad:?}");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
