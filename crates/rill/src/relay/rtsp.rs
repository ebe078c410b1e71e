//! STUB
pub enum Transport {
    Tcp,
    Udp,
}
#[derive(Debug, thiserror::Error)]
#[error("rtsp not built")]
pub struct RtspError;
pub struct RtspSource;
impl RtspSource {
    pub async fn connect(_url: &str, _t: Transport) -> Result<RtspSource, RtspError> {
        Err(RtspError)
    }
    pub async fn next_frame(&mut self) -> Result<Option<rill_media::Frame>, RtspError> {
        Err(RtspError)
    }
}
