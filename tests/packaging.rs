//! The package: `cargo deb` builds it, `dpkg-deb` inspects it (files, conffiles,
//! control fields), `systemd-analyze verify` checks the unit, the packaged binary
//! serves `/health` from the packaged env file, and the postinst runs against a
//! scratch root (`DPKG_ROOT`): user, data directory, distinct secrets generated once
//! and kept on upgrade, data kept on purge.
//!
//! Needs `cargo-deb`, `dpkg-deb`, `systemd-analyze` and `systemd-sysusers`; `.ci/run`
//! installs them and sets `AVIO_REQUIRE_PACKAGING=1`, so CI fails instead of skipping.
//! `AVIO_DEB=path` tests an existing package instead of running `cargo deb`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::daemon::Daemon;
use common::file_mode;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn repo(path: &str) -> PathBuf {
    Path::new(MANIFEST_DIR).join(path)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn have(tool: &str, args: &[&str]) -> bool {
    Command::new(tool).args(args).output().is_ok_and(|o| o.status.success())
}

/// `Some(())` when the tools answer; otherwise skips (prints why), or fails in CI.
fn require(tools: &[(&str, &[&str])]) -> Option<()> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|(tool, args)| !have(tool, args))
        .map(|(tool, args)| format!("{tool} {}", args[0]))
        .collect();
    if missing.is_empty() {
        return Some(());
    }
    let reason = format!("missing {}: install them (see .ci/run)", missing.join(", "));
    if std::env::var_os("AVIO_REQUIRE_PACKAGING").is_some() {
        panic!("{reason}");
    }
    eprintln!("skipping: {reason}");
    None
}

/// The package under test, built once per test run.
fn deb() -> Option<PathBuf> {
    static DEB: OnceLock<Option<PathBuf>> = OnceLock::new();
    DEB.get_or_init(|| {
        if let Some(path) = std::env::var_os("AVIO_DEB") {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "AVIO_DEB={} does not exist", path.display());
            return Some(path);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        require(&[(cargo.as_str(), &["deb", "--version"]), ("dpkg-deb", &["--version"])])?;
        // The README's command, so this also proves it works from the checkout.
        let out = run(Command::new(&cargo).arg("deb").current_dir(MANIFEST_DIR));
        let path = text(&out.stdout).lines().rev().map(str::trim).find(|l| l.ends_with(".deb")).map(PathBuf::from);
        Some(path.unwrap_or_else(|| panic!("cargo deb printed no package path:\n{}", text(&out.stdout))))
    })
    .clone()
}

/// The package unpacked: `(files root, control directory)`.
fn unpack(deb: &Path, into: &Path) -> (PathBuf, PathBuf) {
    let (root, control) = (into.join("root"), into.join("control"));
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    (root, control)
}

fn field(deb: &Path, name: &str) -> String {
    text(&run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name)).stdout).trim().to_string()
}

#[test]
fn env_file_documents_every_variable_and_gives_a_valid_config() {
    let env_text = std::fs::read_to_string(repo("packaging/avio.env")).unwrap();
    let lines: Vec<&str> = env_text.lines().collect();
    for (name, _) in avio::config::VARIABLES {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{name}=")) || l.starts_with(&format!("# {name}=")))
            .unwrap_or_else(|| panic!("packaging/avio.env does not mention {name}"));
        // The comment block above a variable (or above the group it belongs to).
        let comment = lines[..at].iter().rev().take_while(|l| !l.trim().is_empty()).any(|l| {
            let body = l.trim_start_matches('#').trim();
            l.starts_with('#') && !body.contains('=') && body.split_whitespace().count() >= 3
        });
        assert!(comment, "{name} in packaging/avio.env has no comment saying what it does");
    }

    let dir = tempfile::tempdir().unwrap();
    let mut vars = avio::config::read_env_file(&repo("packaging/avio.env")).unwrap();
    // As shipped, the secrets are empty: only the postinst makes the file usable.
    let refused = avio::config::Config::from_vars(&vars).unwrap_err();
    assert_eq!(refused.var, "ADMIN_TOKEN");
    vars.insert("ADMIN_TOKEN".into(), avio::secrets::token(40));
    vars.insert("PUBLIC_KEY".into(), avio::secrets::token(40));
    let config = avio::config::Config::from_vars(&vars).unwrap();
    assert_eq!(config.data_dir, Path::new("/var/lib/avio"));
    assert_eq!(config.bind.to_string(), "127.0.0.1:8000");
    assert!(!config.outbox_enabled);
    drop(dir);
}

/// `KEY=value` lines of a unit file's `[Service]` and `[Unit]` sections.
fn unit_settings(unit: &str) -> HashMap<String, Vec<String>> {
    let mut settings: HashMap<String, Vec<String>> = HashMap::new();
    for line in unit.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.starts_with('[')) {
        if let Some((key, value)) = line.split_once('=') {
            settings.entry(key.to_string()).or_default().push(value.to_string());
        }
    }
    settings
}

#[test]
fn unit_is_hardened_and_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(repo("systemd/avio.service")).unwrap();
    let settings = unit_settings(&unit);
    let one = |key: &str| settings.get(key).and_then(|v| v.last()).map(String::as_str);
    for (key, value) in [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("User", "avio"),
        ("EnvironmentFile", "/etc/avio/avio.env"),
        ("ExecStart", "/usr/bin/avio serve"),
        ("StateDirectory", "avio"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ReadWritePaths", "/var/lib/avio"),
    ] {
        assert_eq!(one(key), Some(value), "{key}");
    }
    assert!(one("WatchdogSec").is_some(), "WatchdogSec: the daemon pings the watchdog");
    assert!(one("MemoryMax").is_some(), "a memory limit");
    // It breaks V8's JIT, so Chromium (WhatsApp) would crash: see the unit's comment.
    assert_ne!(one("MemoryDenyWriteExecute"), Some("yes"));

    if require(&[("systemd-analyze", &["--version"])]).is_none() {
        return;
    }
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("avio.service");
    let exec = format!("ExecStart={} serve", env!("CARGO_BIN_EXE_avio"));
    std::fs::write(&copy, unit.replace("ExecStart=/usr/bin/avio serve", &exec)).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
    let complaints = text(&out.stderr);
    assert!(out.status.success() && complaints.trim().is_empty(), "systemd-analyze verify:\n{complaints}");
}

#[test]
fn deb_holds_binaries_unit_conffile_and_control_fields() {
    let Some(deb) = deb() else { return };
    assert_eq!(field(&deb, "Package"), "avio");
    assert_eq!(field(&deb, "Version"), env!("CARGO_PKG_VERSION"));
    assert!(field(&deb, "Recommends").split(',').any(|r| r.trim() == "chromium"), "Recommends: chromium");
    let depends = field(&deb, "Depends");
    assert!(depends.contains("libc6"), "{depends}");
    assert!(depends.contains("systemd-sysusers"), "{depends}");
    assert!(deb.file_name().unwrap().to_string_lossy().starts_with(&format!("avio_{}_", env!("CARGO_PKG_VERSION"))));

    let listing = text(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)).stdout);
    let mode_of = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"))
    };
    assert_eq!(mode_of("/usr/bin/avio"), "-rwxr-xr-x");
    assert_eq!(mode_of("/usr/bin/avioctl"), "-rwxr-xr-x");
    assert_eq!(mode_of("/etc/avio/avio.env"), "-rw-r-----");
    assert_eq!(mode_of("/usr/lib/systemd/system/avio.service"), "-rw-r--r--");
    assert_eq!(mode_of("/usr/lib/sysusers.d/avio.conf"), "-rw-r--r--");
    assert!(!listing.contains("./var/lib/avio"), "the package must not own the data directory");

    let dir = tempfile::tempdir().unwrap();
    let (root, control) = unpack(&deb, dir.path());
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.lines().filter(|l| l.trim() == "/etc/avio/avio.env").count(), 1, "{conffiles}");
    assert_eq!(
        std::fs::read(root.join("usr/lib/systemd/system/avio.service")).unwrap(),
        std::fs::read(repo("systemd/avio.service")).unwrap()
    );
    assert_eq!(
        std::fs::read(root.join("etc/avio/avio.env")).unwrap(),
        std::fs::read(repo("packaging/avio.env")).unwrap()
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("deb-systemd-helper enable avio.service"), "enabled on install:\n{postinst}");
    assert!(postinst.contains("deb-systemd-invoke $_dh_action avio.service"), "started on install:\n{postinst}");
    assert!(postinst.contains("fill_secrets"), "{postinst}");
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(!postrm.contains("rm -r"), "purge must never delete data:\n{postrm}");
}

#[tokio::test(flavor = "multi_thread")]
async fn packaged_binary_serves_health_from_the_packaged_env_file() {
    let Some(deb) = deb() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = unpack(&deb, dir.path());
    let data_dir = dir.path().join("var-lib-avio");
    let admin_token = avio::secrets::token(40);
    let env_file = dir.path().join("avio.env");
    let shipped = std::fs::read_to_string(root.join("etc/avio/avio.env")).unwrap();
    let edited: String = shipped
        .lines()
        .map(|line| match line.split_once('=').map(|(k, _)| k) {
            Some("BIND") => "BIND=127.0.0.1:0".to_string(),
            Some("DATA_DIR") => format!("DATA_DIR={}", data_dir.display()),
            Some("ADMIN_TOKEN") => format!("ADMIN_TOKEN={admin_token}"),
            Some("PUBLIC_KEY") => format!("PUBLIC_KEY={}", avio::secrets::token(40)),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&env_file, edited).unwrap();

    let mut serve = Command::new(root.join("usr/bin/avio"));
    serve.env_clear().arg("serve").arg("--env-file").arg(&env_file);
    let daemon = Daemon::start(&mut serve);
    let health = common::eventually(Duration::from_secs(30), || async {
        let r = reqwest::get(daemon.url("/health")).await.ok()?;
        (r.status() == 200).then_some(())?;
        r.json::<serde_json::Value>().await.ok()
    })
    .await;
    assert_eq!(health["ok"], true);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(file_mode(&data_dir), 0o700);

    let avioctl = root.join("usr/bin/avioctl");
    let url = daemon.url("");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(avioctl).env_clear().env("AVIO_URL", url).arg("--env-file").arg(&env_file).arg("status").output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&admin_token), "status shows the admin token:\n{}", text(&out.stdout));
}

/// Runs a maintainer script against `root` as dpkg would for `--root`, with the
/// commands that act on the running system (systemd) replaced by loggers.
fn maintainer_script(control: &Path, root: &Path, stubs: &Path, script: &str, args: &[&str]) -> Output {
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", stubs.display());
    let out = Command::new("sh")
        .arg(control.join(script))
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("DPKG_ROOT", root)
        .env("DPKG_MAINTSCRIPT_NAME", script)
        .env("DPKG_MAINTSCRIPT_PACKAGE", "avio")
        .output()
        .unwrap();
    assert!(out.status.success(), "{script} {args:?}:\n{}{}", text(&out.stdout), text(&out.stderr));
    out
}

fn stubs(dir: &Path) -> PathBuf {
    let stubs = dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let log = dir.join("systemd.log");
    for tool in ["deb-systemd-helper", "deb-systemd-invoke", "systemctl"] {
        let script = format!("#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit 0\n", log.display());
        std::fs::write(stubs.join(tool), script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(stubs.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    stubs
}

fn secrets(env_file: &Path) -> (String, String) {
    let vars = avio::config::read_env_file(env_file).unwrap();
    (vars["ADMIN_TOKEN"].clone(), vars["PUBLIC_KEY"].clone())
}

fn passwd_entry(root: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(root.join("etc/passwd"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in the scratch root's /etc/passwd"))
        .split(':')
        .map(str::to_string)
        .collect()
}

#[test]
fn postinst_makes_distinct_secrets_once_and_upgrade_and_purge_keep_everything() {
    use std::os::unix::fs::MetadataExt;
    let Some(deb) = deb() else { return };
    if require(&[("systemd-sysusers", &["--version"])]).is_none() {
        return;
    }
    if !Command::new("id").arg("-u").output().is_ok_and(|o| text(&o.stdout).trim() == "0") {
        // The postinst gives files to the avio user: only root can (dpkg runs it as root).
        assert!(std::env::var_os("AVIO_REQUIRE_PACKAGING").is_none(), "the postinst test needs root");
        eprintln!("skipping: the postinst test needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (root, control) = unpack(&deb, dir.path());
    let stubs = stubs(dir.path());
    let env_file = root.join("etc/avio/avio.env");

    // First install: configure with no previous version.
    let out = maintainer_script(&control, &root, &stubs, "postinst", &["configure", ""]);
    assert!(text(&out.stdout).contains("sudo avioctl status"), "{}", text(&out.stdout));
    let user = passwd_entry(&root, "avio");
    assert_eq!(user[5], "/var/lib/avio");
    assert!(user[6].ends_with("nologin"), "{user:?}");
    let (uid, gid): (u32, u32) = (user[2].parse().unwrap(), user[3].parse().unwrap());
    let data_dir = root.join("var/lib/avio");
    assert_eq!(file_mode(&data_dir), 0o700);
    assert_eq!(std::fs::metadata(&data_dir).unwrap().uid(), uid);
    let (admin_token, public_key) = secrets(&env_file);
    for secret in [&admin_token, &public_key] {
        assert!(secret.len() >= 32 && secret.chars().all(|c| c.is_ascii_alphanumeric()), "{secret:?}");
    }
    assert_ne!(admin_token, public_key);
    assert_eq!(file_mode(&env_file), 0o640);
    let meta = std::fs::metadata(&env_file).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, gid), "root:avio");
    let log = std::fs::read_to_string(dir.path().join("systemd.log")).unwrap();
    assert!(log.contains("deb-systemd-helper enable avio.service"), "{log}");
    // The daemon accepts what the postinst wrote.
    let mut vars = avio::config::read_env_file(&env_file).unwrap();
    vars.insert("DATA_DIR".into(), data_dir.display().to_string());
    avio::config::Config::from_vars(&vars).unwrap();

    // The admin edits the file and the daemon writes data; then an upgrade.
    let edited = std::fs::read_to_string(&env_file).unwrap().replace("OUTBOX_ENABLED=false", "OUTBOX_ENABLED=true");
    std::fs::write(&env_file, &edited).unwrap();
    std::fs::write(data_dir.join("avio.db"), b"tenant data").unwrap();
    maintainer_script(&control, &root, &stubs, "postinst", &["configure", env!("CARGO_PKG_VERSION")]);
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), edited, "an upgrade rewrote the env file");
    assert_eq!(std::fs::read(data_dir.join("avio.db")).unwrap(), b"tenant data");
    assert_eq!(passwd_entry(&root, "avio")[2], uid.to_string(), "the user is created once");

    // Another machine gets other secrets.
    let other = tempfile::tempdir().unwrap();
    let (other_root, other_control) = unpack(&deb, other.path());
    maintainer_script(&other_control, &other_root, &stubs, "postinst", &["configure", ""]);
    let (other_admin, other_public) = secrets(&other_root.join("etc/avio/avio.env"));
    assert_ne!(other_admin, admin_token);
    assert_ne!(other_public, public_key);

    // Purge: dpkg deletes the conffile itself; the script must keep the data.
    std::fs::remove_file(&env_file).unwrap();
    let out = maintainer_script(&control, &root, &stubs, "postrm", &["purge"]);
    assert!(text(&out.stderr).contains("/var/lib/avio was kept"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(data_dir.join("avio.db")).unwrap(), b"tenant data");
    assert!(passwd_entry(&root, "avio")[0] == "avio");
}

/// `Type=notify` and `WatchdogSec=`: the daemon says READY once it serves, pings the
/// watchdog at half the interval, and says STOPPING on SIGTERM (systemd's datagram
/// protocol on `NOTIFY_SOCKET`, here a socket of the test's own).
#[test]
fn the_daemon_notifies_readiness_pings_the_watchdog_and_announces_its_stop() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let data_dir = dir.path().join("data");
    let mut daemon = Daemon::start(&mut common::daemon::serve_command(
        &data_dir,
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")],
        &["--dev"],
    ));
    let next = || {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(next().contains("READY=1"));
    // Two pings in a row: the pinger keeps going, not a single message at start.
    assert!(next().contains("WATCHDOG=1"));
    assert!(next().contains("WATCHDOG=1"));
    assert!(daemon.terminate().success());
    let mut rest = Vec::new();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = [0u8; 256];
    while let Ok(n) = socket.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.iter().any(|m| m.contains("STOPPING=1")), "{rest:?}");
}
