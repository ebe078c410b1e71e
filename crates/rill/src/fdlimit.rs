//! The process's open-files limit. A viewer takes one descriptor, two while it is in a fan-out
//! group (the group writes through a duplicate of the socket), and the soft limit that shells and
//! service managers commonly start a process with (1024) would stop a server at a few hundred
//! viewers with "too many open files". Like Go's runtime and nginx's `worker_rlimit_nofile`, the
//! `rill` command raises the soft limit to the hard one at start-up; an embedding program may call
//! [`raise_open_files_limit`] itself.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::Config;

/// Descriptors held besides the connections: listeners, the runtime's, recordings and log files.
const SPARE: u64 = 256;

/// The soft limit before and after [`raise_open_files_limit`]; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub before: Option<u64>,
    pub now: Option<u64>,
}

/// Raises the soft open-files limit to the hard limit.
pub fn raise_open_files_limit() -> std::io::Result<OpenFiles> {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if before == limit.maximum {
        return Ok(OpenFiles {
            before,
            now: before,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )?;
    Ok(OpenFiles {
        before,
        now: getrlimit(Resource::Nofile).current,
    })
}

/// Descriptors needed for `config`'s connection limits to be reachable: two for every RTMP and
/// HTTP connection allowed (a grouped viewer's socket and its duplicate), plus spares.
pub fn descriptors_needed(config: &Config) -> u64 {
    connections(config).saturating_mul(2).saturating_add(SPARE)
}

/// RTMP and HTTP connections `config` allows at once.
fn connections(config: &Config) -> u64 {
    (config.rtmp.max_connections as u64).saturating_add(config.http.max_connections as u64)
}

/// A warning for the log when `soft_limit` cannot hold `config`'s connection limits.
pub fn shortfall(config: &Config, soft_limit: Option<u64>) -> Option<String> {
    let limit = soft_limit?;
    let needed = descriptors_needed(config);
    (limit < needed).then(|| {
        format!(
            "the open-files limit is {limit}: about {} viewers can connect, while \
             rtmp.max_connections + http.max_connections allow {}; raise the hard limit \
             (ulimit -Hn, systemd LimitNOFILE=) to at least {needed}",
            limit.saturating_sub(SPARE) / 2,
            connections(config),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_soft_limit_to_the_hard_one() {
        let limit = getrlimit(Resource::Nofile);
        let Some(hard) = limit.maximum else {
            // Unlimited hard limit: lowering the soft one is still allowed, raising back too.
            return;
        };
        let low = hard.min(512);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(low),
                maximum: Some(hard),
            },
        )
        .expect("lowering the soft limit is always allowed");
        let raised = raise_open_files_limit().expect("raise");
        assert_eq!(raised.before, Some(low));
        assert_eq!(raised.now, Some(hard));
        assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
        // Already at the hard limit: nothing to do.
        let again = raise_open_files_limit().expect("raise again");
        assert_eq!(again.before, again.now);
    }

    #[test]
    fn shortfall_names_the_viewers_the_limit_allows() {
        let config = Config::default();
        assert_eq!(descriptors_needed(&config), 2 * 20_000 + SPARE);
        let text = shortfall(&config, Some(1024)).expect("1024 is short");
        assert!(text.contains("about 384 viewers"), "{text}");
        assert!(text.contains("allow 20000"), "{text}");
        assert!(
            text.contains(&format!("at least {}", 40_000 + SPARE)),
            "{text}"
        );
        assert_eq!(shortfall(&config, Some(1 << 20)), None);
        assert_eq!(shortfall(&config, None), None);
    }
}
