//! The real `avio` binary as a child process, for tests that signal or kill it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub port: u16,
    /// Every line the daemon printed (stdout and stderr), in order of arrival.
    pub lines: Receiver<String>,
}

/// `avio serve` with a clean environment: `DATA_DIR=dir`, a random port, `envs`.
pub fn serve_command(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_avio"));
    cmd.env_clear().env("DATA_DIR", dir).env("BIND", "127.0.0.1:0").arg("serve").args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

impl Daemon {
    /// Starts the command and waits for its `listening` log line (text or JSON).
    pub fn start(cmd: &mut Command) -> Daemon {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, rx) = channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let (out_tx, out_rx) = channel();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else { continue };
            let addr = line.split("event=listening addr=").nth(1).or_else(|| {
                line.contains("\"event\":\"listening\"").then(|| line.split("\"addr\":\"").nth(1)).flatten()
            });
            let port = addr.and_then(|a| a.split('"').next()?.trim().rsplit(':').next()?.parse().ok());
            seen.push(line);
            if let Some(port) = port {
                for line in seen {
                    out_tx.send(line).unwrap();
                }
                std::thread::spawn(move || {
                    while let Ok(line) = rx.recv() {
                        if out_tx.send(line).is_err() {
                            break;
                        }
                    }
                });
                return Daemon { child, port, lines: out_rx };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("daemon did not start: {seen:?}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("-TERM")
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal("-KILL")
    }

    fn signal(&mut self, signal: &str) -> ExitStatus {
        Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit on {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
