//! Relay sources: pulling live streams from other servers (RTSP cameras) into Rill frames.
pub mod rtsp;
pub mod rtsp_frames;
