//! The `rill` command itself, as an operator starts it: the open-files limit it raises at start-up
//! (and the warning when even the hard limit cannot hold the configured connection limits), and
//! `--print-config`, which shows the configuration in effect without its secrets.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills our own child (by its PID, through `Child`) on drop, so a failed assertion never leaves a
/// server running.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rill` on ephemeral loopback ports under the shell limits `ulimit_args` (e.g. `-Sn 512`),
/// waits for its "listening" line and returns the child with every log line up to it.
fn start_under_ulimit(ulimit_args: &str, dir: &std::path::Path) -> (Reaper, Vec<String>) {
    let config = dir.join("rill.toml");
    std::fs::write(
        &config,
        "[rtmp]\nhost = \"127.0.0.1\"\nport = 0\n[http]\nhost = \"127.0.0.1\"\nport = 0\nmediaroot = \"media\"\n",
    )
    .unwrap();
    // The shell's own `ulimit` sets the limits the binary starts with, as a login shell or a
    // service manager would.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit {ulimit_args} && exec \"$0\" --config \"$1\" --log-level info"
        ))
        .arg(env!("CARGO_BIN_EXE_rill"))
        .arg(&config)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rill");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let reaper = Reaper(child);
    let (tx, rx) = mpsc::channel();
    for pipe in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) => {
                let listening = line.contains("listening");
                lines.push(line);
                if listening {
                    return (reaper, lines);
                }
            }
            Err(e) => panic!("rill did not report listening ({e}): {lines:#?}"),
        }
    }
}

/// Soft and hard "Max open files" of a process, from /proc.
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().expect("soft").to_owned();
    let hard = fields.next().expect("hard").to_owned();
    (soft, hard)
}

#[test]
fn raises_the_soft_open_files_limit_to_the_hard_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_, hard_here) = open_files_limits(std::process::id());
    let (child, lines) = start_under_ulimit("-Sn 512", dir.path());
    let (soft, hard) = open_files_limits(child.0.id());
    assert_eq!(hard, hard_here, "the hard limit is left alone");
    assert_eq!(soft, hard, "soft limit not raised: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("open-files limit raised from 512 to {hard}"))),
        "{lines:#?}"
    );
}

#[test]
fn warns_when_the_hard_limit_cannot_hold_the_connection_limits() {
    let dir = tempfile::tempdir().unwrap();
    // `-n` sets soft and hard: nothing to raise, and 400 descriptors cannot hold the default
    // 10 000 RTMP + 10 000 HTTP connections.
    let (child, lines) = start_under_ulimit("-n 400", dir.path());
    assert_eq!(
        open_files_limits(child.0.id()),
        ("400".into(), "400".into())
    );
    let warning = lines
        .iter()
        .find(|l| l.contains("WARN") && l.contains("open-files limit is 400"))
        .unwrap_or_else(|| panic!("no warning: {lines:#?}"));
    assert!(warning.contains("about 72 viewers"), "{warning}");
    assert!(
        !lines.iter().any(|l| l.contains("limit raised")),
        "{lines:#?}"
    );
}

/// Runs `rill ARGS` to its end (within 15 s) and returns its stdout.
fn run_to_end(args: &[&std::ffi::OsStr]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rill");
    let mut stdout = child.stdout.take().expect("stdout");
    let reaper = Reaper(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        let _ = tx.send(text);
    });
    let text = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("rill --print-config did not finish");
    drop(reaper);
    text
}

#[test]
fn print_config_shows_the_file_in_effect_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rill.toml");
    std::fs::write(
        &config,
        r#"
[http]
port = 8123
[auth]
api = true
api_user = "admin"
api_pass = "api-pass-1"
play = true
secret = "sign-secret-2"
secrets = ["old-secret-3"]
[hooks]
secret = "hook-secret-4"
pre_publish = ["http://hook:url-pass-5@127.0.0.1:9000/p"]
[[relay.tasks]]
app = "cam"
mode = "static"
edge = "rtsp://admin:cam-pass-6@192.0.2.10:554/ch1"
name = "door"
"#,
    )
    .unwrap();
    let out = run_to_end(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--print-config".as_ref(),
    ]);
    for secret in [
        "api-pass-1",
        "sign-secret-2",
        "old-secret-3",
        "hook-secret-4",
        "url-pass-5",
        "cam-pass-6",
    ] {
        assert!(!out.contains(secret), "{secret} printed:\n{out}");
    }
    let parsed: toml::Value = toml::from_str(&out).expect("the output is TOML");
    assert_eq!(
        parsed["http"]["port"].as_integer(),
        Some(8123),
        "the file's values"
    );
    assert_eq!(parsed["auth"]["api_pass"].as_str(), Some("***"));
    assert_eq!(parsed["auth"]["secret"].as_str(), Some("***"));
    assert_eq!(parsed["auth"]["secrets"][0].as_str(), Some("***"));
    assert_eq!(parsed["hooks"]["secret"].as_str(), Some("***"));
    assert_eq!(parsed["auth"]["api_user"].as_str(), Some("admin"));
    assert_eq!(parsed["auth"]["api_loopback"].as_bool(), Some(true));

    // Without a file: the defaults, where nothing is set and so nothing is masked.
    let out = run_to_end(&["--print-config".as_ref()]);
    assert!(!out.contains("***"), "{out}");
    let parsed: toml::Value = toml::from_str(&out).expect("the output is TOML");
    assert_eq!(parsed["auth"]["secret"].as_str(), Some(""));
    assert_eq!(parsed["http"]["port"].as_integer(), Some(8000));
}
