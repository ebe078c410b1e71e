//! CPU time and memory of a process from `/proc/PID/stat` (utime + stime) and `/proc/PID/status`
//! (VmRSS, VmHWM), sampled over a measurement window.
//!
//! The same code measures the server under test and the bench itself (`/proc/self`), so the report
//! can show that the tool was not the bottleneck.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    /// Peak resident set over the process's whole life.
    pub hwm_kib: u64,
}

/// `(utime, stime)` in ticks from the text of `/proc/PID/stat`. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // After the name come field 3 (state) onwards; utime and stime are fields 14 and 15.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// `(VmRSS, VmHWM)` in KiB from the text of `/proc/PID/status`.
pub fn parse_status(text: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_ascii_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Reads `/proc/{pid}` (`pid` may be `"self"`).
pub fn read(pid: &str) -> std::io::Result<Sample> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (u, s) = parse_stat(&stat).ok_or_else(|| bad("unparsable /proc/PID/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let (rss, hwm) = parse_status(&status);
    Ok(Sample {
        cpu_ticks: u + s,
        rss_kib: rss.unwrap_or(0),
        hwm_kib: hwm.unwrap_or(0),
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every mainstream Linux, used if getconf is
/// missing).
pub fn ticks_per_second() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// What a process did over a window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Usage {
    pub cpu_seconds: f64,
    /// CPU seconds per wall second, in percent of one core.
    pub cpu_percent: f64,
    /// Largest VmRSS seen by the sampler during the window.
    pub peak_rss_kib: u64,
    /// VmHWM at the end (peak over the process's life).
    pub vm_hwm_kib: u64,
}

/// Samples a process every 200 ms in the background to catch its peak RSS.
pub struct Watch {
    pid: String,
    first: Sample,
    started: Instant,
    peak_rss: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Watch {
    /// Starts watching (fails if the process does not exist or is not readable).
    pub fn start(pid: &str) -> std::io::Result<Watch> {
        let first = read(pid)?;
        let peak_rss = Arc::new(AtomicU64::new(first.rss_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, id) = (peak_rss.clone(), stop.clone(), pid.to_owned());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            while !s.load(Relaxed) {
                tick.tick().await;
                match read(&id) {
                    Ok(x) => {
                        p.fetch_max(x.rss_kib, Relaxed);
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(Watch {
            pid: pid.to_owned(),
            first,
            started: Instant::now(),
            peak_rss,
            stop,
        })
    }

    /// Ends the window; `None` if the process went away.
    pub fn finish(self) -> Option<Usage> {
        self.stop.store(true, Relaxed);
        let last = read(&self.pid).ok()?;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let cpu_seconds =
            last.cpu_ticks.saturating_sub(self.first.cpu_ticks) as f64 / ticks_per_second() as f64;
        Some(Usage {
            cpu_seconds,
            cpu_percent: 100.0 * cpu_seconds / secs,
            peak_rss_kib: self.peak_rss.load(Relaxed).max(last.rss_kib),
            vm_hwm_kib: last.hwm_kib,
        })
    }
}

/// The open-files limit of this process (soft), if readable.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_ascii_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let line = "1234 (rill) worker) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 8 0 12345 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat(line), Some((250, 75)));
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn parses_status() {
        let text = "Name:\trill\nVmPeak:\t  999 kB\nVmHWM:\t   5120 kB\nVmRSS:\t   4096 kB\n";
        assert_eq!(parse_status(text), (Some(4096), Some(5120)));
        assert_eq!(parse_status("Name: x\n"), (None, None));
    }

    #[test]
    fn reads_own_process() {
        let s = read("self").unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
        assert!(ticks_per_second() > 0);
        assert!(open_files_limit().unwrap_or(1) > 0);
        assert!(read("999999999").is_err());
    }

    #[tokio::test]
    async fn watch_measures_cpu() {
        let w = Watch::start("self").unwrap();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let u = w.finish().unwrap();
        assert!(u.cpu_seconds > 0.1, "{u:?}");
        assert!(u.peak_rss_kib > 0);
    }
}
