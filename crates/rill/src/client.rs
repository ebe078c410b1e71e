//! Rill's own RTMP client (async shell over `rill_rtmp::session::client`): plays and publishes.
//! Used by tests, relays and the benchmark.

use rill_media::Frame;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad RTMP URL: {0}")]
    BadUrl(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("refused: {0}")]
    Refused(String),
}

/// An RTMP connection that plays one stream.
pub struct RtmpPlayer {
    _private: (),
}

impl RtmpPlayer {
    /// Connects to `rtmp://host:port/app/stream` and sends play; returns once Play.Start arrives.
    pub async fn connect(url: &str) -> Result<RtmpPlayer, ClientError> {
        let _ = url;
        todo!()
    }
    /// The next media or metadata frame; `Ok(None)` when the server closed the connection.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, ClientError> {
        todo!()
    }
}

/// An RTMP connection that publishes one stream.
pub struct RtmpPublisher {
    _private: (),
}

impl RtmpPublisher {
    /// Connects to `rtmp://host:port/app/stream` and publishes; returns once Publish.Start arrives.
    pub async fn connect(url: &str) -> Result<RtmpPublisher, ClientError> {
        let _ = url;
        todo!()
    }
    /// Sends one frame (metadata frames are sent as `@setDataFrame onMetaData`).
    pub async fn send_frame(&mut self, frame: &Frame) -> Result<(), ClientError> {
        let _ = frame;
        todo!()
    }
    /// Sends FCUnpublish/deleteStream and closes.
    pub async fn close(self) -> Result<(), ClientError> {
        todo!()
    }
}
