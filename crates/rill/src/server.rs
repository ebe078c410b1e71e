//! Server start-up and handle.

use std::net::SocketAddr;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: String, source: std::io::Error },
}

pub struct Server;

impl Server {
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder { config }
    }
}

pub struct ServerBuilder {
    config: Config,
}

impl ServerBuilder {
    /// Binds the listeners and starts serving.
    pub async fn start(self) -> Result<ServerHandle, Error> {
        let _ = self.config;
        todo!()
    }
}

/// A running server.
pub struct ServerHandle {
    rtmp_addr: SocketAddr,
    http_addr: SocketAddr,
}

impl ServerHandle {
    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp_addr
    }
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }
    /// True while `app/stream` has a publisher.
    pub fn is_publishing(&self, app: &str, stream: &str) -> bool {
        let _ = (app, stream);
        todo!()
    }
    /// Stops accepting, closes every session, and waits for the tasks to end.
    pub async fn shutdown(self) {
        todo!()
    }
    /// Waits until the server stops (after [`ServerHandle::shutdown`] or a fatal error).
    pub async fn wait(&self) {
        todo!()
    }
}
