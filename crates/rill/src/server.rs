//! Server start-up, the shared [`Context`], and the [`ServerHandle`] an embedding program holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::path::Path;

use crate::config::Config;
use crate::control::auth::SignPolicy;
use crate::control::hooks::{handler, Event, EventKind, HandlerSet, Hooks, Rejection};
use crate::control::sessions::Sessions;
use crate::hub::{Hub, HubConfig, StreamLimits};
use crate::tls::ReloadingCert;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// What every task of the server shares.
#[derive(Debug)]
pub struct Context {
    pub config: Config,
    pub hub: Arc<Hub>,
    pub sessions: Arc<Sessions>,
    pub hooks: Arc<Hooks>,
    pub sign: SignPolicy,
    pub outputs: crate::outputs::Outputs,
    pub recordings: crate::outputs::recording::Recordings,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    pub relays: crate::relay::Relays,
    /// The RTMP listener's address (what the relays' local URLs name, and what a relay must not
    /// come back to).
    pub rtmp_addr: SocketAddr,
    /// Open RTMP and RTMPS connections per client address (`rtmp.max_connections_per_ip`).
    pub rtmp_per_ip: crate::control::limits::PerIp,
    /// Open HTTP and HTTPS connections per client address (`http.max_connections_per_ip`).
    pub http_per_ip: crate::control::limits::PerIp,
}

/// Entry point of the library.
pub struct Server;

impl Server {
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            handlers: HandlerSet::default(),
        }
    }
}

/// Configures and starts a server.
pub struct ServerBuilder {
    config: Config,
    handlers: HandlerSet,
}

impl ServerBuilder {
    /// Registers an async handler for `kind`. For `pre*` events an `Err` refuses the session (with
    /// the protocol's own refusal); for the others the result is ignored. Handlers run in their own
    /// task with `hooks.timeout_ms`: one that panics or hangs refuses the session, nothing more.
    pub fn on<F, Fut>(mut self, kind: EventKind, f: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), Rejection>> + Send + 'static,
    {
        self.handlers.add(kind, handler(f));
        self
    }

    /// Shorthand for `on(EventKind::PreConnect, f)`.
    pub fn on_pre_connect<F, Fut>(self, f: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), Rejection>> + Send + 'static,
    {
        self.on(EventKind::PreConnect, f)
    }

    /// Shorthand for `on(EventKind::PrePublish, f)`.
    pub fn on_pre_publish<F, Fut>(self, f: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), Rejection>> + Send + 'static,
    {
        self.on(EventKind::PrePublish, f)
    }

    /// Shorthand for `on(EventKind::PrePlay, f)`.
    pub fn on_pre_play<F, Fut>(self, f: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), Rejection>> + Send + 'static,
    {
        self.on(EventKind::PrePlay, f)
    }

    /// Validates the configuration, binds the listeners and starts serving.
    pub async fn start(self) -> Result<ServerHandle, Error> {
        let config = self.config;
        config.validate("configuration")?;
        let r = &config.rtmp;
        let hub = Hub::new(HubConfig {
            limits: StreamLimits {
                gop_cache: r.gop_cache,
                gop_max_bytes: r.gop_cache_max_bytes,
                gop_max_frames: r.gop_cache_max_frames,
                queue: r.viewer_queue,
                chunk_size: r.chunk_size,
                batching: config.delivery.batching(),
            },
            publisher_idle_timeout: Duration::from_secs(r.publisher_idle_timeout),
        });
        let rtmp_listener = bind("RTMP", &r.host, r.port).await?;
        let http_listener = bind("HTTP", &config.http.host, config.http.port).await?;
        // TLS listeners: certificates are loaded (and checked) before anything starts.
        let https = match config.https_files() {
            Some((cert, key)) => {
                let certs = ReloadingCert::load(Path::new(cert), Path::new(key))?;
                let listener = bind("HTTPS", &config.https.host, config.https.port).await?;
                Some((certs, listener))
            }
            None => None,
        };
        let rtmps = match config.rtmps_files() {
            Some((cert, key)) => {
                let certs = ReloadingCert::load(Path::new(cert), Path::new(key))?;
                let listener = bind("RTMPS", &config.rtmps.host, config.rtmps.port).await?;
                Some((certs, listener))
            }
            None => None,
        };
        let https_addr = https
            .as_ref()
            .map(|(_, l)| local_addr("HTTPS", l))
            .transpose()?;
        let rtmps_addr = rtmps
            .as_ref()
            .map(|(_, l)| local_addr("RTMPS", l))
            .transpose()?;
        let rtmp_addr = local_addr("RTMP", &rtmp_listener)?;
        let http_addr = local_addr("HTTP", &http_listener)?;
        let hooks = Hooks::new(self.handlers, &config.hooks);
        let sign = SignPolicy::new(&config.auth);
        let shutdown = CancellationToken::new();
        let rtmp_per_ip = crate::control::limits::PerIp::new(config.rtmp.max_connections_per_ip);
        let http_per_ip = crate::control::limits::PerIp::new(config.http.max_connections_per_ip);
        let ctx = Arc::new(Context {
            config,
            hub,
            sessions: Arc::new(Sessions::new(shutdown.clone())),
            hooks,
            sign,
            outputs: crate::outputs::Outputs::default(),
            recordings: crate::outputs::recording::Recordings::default(),
            shutdown,
            tasks: TaskTracker::new(),
            relays: crate::relay::Relays::default(),
            rtmp_addr,
            rtmp_per_ip,
            http_per_ip,
        });
        // Recordings a crash interrupted are playable fragmented MP4s: give them their names.
        let mediaroot = std::path::PathBuf::from(&ctx.config.http.mediaroot);
        if mediaroot.is_dir() {
            tokio::task::spawn_blocking(move || {
                for path in crate::outputs::recorder::recover(&mediaroot) {
                    tracing::warn!(file = %path.display(), "recovered an interrupted recording");
                }
            });
        }
        ctx.tasks
            .spawn(crate::rtmp::serve(rtmp_listener, ctx.clone(), None));
        ctx.tasks
            .spawn(crate::http::serve(http_listener, ctx.clone()));
        crate::relay::Relays::start(&ctx);
        let mut reloaders = Vec::new();
        if let Some((certs, listener)) = https {
            let acceptor = certs.acceptor(&[b"h2", b"http/1.1"]);
            ctx.tasks
                .spawn(crate::http::tls::serve(listener, ctx.clone(), acceptor));
            certs.spawn_reloader("https", ctx.shutdown.clone());
            reloaders.push(certs);
        }
        if let Some((certs, listener)) = rtmps {
            let acceptor = certs.acceptor(&[]);
            ctx.tasks
                .spawn(crate::rtmp::serve(listener, ctx.clone(), Some(acceptor)));
            certs.spawn_reloader("rtmps", ctx.shutdown.clone());
            reloaders.push(certs);
        }
        tracing::info!(
            rtmp = %rtmp_addr,
            http = %http_addr,
            https = ?https_addr,
            rtmps = ?rtmps_addr,
            "rill {} listening",
            env!("CARGO_PKG_VERSION")
        );
        Ok(ServerHandle {
            rtmp_addr,
            http_addr,
            https_addr,
            rtmps_addr,
            certs: reloaders,
            ctx,
        })
    }
}

async fn bind(what: &'static str, host: &str, port: u16) -> Result<TcpListener, Error> {
    let addr = format!("{host}:{port}");
    TcpListener::bind(&addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

fn local_addr(what: &'static str, l: &TcpListener) -> Result<SocketAddr, Error> {
    l.local_addr().map_err(|source| Error::Bind {
        what,
        addr: "?".into(),
        source,
    })
}

/// A running server.
pub struct ServerHandle {
    rtmp_addr: SocketAddr,
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    rtmps_addr: Option<SocketAddr>,
    certs: Vec<Arc<ReloadingCert>>,
    ctx: Arc<Context>,
}

impl ServerHandle {
    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The HTTPS/WSS address, when `[https]` is configured.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The RTMPS address, when `[rtmps]` is configured.
    pub fn rtmps_addr(&self) -> Option<SocketAddr> {
        self.rtmps_addr
    }

    /// Reloads every TLS certificate from its files now (as SIGHUP does); new connections use it.
    pub fn reload_certificates(&self) -> Result<(), crate::tls::TlsError> {
        self.certs.iter().try_for_each(|c| c.reload())
    }

    /// The stream hub, for inspection.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.ctx.hub
    }

    /// The registry of live sessions.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.ctx.sessions
    }

    /// Ends session `id` (any protocol) at once; false if there is no such session.
    pub fn kick(&self, id: u64) -> bool {
        self.ctx.sessions.kick(id)
    }

    /// True while `app/stream` has a publisher.
    pub fn is_publishing(&self, app: &str, stream: &str) -> bool {
        self.ctx
            .hub
            .stream(app, stream)
            .is_some_and(|s| s.is_live())
    }

    /// Stops accepting, closes every session, and waits (up to 10 s) for the tasks to end.
    pub async fn shutdown(self) {
        self.ctx.shutdown.cancel();
        self.ctx.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.ctx.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not end within 10 s of shutdown");
        }
    }

    /// Waits until the server is shut down.
    pub async fn wait(&self) {
        self.ctx.shutdown.cancelled().await;
    }
}
