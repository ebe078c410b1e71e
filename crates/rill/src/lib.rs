//! Rill, a live-streaming media server: RTMP ingest, RTMP/HTTP-FLV/WS-FLV delivery with a GOP cache.
//!
//! Embedding:
//! ```no_run
//! # async fn run() -> Result<(), rill::Error> {
//! let server = rill::Server::builder(rill::Config::default()).start().await?;
//! println!("RTMP on {}, HTTP on {}", server.rtmp_addr(), server.http_addr());
//! server.wait().await;
//! # Ok(()) }
//! ```

pub mod client;
pub mod config;
pub mod control;
pub mod fdlimit;
mod http;
pub mod hub;
mod io;
pub mod outputs;
pub mod relay;
mod rtmp;
mod server;
pub mod tls;

pub use config::Config;
pub use control::hooks::{Event, EventKind, Rejection};
pub use server::{Context, Error, Server, ServerBuilder, ServerHandle};
