//! RTSP pull source: connects to an RTSP server (typically an IP camera), plays its H.264/H.265
//! video and AAC audio, and yields Rill [`Frame`]s with FLV tag bodies.
//!
//! The RTSP/RTP work (DESCRIBE/SETUP/PLAY, authentication, depacketisation, keepalives) is
//! retina's; the conversion to FLV bodies and the timestamp mapping live in the sans-IO
//! [`super::rtsp_frames`] module. This file only wires the two and keeps secrets out of errors:
//! the URL's password goes to retina as credentials and never appears in a message.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{
    Credentials, Demuxed, InitialTimestampPolicy, PlayOptions, Session, SessionOptions,
    SetupOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use rill_media::Frame;
use url::Url;

use super::rtsp_frames::{ConvertError, Converter, VideoCodec};

/// How the RTP packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Interleaved on the RTSP TCP connection: works through NAT and firewalls, no loss.
    #[default]
    Tcp,
    /// Separate UDP ports (retina has no reorder buffer: meant for a LAN).
    Udp,
}

/// Why connecting to or reading from an RTSP source failed. Messages name the URL without its
/// password.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    #[error("invalid RTSP URL: {0}")]
    InvalidUrl(String),
    #[error("RTSP connect/DESCRIBE to {url} failed: {message}")]
    Describe { url: String, message: String },
    #[error("RTSP server {url} offers no H.264, H.265 or AAC stream (offered: {offered})")]
    NoUsableStream { url: String, offered: String },
    #[error("RTSP SETUP of the {media} stream of {url} failed: {message}")]
    Setup {
        url: String,
        media: String,
        message: String,
    },
    #[error("RTSP PLAY of {url} failed: {message}")]
    Play { url: String, message: String },
    #[error("RTSP session with {url} failed: {message}")]
    Session { url: String, message: String },
    #[error("RTSP server {url} did not answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("RTSP stream from {url} cannot be relayed: {source}")]
    Convert {
        url: String,
        #[source]
        source: ConvertError,
    },
}

/// Bound on each of DESCRIBE, SETUP and PLAY: a camera that accepts the connection and then
/// says nothing must not hang the relay.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// No media (nor RTCP) for this long ends the session with an error; cameras send 25 pictures a
/// second, so this only fires on a stalled peer, which retina alone would wait on forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// A playing RTSP session and its conversion state.
pub struct RtspSource {
    /// The URL without userinfo password, for messages.
    url: String,
    /// Scrubbed from retina's messages (they could echo a header), if non-empty.
    password: String,
    session: Pin<Box<Demuxed>>,
    video: Option<usize>,
    audio: Option<usize>,
    video_params_known: bool,
    audio_params_known: bool,
    converter: Converter,
    /// Frames produced but not yet returned; one access unit yields a handful at most (plus the
    /// held pictures of a reordered stream's start, bounded by the reorder depth).
    ready: VecDeque<Frame>,
}

impl std::fmt::Debug for RtspSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSource")
            .field("url", &self.url)
            .field("video", &self.video)
            .field("audio", &self.audio)
            .finish_non_exhaustive()
    }
}

impl RtspSource {
    /// DESCRIBE/SETUP/PLAY; TCP interleaved by default, UDP when asked. Basic/digest credentials
    /// from the URL userinfo (rtsp://user:pass@host/...).
    pub async fn connect(url: &str, transport: Transport) -> Result<RtspSource, RtspError> {
        let (url, creds, shown) = split_credentials(url)?;
        let password = creds
            .as_ref()
            .map(|c| c.password.clone())
            .unwrap_or_default();
        let scrub = |e: &dyn std::fmt::Display| scrub_secret(&e.to_string(), &password);
        let options = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("Rill/{}", env!("CARGO_PKG_VERSION")));

        let mut session = tokio::time::timeout(REQUEST_TIMEOUT, Session::describe(url, options))
            .await
            .map_err(|_| RtspError::Timeout {
                url: shown.clone(),
                secs: REQUEST_TIMEOUT.as_secs(),
            })?
            .map_err(|e| RtspError::Describe {
                url: shown.clone(),
                message: scrub(&e),
            })?;

        let mut video = None;
        let mut audio = None;
        let mut offered = Vec::new();
        for (i, s) in session.streams().iter().enumerate() {
            let encoding = s.encoding_name().to_ascii_lowercase();
            offered.push(format!("{}/{}", s.media(), encoding));
            match (s.media(), encoding.as_str()) {
                ("video", "h264" | "h265") if video.is_none() => video = Some(i),
                ("audio", "mpeg4-generic") if audio.is_none() => audio = Some(i),
                ("audio", _) if audio.is_none() => tracing::warn!(
                    url = %shown,
                    "relay/rtsp: skipping the {encoding} audio stream (only AAC is relayed)"
                ),
                _ => {
                    tracing::debug!(url = %shown, "relay/rtsp: ignoring the {} {encoding} stream", s.media())
                }
            }
        }
        if video.is_none() && audio.is_none() {
            return Err(RtspError::NoUsableStream {
                url: shown,
                offered: offered.join(", "),
            });
        }

        let transport = match transport {
            Transport::Tcp => retina::client::Transport::Tcp(Default::default()),
            Transport::Udp => retina::client::Transport::Udp(Default::default()),
        };
        for i in [video, audio].into_iter().flatten() {
            // MP4 framing: AVCC/HVCC length-prefixed NALUs with the configuration record as extra
            // data and no in-band parameter sets, raw AAC with the AudioSpecificConfig: exactly
            // the FLV bodies' layout.
            let setup = SetupOptions::default()
                .transport(transport.clone())
                .frame_format(FrameFormat::MP4);
            tokio::time::timeout(REQUEST_TIMEOUT, session.setup(i, setup))
                .await
                .map_err(|_| RtspError::Timeout {
                    url: shown.clone(),
                    secs: REQUEST_TIMEOUT.as_secs(),
                })?
                .map_err(|e| RtspError::Setup {
                    url: shown.clone(),
                    media: offered.get(i).cloned().unwrap_or_default(),
                    message: scrub(&e),
                })?;
        }

        let mut source = RtspSource {
            url: shown.clone(),
            password: password.clone(),
            // PLAY, then retina's demuxer: the stream of depacketised frames.
            session: Box::pin(
                tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    // Permissive: use RTP-Info's rtptime to put both streams on one clock when the
                    // server gives it for all of them, else start each at its first packet.
                    session.play(
                        PlayOptions::default()
                            .initial_timestamp(InitialTimestampPolicy::Permissive),
                    ),
                )
                .await
                .map_err(|_| RtspError::Timeout {
                    url: shown.clone(),
                    secs: REQUEST_TIMEOUT.as_secs(),
                })?
                .map_err(|e| RtspError::Play {
                    url: shown.clone(),
                    message: scrub(&e),
                })?
                .demuxed()
                .map_err(|e| RtspError::Play {
                    url: shown.clone(),
                    message: scrub(&e),
                })?,
            ),
            video,
            audio,
            video_params_known: false,
            audio_params_known: false,
            converter: Converter::new(),
            ready: VecDeque::new(),
        };
        // Parameters from the SDP (sprop-parameter-sets, config=), when the server gave them:
        // the sequence headers then precede the first frame even if it brings none in-band.
        source.update_video_params()?;
        source.update_audio_params()?;
        Ok(source)
    }

    /// Next frame; Ok(None) when the server ended the session.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, RtspError> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            let item = match tokio::time::timeout(IDLE_TIMEOUT, self.session.next()).await {
                Err(_) => {
                    return Err(RtspError::Timeout {
                        url: self.url.clone(),
                        secs: IDLE_TIMEOUT.as_secs(),
                    })
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(RtspError::Session {
                        url: self.url.clone(),
                        message: scrub_secret(&e.to_string(), &self.password),
                    })
                }
                Ok(Some(Ok(item))) => item,
            };
            let mut out = Vec::new();
            match item {
                CodecItem::VideoFrame(v) if Some(v.stream_id()) == self.video => {
                    if v.has_new_parameters() || !self.video_params_known {
                        self.update_video_params()?;
                    }
                    if !self.video_params_known {
                        // retina promises parameters by the first frame; without them the frame
                        // cannot be described, so it is dropped rather than sent headerless.
                        tracing::debug!(url = %self.url, "relay/rtsp: video frame before parameters");
                        continue;
                    }
                    if v.loss() > 0 {
                        tracing::debug!(url = %self.url, lost = v.loss(), "relay/rtsp: RTP loss before a video frame");
                    }
                    let ts = v.timestamp();
                    let result = self.converter.push_video(
                        ts.elapsed(),
                        v.is_random_access_point(),
                        v.data(),
                        &mut out,
                    );
                    self.convert(result)?;
                }
                CodecItem::AudioFrame(a) if Some(a.stream_id()) == self.audio => {
                    if !self.audio_params_known {
                        self.update_audio_params()?;
                    }
                    if !self.audio_params_known {
                        continue;
                    }
                    let result =
                        self.converter
                            .push_aac(a.timestamp().elapsed(), a.data(), &mut out);
                    self.convert(result)?;
                }
                // RTCP, ONVIF metadata, streams we did not set up.
                _ => continue,
            }
            self.ready.extend(out);
        }
    }

    fn convert(&self, result: Result<(), ConvertError>) -> Result<(), RtspError> {
        result.map_err(|source| RtspError::Convert {
            url: self.url.clone(),
            source,
        })
    }

    fn update_video_params(&mut self) -> Result<(), RtspError> {
        let Some(i) = self.video else {
            return Ok(());
        };
        let Some(stream) = self.session.streams().get(i) else {
            return Ok(());
        };
        let clock_rate = stream.clock_rate_hz();
        let Some(ParametersRef::Video(params)) = stream.parameters() else {
            return Ok(());
        };
        let (codec, sps) = match params.codec_params() {
            VideoParametersCodec::H264 { sps, .. } => (VideoCodec::H264, sps.clone()),
            VideoParametersCodec::H265 { sps, .. } => (VideoCodec::H265, sps.clone()),
            _ => return Ok(()),
        };
        let record = bytes::Bytes::copy_from_slice(params.extra_data());
        let result = self.converter.set_video_parameters(
            codec,
            clock_rate,
            params.frame_rate(),
            &record,
            &sps,
        );
        self.convert(result)?;
        self.video_params_known = true;
        Ok(())
    }

    fn update_audio_params(&mut self) -> Result<(), RtspError> {
        let Some(i) = self.audio else {
            return Ok(());
        };
        let Some(stream) = self.session.streams().get(i) else {
            return Ok(());
        };
        let Some(ParametersRef::Audio(params)) = stream.parameters() else {
            return Ok(());
        };
        let config = params.extra_data().to_vec();
        let result = self.converter.set_aac_config(params.clock_rate(), &config);
        self.convert(result)?;
        self.audio_params_known = true;
        Ok(())
    }
}

/// Parses the URL and takes its userinfo out: the URL retina gets (no userinfo: retina would
/// otherwise put it in its own messages), the credentials, and the URL to show in messages
/// (with the user name but never the password).
fn split_credentials(raw: &str) -> Result<(Url, Option<Credentials>, String), RtspError> {
    let mut url = Url::parse(raw).map_err(|e| {
        // The parser's message never echoes the input, so it is safe to show.
        RtspError::InvalidUrl(e.to_string())
    })?;
    if url.scheme() != "rtsp" {
        return Err(RtspError::InvalidUrl(format!(
            "scheme {:?} is not rtsp",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(RtspError::InvalidUrl("no host".into()));
    }
    let username = percent_decode(url.username());
    let password = url.password().map(percent_decode).unwrap_or_default();
    let creds = (!username.is_empty() || !password.is_empty()).then(|| Credentials {
        username: username.clone(),
        password,
    });
    // Clearing userinfo cannot fail on an rtsp URL with a host (checked above).
    let _ = url.set_password(None);
    let _ = url.set_username("");
    let shown = if username.is_empty() {
        url.to_string()
    } else {
        let mut shown = url.clone();
        let _ = shown.set_username(&username);
        shown.to_string()
    };
    Ok((url, creds, shown))
}

/// Decodes `%XX` escapes (userinfo is percent-encoded in URLs); invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces every occurrence of the password in a message from below us.
fn scrub_secret(message: &str, password: &str) -> String {
    if password.is_empty() {
        message.to_owned()
    } else {
        message.replace(password, "***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        let (url, creds, shown) =
            split_credentials("rtsp://admin:s%40cret@127.0.0.1:8554/test").unwrap();
        assert_eq!(url.as_str(), "rtsp://127.0.0.1:8554/test");
        let creds = creds.unwrap();
        assert_eq!(creds.username, "admin");
        assert_eq!(creds.password, "s@cret");
        assert_eq!(shown, "rtsp://admin@127.0.0.1:8554/test");
        assert!(!shown.contains("cret"));

        let (url, creds, shown) = split_credentials("rtsp://cam.local/stream1").unwrap();
        assert!(creds.is_none());
        assert_eq!(url.as_str(), shown);
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for bad in [
            "http://u:hunter2@host/x",
            "rtsp://u:hunter2@/x",
            "not a url hunter2",
        ] {
            let err = split_credentials(bad).unwrap_err();
            assert!(matches!(err, RtspError::InvalidUrl(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
    }

    #[test]
    fn secrets_are_scrubbed() {
        assert_eq!(
            scrub_secret("auth pw=hunter2 failed", "hunter2"),
            "auth pw=*** failed"
        );
        assert_eq!(scrub_secret("no secret", ""), "no secret");
    }

    #[tokio::test]
    async fn connect_errors_name_the_url_without_the_password() {
        // A port nothing listens on (bound then dropped): the connect fails fast.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let url = format!("rtsp://user:hunter2@127.0.0.1:{port}/test");
        let err = RtspSource::connect(&url, Transport::Tcp).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, RtspError::Describe { .. }), "{msg}");
        assert!(
            msg.contains(&format!("rtsp://user@127.0.0.1:{port}/test")),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
