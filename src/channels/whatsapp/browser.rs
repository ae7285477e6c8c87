//! Chromium for one WhatsApp session: finding the binary, the flags a root-run,
//! network-restricted server needs, the profile directory (`wa_state/<ID>`) and its
//! stale `SingletonLock`, launching with our own process handle, and the memory of a
//! process tree. Blocking code: it runs on the session's own thread.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The note every profile directory carries.
pub const DO_NOT_DELETE: &str = "DO_NOT_DELETE.txt";
const DO_NOT_DELETE_TEXT: &str = "This is a WhatsApp session (a Chromium profile) of one Avio tenant.\n\
Deleting it logs the tenant's WhatsApp out. To reset it, log out: POST /pub/wa/logout or the cabinet.\n";

/// Names Chromium's single-instance lock uses inside a profile.
const SINGLETON_FILES: [&str; 3] = ["SingletonLock", "SingletonSocket", "SingletonCookie"];

/// How long Chromium may take to print its DevTools address.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags for every session, each with the reason it is there.
pub const FLAGS: &[(&str, &str)] = &[
    ("--headless=new", "no display on a server; the new headless mode is the full browser"),
    ("--no-sandbox", "the daemon may run as root (CI, containers), where the sandbox refuses to start"),
    ("--disable-gpu", "no GPU on a server"),
    ("--disable-dev-shm-usage", "containers have a tiny /dev/shm; use /tmp instead"),
    (
        "--disable-background-networking",
        "no update, safe-browsing or suggestion traffic: the box only reaches WhatsApp",
    ),
    ("--disable-component-update", "no component downloads (would fail and retry in a restricted network)"),
    ("--disable-sync", "no Google account sync"),
    ("--disable-default-apps", "no bundled apps in a fresh profile"),
    ("--disable-extensions", "no extensions, no extension processes"),
    ("--disable-component-extensions-with-background-pages", "no built-in extension background pages (memory)"),
    ("--no-first-run", "no first-run UI and its network calls"),
    ("--no-default-browser-check", "nothing to ask on a server"),
    ("--disable-quic", "UDP is usually filtered; QUIC attempts only add timeouts"),
    ("--disable-breakpad", "no crash uploads"),
    ("--metrics-recording-only", "never upload usage metrics"),
    ("--password-store=basic", "no desktop keyring on a server"),
    ("--use-mock-keychain", "no keychain prompts"),
    ("--mute-audio", "a server plays nothing (voice notes, call rings)"),
    (
        "--single-process",
        "browser, renderer, network, storage and GPU in one process: about half the memory of the \
         usual 4-5 processes; a renderer crash then ends the browser, which the supervisor restarts",
    ),
    ("--no-zygote", "no zygote process (requires --no-sandbox)"),
    ("--in-process-gpu", "software compositing inside the browser process: no separate GPU process (memory)"),
    ("--disable-site-isolation-trials", "no extra renderers for cross-site frames (memory)"),
    (
        "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,CertificateTransparencyComponentUpdater,DialMediaRouteProvider,InterestFeedContentSuggestions,CalculateNativeWinOcclusion,BackForwardCache,site-per-process,IsolateOrigins,HttpsUpgrades,PaintHolding,SpareRendererForSitePerProcess",
        "features a headless messaging page does not use; no per-site renderer isolation: the one tab is the one site (memory)",
    ),
    (
        "--enable-features=NetworkServiceInProcess2",
        "the network service inside the browser process: one utility process fewer (memory)",
    ),
    ("--disable-blink-features=AutomationControlled", "navigator.webdriver stays false, as whatsapp-web.js does"),
    (
        "--js-flags=--max-old-space-size=512",
        "cap the page's JS heap so a leak restarts the session instead of eating the box",
    ),
    ("--disk-cache-size=33554432", "a bounded HTTP cache (32 MiB) inside the profile"),
    ("--window-size=1280,800", "a desktop layout: WhatsApp Web refuses narrow windows"),
    ("--lang=ru-RU", "the product's language for the page"),
];

/// `CHROMIUM_PATH`, else the first of the usual names that exists.
pub fn find_chromium(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return Some(path.to_path_buf());
    }
    let candidates = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
    for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
        for name in candidates {
            let path = Path::new(dir).join(name);
            if path.is_file() {
                return Some(path);
            }
        }
    }
    let path_var = std::env::var_os("PATH")?;
    std::env::split_paths(&path_var)
        .flat_map(|dir| candidates.iter().map(move |name| dir.join(name)))
        .find(|path| path.is_file())
}

/// Creates `wa_state/<ID>` (0700) with its `DO_NOT_DELETE.txt`.
pub fn prepare_profile(dir: &Path) -> std::io::Result<()> {
    crate::store::fsutil::ensure_private_dir(dir)?;
    let note = dir.join(DO_NOT_DELETE);
    if !note.exists() {
        crate::store::fsutil::write_private(&note, DO_NOT_DELETE_TEXT.as_bytes())?;
    }
    Ok(())
}

/// Empties the profile and recreates it with its note: only logout does this.
pub fn reset_profile(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    prepare_profile(dir)
}

/// `SingletonLock` points at `<hostname>-<pid>`; that pid, if parseable.
pub fn lock_owner_pid(target: &str) -> Option<u32> {
    target.rsplit_once('-').and_then(|(_, pid)| pid.parse().ok())
}

/// Whether `pid` is a live process using `profile` as its user-data-dir.
fn owns_profile(pid: u32, profile: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    if is_zombie(pid) {
        return false;
    }
    let wanted = format!("--user-data-dir={}", profile.display());
    cmdline.split(|b| *b == 0).any(|arg| arg == wanted.as_bytes())
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// What was found in the profile before launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockCheck {
    Free,
    /// A lock nobody alive owns (a crash, another host's container): removed.
    ClearedStale(String),
    /// A live Chromium uses this profile.
    InUse(u32),
}

/// Clears a stale `SingletonLock` (and its socket and cookie) only when no live
/// process owns it: Chromium refuses a lock naming another host, and waits forever on
/// one naming a dead pid of ours.
pub fn clear_stale_lock(profile: &Path) -> std::io::Result<LockCheck> {
    let lock = profile.join("SingletonLock");
    let target = match std::fs::read_link(&lock) {
        Ok(target) => target.to_string_lossy().into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockCheck::Free),
        // Not a symlink (a copied profile): nothing can own it.
        Err(_) => String::new(),
    };
    if let Some(pid) = lock_owner_pid(&target)
        && owns_profile(pid, profile)
    {
        return Ok(LockCheck::InUse(pid));
    }
    for name in SINGLETON_FILES {
        match std::fs::remove_file(profile.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(LockCheck::ClearedStale(target))
}

/// A Chromium process we started and own: the pid, whether it has exited (a reaper
/// thread waits on it, so it never lingers as a zombie), and its last stderr lines.
pub struct ChromeProcess {
    pub pid: u32,
    pub ws_url: String,
    pub exited: Arc<AtomicBool>,
    exit_rx: mpsc::Receiver<()>,
    pub stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("no Chromium found: install chromium or set CHROMIUM_PATH")]
    NoBinary,
    #[error("cannot start {path}: {error}")]
    Spawn { path: String, error: std::io::Error },
    #[error("the profile is in use by another Chromium (pid {0})")]
    ProfileInUse(u32),
    #[error("chromium exited before it was ready: {0}")]
    Exited(String),
    #[error("chromium did not print its DevTools address within {0:?}")]
    Timeout(Duration),
    #[error("profile directory: {0}")]
    Profile(std::io::Error),
}

impl ChromeProcess {
    /// Starts Chromium on `profile` and waits for its DevTools address. `on_exit` is
    /// called (from the reaper thread) when the process ends, for whatever reason.
    pub fn launch(
        binary: &Path,
        profile: &Path,
        on_exit: impl FnOnce() + Send + 'static,
    ) -> Result<ChromeProcess, LaunchError> {
        let mut command = Command::new(binary);
        command.args(FLAGS.iter().map(|(flag, _)| *flag));
        command
            .arg(format!("--user-data-dir={}", profile.display()))
            // Port 0: Chromium picks a free port and prints it; no guessing, no races.
            .arg("--remote-debugging-port=0")
            .arg("--remote-debugging-address=127.0.0.1")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child =
            command.spawn().map_err(|error| LaunchError::Spawn { path: binary.display().to_string(), error })?;
        let pid = child.id();
        let stderr = child.stderr.take();
        let exited = Arc::new(AtomicBool::new(false));
        let (exit_tx, exit_rx) = mpsc::channel();
        let reaper_exited = exited.clone();
        spawn_thread(format!("wa-reaper-{pid}"), move || reap(child, reaper_exited, exit_tx, on_exit));

        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (url_tx, url_rx) = mpsc::channel::<Result<String, String>>();
        let tail = stderr_tail.clone();
        if let Some(stderr) = stderr {
            spawn_thread(format!("wa-stderr-{pid}"), move || read_stderr(stderr, tail, url_tx));
        }
        let process = ChromeProcess { pid, ws_url: String::new(), exited, exit_rx, stderr_tail };
        match url_rx.recv_timeout(LAUNCH_TIMEOUT) {
            Ok(Ok(ws_url)) => Ok(ChromeProcess { ws_url, ..process }),
            Ok(Err(line)) => {
                process.kill();
                Err(LaunchError::Exited(line))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let tail = process.tail().join(" | ");
                Err(LaunchError::Exited(if tail.is_empty() { "no output".into() } else { tail }))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                process.kill();
                Err(LaunchError::Timeout(LAUNCH_TIMEOUT))
            }
        }
    }

    pub fn tail(&self) -> Vec<String> {
        self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }

    /// SIGKILL, unless the reaper already saw it exit (the pid may be reused).
    pub fn kill(&self) {
        kill_pid(self.pid, &self.exited);
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        if self.has_exited() {
            return true;
        }
        matches!(self.exit_rx.recv_timeout(timeout), Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected))
            || self.has_exited()
    }
}

/// Sends SIGKILL to `pid` unless `exited` says it is gone.
pub fn kill_pid(pid: u32, exited: &AtomicBool) {
    if exited.load(Ordering::SeqCst) {
        return;
    }
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

fn spawn_thread(name: String, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name).spawn(f) {
        tracing::error!(event = "wa_thread_spawn_failed", error = %e);
    }
}

fn reap(mut child: Child, exited: Arc<AtomicBool>, exit_tx: mpsc::Sender<()>, on_exit: impl FnOnce()) {
    let _ = child.wait();
    exited.store(true, Ordering::SeqCst);
    let _ = exit_tx.send(());
    on_exit();
}

/// Lines Chromium prints when it refuses a profile.
fn fatal_line(line: &str) -> bool {
    line.contains("profile appears to be in use") || line.contains("another computer")
}

fn read_stderr(
    stderr: impl std::io::Read,
    tail: Arc<Mutex<VecDeque<String>>>,
    url_tx: mpsc::Sender<Result<String, String>>,
) {
    let mut announced = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if !announced {
            if let Some(url) = line.split("DevTools listening on ").nth(1) {
                announced = true;
                let _ = url_tx.send(Ok(url.trim().to_string()));
                continue;
            }
            if fatal_line(&line) {
                announced = true;
                let _ = url_tx.send(Err(line.clone()));
            }
        }
        let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.len() >= 20 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// The pids of `root` and all its descendants (from `/proc/*/stat`).
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // The command name may hold spaces and parentheses: parse after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut idx = 0;
    while idx < tree.len() {
        let parent = tree[idx];
        tree.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        idx += 1;
    }
    tree
}

/// `VmRSS` of one process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:").and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok())
            })
        })
        .unwrap_or(0)
}

/// `Pss` of one process (shared pages split between their users), in KiB.
pub fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|rollup| {
            rollup.lines().find_map(|line| {
                line.strip_prefix("Pss:").and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok())
            })
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_targets_name_host_and_pid() {
        assert_eq!(lock_owner_pid("f524cfce0217-30"), Some(30));
        assert_eq!(lock_owner_pid("my-host-name-4242"), Some(4242));
        assert_eq!(lock_owner_pid("garbage"), None);
    }

    #[test]
    fn a_lock_of_a_dead_or_foreign_process_is_cleared_and_a_live_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("7");
        prepare_profile(&profile).unwrap();
        assert!(profile.join(DO_NOT_DELETE).is_file());
        assert_eq!(clear_stale_lock(&profile).unwrap(), LockCheck::Free);

        std::os::unix::fs::symlink("otherhost-999999", profile.join("SingletonLock")).unwrap();
        std::os::unix::fs::symlink("otherhost-999999", profile.join("SingletonCookie")).unwrap();
        assert_eq!(clear_stale_lock(&profile).unwrap(), LockCheck::ClearedStale("otherhost-999999".into()));
        assert!(std::fs::symlink_metadata(profile.join("SingletonLock")).is_err());
        assert!(std::fs::symlink_metadata(profile.join("SingletonCookie")).is_err());

        // A live process that is not using this profile does not own the lock either.
        let me = std::process::id();
        std::os::unix::fs::symlink(format!("thishost-{me}"), profile.join("SingletonLock")).unwrap();
        assert!(matches!(clear_stale_lock(&profile).unwrap(), LockCheck::ClearedStale(_)));

        // One whose command line names this profile does.
        let mut sleeper = Command::new("sh")
            .arg("-c")
            .arg("sleep 30; true")
            .arg(format!("--user-data-dir={}", profile.display()))
            .spawn()
            .unwrap();
        // Right after spawn the child may still be inside exec (an empty cmdline).
        let flag = format!("--user-data-dir={}", profile.display());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !std::fs::read(format!("/proc/{}/cmdline", sleeper.id()))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == flag.as_bytes()))
        {
            assert!(std::time::Instant::now() < deadline, "the child never exec'd");
            std::thread::yield_now();
        }
        std::os::unix::fs::symlink(format!("thishost-{}", sleeper.id()), profile.join("SingletonLock")).unwrap();
        assert_eq!(clear_stale_lock(&profile).unwrap(), LockCheck::InUse(sleeper.id()));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(matches!(clear_stale_lock(&profile).unwrap(), LockCheck::ClearedStale(_)));
    }

    #[test]
    fn reset_keeps_only_the_note() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("8");
        prepare_profile(&profile).unwrap();
        std::fs::create_dir_all(profile.join("Default/IndexedDB")).unwrap();
        reset_profile(&profile).unwrap();
        let names: Vec<_> = std::fs::read_dir(&profile).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [DO_NOT_DELETE]);
    }

    #[test]
    fn the_process_tree_of_this_process_contains_a_child() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let tree = process_tree(std::process::id());
        assert!(tree.contains(&child.id()));
        assert!(rss_kib(std::process::id()) > 0);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
