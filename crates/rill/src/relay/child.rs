//! Supervised child processes (ffmpeg for file sources, later the transcoder) that can never be
//! left behind as orphans.
//!
//! Every child gets four layers of protection, because each one alone has a gap:
//! - its own process group, so every signal reaches whatever it forked too;
//! - `PR_SET_PDEATHSIG(SIGKILL)`, so the kernel kills it if the server dies without running any
//!   destructor (SIGKILL, OOM killer, abort). The kernel sends it when the *thread* that forked
//!   the child exits, so the fork happens on a dedicated supervisor thread that lives exactly as
//!   long as the child: it blocks in `waitid` until the child is gone, then reaps it;
//! - dropping a [`SupervisedChild`] SIGKILLs the whole group (the equivalent of tokio's
//!   `kill_on_drop(true)`, which would only reach the leader);
//! - when the leader exits on its own, the supervisor thread SIGKILLs what it left in its group
//!   before reaping it: a supervised child lives and dies as one unit.
//!
//! The child is spawned with `std::process` rather than `tokio::process`: tokio's child must be
//! spawned where its runtime can reap it, which is a runtime worker thread that may exit (firing
//! PDEATHSIG early) or a thread that must then also drive the runtime. A plain blocking `waitid`
//! on our own thread needs nothing from the runtime. Only the pipes are registered with the
//! runtime of the caller of [`SupervisedChild::spawn`].
//!
//! Signals are only ever sent while the leader is known not to be reaped (its zombie pins the
//! PID and the process-group ID), so a recycled PID can never be hit.

use std::collections::VecDeque;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

/// How many stderr lines [`SupervisedChild::last_lines`] keeps.
pub const STDERR_LINES: usize = 20;
/// Longest stderr line kept, in bytes; the rest of a longer line is dropped.
pub const STDERR_LINE_MAX: usize = 512;
/// After the leader exits, how long [`SupervisedChild::wait`] gives the stderr drain to reach EOF
/// so that [`SupervisedChild::last_lines`] holds the final words. The group is dead by then, so
/// EOF is normally immediate; the bound covers a descriptor leaked to an unrelated process.
const STDERR_FLUSH: Duration = Duration::from_millis(500);
/// How long [`SupervisedChild::stop`] waits for the reap after SIGKILL. SIGKILL cannot be caught,
/// but a process in uninterruptible sleep (a dead NFS mount) dies only when the kernel lets it.
const KILL_REAP_LIMIT: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Names the child in logs and errors, e.g. the stream it serves.
    pub label: String,
}

/// The leader's PID and whether it has exited; signals go out only under this lock while the
/// leader is not yet reaped.
struct Group {
    pid: Pid,
    gone: Mutex<bool>,
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, bool> {
        // A poisoned lock only means a panic elsewhere; the flag itself is always consistent.
        self.gone.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `sig` to the whole group; false if the leader has already exited.
    fn signal(&self, sig: Signal) -> bool {
        let gone = self.lock();
        if *gone {
            return false;
        }
        // ESRCH is the only expected failure (the group emptied meanwhile): nothing to do.
        let _ = rustix::process::kill_process_group(self.pid, sig);
        true
    }
}

/// A running child process; see the module documentation for what guarantees it gives.
pub struct SupervisedChild {
    label: String,
    group: Arc<Group>,
    stdout: Option<tokio::process::ChildStdout>,
    ring: Arc<Mutex<VecDeque<String>>>,
    stderr_task: Option<tokio::task::JoinHandle<()>>,
    /// The supervisor thread's report; `None` once received.
    exit_rx: Option<oneshot::Receiver<io::Result<ExitStatus>>>,
    status: Option<ExitStatus>,
}

/// What the supervisor thread hands back once the fork has succeeded.
struct Spawned {
    pid: u32,
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
}

impl SupervisedChild {
    /// Starts `spec` with stdin null, stdout piped (see [`SupervisedChild::take_stdout`]) and
    /// stderr drained into a bounded ring. Must be called within a tokio runtime, whose reactor
    /// the pipes are registered with. Blocks for as long as the fork and exec take.
    pub fn spawn(spec: &ChildSpec) -> io::Result<SupervisedChild> {
        // Registering the pipes panics outside a runtime; turn that into an error up front.
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| io::Error::other(format!("spawning {}: {e}", spec.label)))?;

        let mut cmd = std::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
        // operations are allowed. It makes two raw syscalls through rustix (prctl, getppid),
        // allocates nothing, takes no lock, and builds its error from a raw errno (no allocation).
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                // If the server died between fork and prctl, the death signal was armed too late:
                // we have been reparented already, so give up rather than run unsupervised.
                if rustix::process::getppid() != Some(parent) {
                    return Err(rustix::io::Errno::SRCH.into());
                }
                Ok(())
            });
        }

        let (spawned_tx, spawned_rx) =
            std::sync::mpsc::channel::<io::Result<(Spawned, Arc<Group>)>>();
        let (exit_tx, exit_rx) = oneshot::channel();
        let label = spec.label.clone();
        std::thread::Builder::new()
            // A NUL would make the thread's name, and so the spawn, fail.
            .name(format!("child {}", spec.label.replace('\0', "")))
            // It only forks and waits.
            .stack_size(256 * 1024)
            .spawn(move || supervise(cmd, label, spawned_tx, exit_tx))?;
        let (spawned, group) = spawned_rx.recv().map_err(|_| {
            io::Error::other(format!("supervisor thread of {} ended early", spec.label))
        })??;

        // Built before the pipes are registered, so that a failure there drops it and thereby
        // kills the child instead of leaving it unowned.
        let mut child = SupervisedChild {
            label: spec.label.clone(),
            group,
            stdout: None,
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES))),
            stderr_task: None,
            exit_rx: Some(exit_rx),
            status: None,
        };
        if let Some(out) = spawned.stdout {
            child.stdout = Some(tokio::process::ChildStdout::from_std(out)?);
        }
        if let Some(err) = spawned.stderr {
            let err = tokio::process::ChildStderr::from_std(err)?;
            let drain = drain_stderr(err, spec.label.clone(), child.ring.clone());
            child.stderr_task = Some(runtime.spawn(drain));
        }
        tracing::debug!(child = %spec.label, pid = spawned.pid, program = %spec.program.display(), "child started");
        Ok(child)
    }

    /// The child's stdout, once.
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.stdout.take()
    }

    /// The leader's PID while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        if *self.group.lock() {
            return None;
        }
        u32::try_from(self.group.pid.as_raw_nonzero().get()).ok()
    }

    /// The last [`STDERR_LINES`] lines of stderr, oldest first, each at most [`STDERR_LINE_MAX`]
    /// bytes.
    pub fn last_lines(&self) -> Vec<String> {
        lock_ring(&self.ring).iter().cloned().collect()
    }

    /// Waits for the leader to exit (the supervisor thread reaps it) and returns its status; once
    /// it has returned, [`SupervisedChild::last_lines`] includes the child's last words.
    /// Cancel-safe, and may be called again after it returned.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Some(rx) = self.exit_rx.as_mut() else {
            return Err(io::Error::other(format!(
                "waiting for {} failed before",
                self.label
            )));
        };
        let report = rx.await;
        self.exit_rx = None;
        let status = report.map_err(|_| {
            io::Error::other(format!("supervisor thread of {} vanished", self.label))
        })??;
        self.status = Some(status);
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(STDERR_FLUSH, task).await;
        }
        Ok(status)
    }

    /// SIGTERM to the process group, SIGKILL after `grace` if the leader is still there, and the
    /// leader reaped (and the rest of its group killed, see the module documentation).
    pub async fn stop(mut self, grace: Duration) {
        if self.group.signal(Signal::TERM) && tokio::time::timeout(grace, self.wait()).await.is_ok()
        {
            return;
        }
        if self.group.signal(Signal::KILL) {
            tracing::debug!(child = %self.label, "child ignored SIGTERM for {grace:?}; killed");
        }
        match tokio::time::timeout(KILL_REAP_LIMIT, self.wait()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(child = %self.label, "cannot reap child: {e}"),
            // The supervisor thread still reaps it whenever the kernel lets it die.
            Err(_) => {
                tracing::warn!(child = %self.label, "child not dead {KILL_REAP_LIMIT:?} after SIGKILL")
            }
        }
    }
}

impl Drop for SupervisedChild {
    fn drop(&mut self) {
        // The supervisor thread reaps it; the stderr drain ends at EOF.
        if self.group.signal(Signal::KILL) {
            tracing::debug!(child = %self.label, "child killed on drop");
        }
    }
}

/// The supervisor thread: forks the child (so PDEATHSIG is tied to this thread), reports it,
/// waits for the leader to exit without reaping it, kills its leftovers, reaps and reports.
fn supervise(
    mut cmd: std::process::Command,
    label: String,
    spawned_tx: std::sync::mpsc::Sender<io::Result<(Spawned, Arc<Group>)>>,
    exit_tx: oneshot::Sender<io::Result<ExitStatus>>,
) {
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = spawned_tx.send(Err(e));
            return;
        }
    };
    let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) else {
        // Cannot happen on Linux (PIDs are positive i32); kill it by the handle and bail.
        let _ = child.kill();
        let _ = child.wait();
        let _ = spawned_tx.send(Err(io::Error::other("child has an invalid PID")));
        return;
    };
    let group = Arc::new(Group {
        pid,
        gone: Mutex::new(false),
    });
    let spawned = Spawned {
        pid: child.id(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
    };
    if spawned_tx.send(Ok((spawned, group.clone()))).is_err() {
        // The caller is gone (it cannot be, it blocks on the channel), so nobody owns the child.
        group.signal(Signal::KILL);
    }

    // Wait for the exit but leave the zombie in place: while it exists, its PID (which is also
    // the group's ID) cannot be reused, so signalling the group is safe.
    let waited = loop {
        match rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other,
        }
    };
    {
        let mut gone = group.lock();
        if waited.is_ok() {
            // Whatever the leader left running in its group goes with it.
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        *gone = true;
    }
    let status = child.wait();
    match &status {
        Ok(s) => tracing::debug!(child = %label, "child exited: {s}"),
        Err(e) => tracing::warn!(child = %label, "cannot reap child: {e}"),
    }
    let _ = exit_tx.send(status);
}

fn lock_ring(ring: &Mutex<VecDeque<String>>) -> MutexGuard<'_, VecDeque<String>> {
    ring.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads stderr to EOF, logging each line and keeping the last [`STDERR_LINES`].
async fn drain_stderr(
    mut stderr: tokio::process::ChildStderr,
    label: String,
    ring: Arc<Mutex<VecDeque<String>>>,
) {
    let mut splitter = LineSplitter::new(STDERR_LINE_MAX);
    let mut chunk = vec![0u8; 4096];
    let mut keep = |line: String| {
        if line.to_ascii_lowercase().contains("error") {
            tracing::warn!(child = %label, "{line}");
        } else {
            tracing::debug!(child = %label, "{line}");
        }
        let mut ring = lock_ring(&ring);
        if ring.len() == STDERR_LINES {
            ring.pop_front();
        }
        ring.push_back(line);
    };
    loop {
        match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => splitter.push(&chunk[..n], &mut keep),
        }
    }
    splitter.finish(&mut keep);
}

/// Splits a byte stream into lines at `\n` or `\r` (ffmpeg rewrites progress lines with `\r`),
/// keeping at most `max` bytes of each: a child that prints megabytes without a newline cannot
/// make us buffer them.
struct LineSplitter {
    max: usize,
    line: Vec<u8>,
    truncated: bool,
}

impl LineSplitter {
    fn new(max: usize) -> LineSplitter {
        LineSplitter {
            max,
            line: Vec::new(),
            truncated: false,
        }
    }

    fn push(&mut self, data: &[u8], out: &mut impl FnMut(String)) {
        for &b in data {
            if b == b'\n' || b == b'\r' {
                self.emit(out);
            } else if self.line.len() < self.max {
                self.line.push(b);
            } else {
                self.truncated = true;
            }
        }
    }

    /// Emits a last line that had no newline.
    fn finish(&mut self, out: &mut impl FnMut(String)) {
        self.emit(out);
    }

    fn emit(&mut self, out: &mut impl FnMut(String)) {
        let mut line = String::from_utf8_lossy(&self.line).trim_end().to_owned();
        if self.truncated {
            line.push_str(" [...]");
        }
        self.line.clear();
        self.truncated = false;
        if !line.is_empty() {
            out(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::time::Instant;
    use tokio::io::AsyncBufReadExt;

    fn sh(script: &str) -> ChildSpec {
        ChildSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            label: "test".into(),
        }
    }

    /// True while `pid` exists and is not a zombie: a killed grandchild is reparented to PID 1,
    /// which in a container may never reap it, so a zombie counts as dead.
    fn alive(pid: u32) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The state follows the parenthesised command name, which may itself contain spaces.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z") | Some("X") | None)
    }

    fn gone(pid: u32) -> bool {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cond()
    }

    /// Reads the first line of the child's stdout as a PID.
    async fn read_pid(child: &mut SupervisedChild) -> u32 {
        let out = child.take_stdout().unwrap();
        let mut lines = tokio::io::BufReader::new(out).lines();
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        line.trim().parse().unwrap()
    }

    #[test]
    fn splitter_bounds_lines() {
        let mut lines = Vec::new();
        let mut s = LineSplitter::new(8);
        s.push(b"short\nthis line is long", &mut |l| lines.push(l));
        s.push(b"er still\r\n\nlast", &mut |l| lines.push(l));
        s.finish(&mut |l| lines.push(l));
        assert_eq!(lines, ["short", "this lin [...]", "last"]);
    }

    #[test]
    fn splitter_handles_invalid_utf8() {
        let mut lines = Vec::new();
        let mut s = LineSplitter::new(100);
        s.push(b"bad \xff byte\n", &mut |l| lines.push(l));
        assert_eq!(lines, ["bad \u{fffd} byte"]);
    }

    #[tokio::test]
    async fn stop_reaps_within_grace() {
        let child = SupervisedChild::spawn(&sh("sleep 100")).unwrap();
        let pid = child.pid().unwrap();
        assert!(alive(pid));
        let start = Instant::now();
        child.stop(Duration::from_secs(3)).await;
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        // Reaped, not merely dead: no zombie left behind.
        assert!(gone(pid), "/proc/{pid} still there");
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill() {
        // An ignored signal stays ignored across exec, so neither sh nor sleep dies of SIGTERM.
        let mut child =
            SupervisedChild::spawn(&sh("trap '' TERM; sleep 100 & echo $!; wait")).unwrap();
        let grandchild = read_pid(&mut child).await;
        let pid = child.pid().unwrap();
        let start = Instant::now();
        child.stop(Duration::from_millis(300)).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(gone(pid));
        assert!(eventually(Duration::from_secs(3), || !alive(grandchild)).await);
    }

    #[tokio::test]
    async fn drop_kills_the_group() {
        let mut child = SupervisedChild::spawn(&sh("sleep 100 & echo $!; wait")).unwrap();
        let grandchild = read_pid(&mut child).await;
        let pid = child.pid().unwrap();
        drop(child);
        assert!(
            eventually(Duration::from_secs(3), || gone(pid)).await,
            "/proc/{pid} remains"
        );
        assert!(eventually(Duration::from_secs(3), || !alive(grandchild)).await);
    }

    #[tokio::test]
    async fn stop_kills_grandchildren() {
        let mut child = SupervisedChild::spawn(&sh("sleep 100 & echo $!; wait")).unwrap();
        let grandchild = read_pid(&mut child).await;
        assert!(alive(grandchild));
        child.stop(Duration::from_secs(2)).await;
        assert!(eventually(Duration::from_secs(3), || !alive(grandchild)).await);
    }

    #[tokio::test]
    async fn leftovers_die_with_the_leader() {
        // sh exits at once, leaving sleep in its group.
        let mut child = SupervisedChild::spawn(&sh("sleep 100 & echo $!")).unwrap();
        let grandchild = read_pid(&mut child).await;
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
        assert_eq!(child.pid(), None);
        assert!(eventually(Duration::from_secs(3), || !alive(grandchild)).await);
    }

    #[tokio::test]
    async fn wait_reports_the_exit_code_and_stderr() {
        let mut child =
            SupervisedChild::spawn(&sh("echo first >&2; echo 'an error here' >&2; exit 3"))
                .unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(child.last_lines(), ["first", "an error here"]);
        // Again: the cached status.
        assert_eq!(child.wait().await.unwrap().code(), Some(3));
    }

    #[tokio::test]
    async fn stderr_ring_is_bounded() {
        let script = "i=0; while [ $i -lt 100 ]; do echo line $i >&2; i=$((i+1)); done; \
                      head -c 100000 /dev/zero | tr '\\0' x >&2";
        let mut child = SupervisedChild::spawn(&sh(script)).unwrap();
        assert!(child.wait().await.unwrap().success());
        let lines = child.last_lines();
        assert_eq!(lines.len(), STDERR_LINES);
        assert_eq!(lines[0], "line 81");
        assert_eq!(lines[STDERR_LINES - 2], "line 99");
        let long = &lines[STDERR_LINES - 1];
        assert!(long.starts_with("xxxx") && long.ends_with("[...]"));
        assert!(long.len() <= STDERR_LINE_MAX + 6, "{}", long.len());
    }

    #[tokio::test]
    async fn stdout_and_stdin() {
        // stdin is /dev/null: `cat` ends at once with nothing.
        let mut child = SupervisedChild::spawn(&sh("cat; echo done")).unwrap();
        let mut out = String::new();
        child
            .take_stdout()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        assert_eq!(out, "done\n");
        assert!(child.take_stdout().is_none());
        assert!(child.wait().await.unwrap().success());
    }

    #[tokio::test]
    async fn missing_program_is_an_error() {
        let spec = ChildSpec {
            program: "/nonexistent/rill-no-such-program".into(),
            args: vec![],
            label: "test".into(),
        };
        let err = SupervisedChild::spawn(&spec).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn spawn_outside_a_runtime_is_an_error() {
        assert!(SupervisedChild::spawn(&sh("true")).is_err());
    }

    #[tokio::test]
    async fn child_outlives_the_thread_that_asked_for_it() {
        // The fork happens on the supervisor thread, so a short-lived caller thread exiting must
        // not fire PDEATHSIG.
        let handle = tokio::runtime::Handle::current();
        let child = std::thread::spawn(move || {
            let _guard = handle.enter();
            SupervisedChild::spawn(&sh("sleep 100")).unwrap()
        })
        .join()
        .unwrap();
        let pid = child.pid().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(alive(pid), "child died with the thread that spawned it");
        child.stop(Duration::from_secs(2)).await;
        assert!(gone(pid));
    }

    const HELPER_ENV: &str = "RILL_TEST_PDEATHSIG_HELPER";

    /// Run by [`parent_death_kills_the_child`] in a re-executed copy of this test binary: spawns
    /// a child, prints its PID and waits to be SIGKILLed. A no-op in a normal test run.
    #[test]
    fn pdeathsig_helper() {
        if std::env::var_os(HELPER_ENV).is_none() {
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let child = SupervisedChild::spawn(&ChildSpec {
                program: "sleep".into(),
                args: vec!["100".into()],
                label: "helper".into(),
            })
            .unwrap();
            println!("CHILD_PID={}", child.pid().unwrap());
            use std::io::Write;
            std::io::stdout().flush().unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(child);
        });
    }

    #[test]
    fn parent_death_kills_the_child() {
        if std::env::var_os(HELPER_ENV).is_some() {
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let mut helper = std::process::Command::new(exe)
            .args([
                "--exact",
                "relay::child::tests::pdeathsig_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = helper.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints the test's name on the same line first.
                if let Some((_, pid)) = line.split_once("CHILD_PID=") {
                    let _ = tx.send(pid.trim().parse::<u32>().unwrap());
                }
            }
        });
        let pid = rx.recv_timeout(Duration::from_secs(30));
        // SIGKILL: no destructor runs in the helper, only the kernel's death signal can help.
        helper.kill().unwrap();
        helper.wait().unwrap();
        let pid = pid.expect("the helper never reported its child");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid), "child {pid} survived its parent's SIGKILL");
    }
}
