//! Embedding Rill with typed hooks: only stream names on an allow-list may be published, every
//! event is logged, and a publisher that streams longer than a limit is kicked by id.
//!
//! ```sh
//! cargo run --example hooks -- 127.0.0.1:1935 127.0.0.1:8000 cam,ok
//! ffmpeg -re -i in.mp4 -c copy -f flv rtmp://127.0.0.1/live/cam    # accepted
//! ffmpeg -re -i in.mp4 -c copy -f flv rtmp://127.0.0.1/live/other  # refused: Publish.Unauthorized
//! ```
//! Arguments (all optional): RTMP address, HTTP address (port 0 picks a free port), a comma-separated
//! list of stream-name prefixes allowed to publish, and the most seconds one publish may last.
//! The first line printed is `rtmp=ADDR http=ADDR`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rill::{Config, Event, EventKind, Rejection, Server, ServerHandle};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let (rtmp, http) = (arg(0, "127.0.0.1:1935"), arg(1, "127.0.0.1:8000"));
    let allowed: Arc<Vec<String>> = Arc::new(arg(2, "cam").split(',').map(str::to_owned).collect());
    let max_seconds: u64 = arg(3, "3600").parse()?;

    let mut config = Config::default();
    let (rtmp_host, rtmp_port) = rtmp.rsplit_once(':').ok_or("RTMP address is HOST:PORT")?;
    let (http_host, http_port) = http.rsplit_once(':').ok_or("HTTP address is HOST:PORT")?;
    (config.rtmp.host, config.rtmp.port) = (rtmp_host.to_owned(), rtmp_port.parse()?);
    (config.http.host, config.http.port) = (http_host.to_owned(), http_port.parse()?);

    // The handle is needed inside a handler (to kick), but exists only after start.
    let handle: Arc<OnceLock<Arc<ServerHandle>>> = Arc::new(OnceLock::new());
    // Handlers of one event run in the order they were registered; the first refusal wins, so
    // the logger goes first to see refused attempts too.
    let mut builder = Server::builder(config);
    for kind in EventKind::ALL {
        builder = builder.on(kind, |e: Event| async move {
            println!(
                "event {} id={} stream=/{}/{} ip={}",
                e.event.name(),
                e.id,
                e.app,
                e.stream,
                e.ip
            );
            Ok(())
        });
    }
    builder = builder.on_pre_publish(move |e: Event| {
        let allowed = allowed.clone();
        async move {
            if allowed.iter().any(|p| e.stream.starts_with(p.as_str())) {
                Ok(())
            } else {
                Err(Rejection::new(format!(
                    "{} is not on the allow-list",
                    e.stream
                )))
            }
        }
    });
    let h = handle.clone();
    builder = builder.on(EventKind::PostPublish, move |e: Event| {
        let h = h.clone();
        async move {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(max_seconds)).await;
                if let Some(server) = h.get() {
                    if server.kick(e.id) {
                        println!("kicked session {} after {max_seconds} s", e.id);
                    }
                }
            });
            Ok(())
        }
    });
    let server = Arc::new(builder.start().await?);
    println!("rtmp={} http={}", server.rtmp_addr(), server.http_addr());
    let _ = handle.set(server.clone());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
