//! Relay sources: files (native FLV, or anything ffmpeg reads) and the supervised child processes.
pub mod child;
pub mod file;
