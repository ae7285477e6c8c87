//! `avioctl diag` and `avioctl send` through the real binary: diag passes on a good
//! installation, fails on a broken one and names every fix; send delivers a test
//! message through the outbox and explains a refusal.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use avio::domain::Channel;
use common::daemon::{Daemon, serve_command};
use common::recording::{Recorder, RecordingFactory};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `avioctl --env-file FILE args…` with nothing else from the environment.
async fn avioctl(env_file: &Path, url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_avioctl"));
    cmd.env_clear().env("AVIO_URL", url).arg("--env-file").arg(env_file).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn write_env(path: &Path, lines: &[(&str, &str)], mode: u32) {
    // Quoted, as an operator would write a value with spaces.
    let body: String = lines.iter().map(|(k, v)| format!("{k}=\"{v}\"\n")).collect();
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A good installation in a temp dir: distinct strong secrets, the env file (0640) with
/// them and `extra`, and the data directory.
struct Install {
    _dir: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    env_file: std::path::PathBuf,
    admin: String,
    vars: Vec<(String, String)>,
}

impl Install {
    fn new(extra: &[(&str, &str)]) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let env_file = dir.path().join("avio.env");
        let admin = avio::secrets::token(40);
        let mut vars = vec![
            ("DATA_DIR".to_string(), data_dir.to_str().unwrap().to_string()),
            ("ADMIN_TOKEN".into(), admin.clone()),
            ("PUBLIC_KEY".into(), avio::secrets::token(40)),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let install = Install { _dir: dir, data_dir, env_file, admin, vars };
        write_env(&install.env_file, &install.vars(), 0o640);
        install
    }

    fn vars(&self) -> Vec<(&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn start(&self) -> Daemon {
        Daemon::start(&mut serve_command(&self.data_dir, &self.vars(), &[]))
    }
}

async fn create_tenant(daemon: &Daemon, admin: &str, id: i64, name: &str) {
    let created = reqwest::Client::new()
        .post(daemon.url("/admin/tenants"))
        .header("X-Admin-Token", admin)
        .json(&serde_json::json!({"id": id, "name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn diag_passes_on_a_good_installation() {
    let install = Install::new(&[
        ("OUTBOX_ENABLED", "true"),
        ("OUTBOX_WHITELIST", "me 79991234567"),
        ("OPENAI_API_KEY", "sk-test-not-used"),
    ]);
    let (admin, env_file) = (install.admin.as_str(), &install.env_file);
    let daemon = install.start();
    let http = reqwest::Client::new();
    create_tenant(&daemon, admin, 1, "Мебель").await;
    let token = http.get(daemon.url("/admin/provider-token/1")).header("X-Admin-Token", admin).send().await.unwrap();
    assert_eq!(token.status(), 200);

    let out = avioctl(env_file, &daemon.url(""), &["diag", "--verbose"]).await;
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(report.contains("OK    health"), "{report}");
    assert!(report.contains("OK    secrets     ADMIN_TOKEN and PUBLIC_KEY are set, distinct and strong"), "{report}");
    assert!(report.contains("sending is on, to 2 whitelisted recipient(s)"), "{report}");
    assert!(report.contains("1 tenant(s), each with a provider token"), "{report}");
    assert!(report.contains("tenant 1 (Мебель): provider token set"), "verbose details: {report}");
    assert!(report.contains("every guardrail is within its limit"), "{report}");
    assert!(report.contains("diag: 0 failed"), "{report}");
    assert!(!report.contains(admin), "diag must not print secrets");

    let out = avioctl(env_file, &daemon.url(""), &["--json", "diag"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["findings"].as_array().unwrap().iter().all(|f| f["level"] != "fail"), "{json}");
}

#[tokio::test(flavor = "multi_thread")]
async fn diag_fails_on_a_broken_setup_and_names_every_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let env_file = dir.path().join("avio.env");
    // Nothing runs, the env file is world-readable and its keys are equal.
    let same = avio::secrets::token(40);
    let vars =
        [("DATA_DIR", data_dir.to_str().unwrap()), ("ADMIN_TOKEN", same.as_str()), ("PUBLIC_KEY", same.as_str())];
    write_env(&env_file, &vars, 0o644);
    let out = avioctl(&env_file, &closed_url(), &["diag"]).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for expected in [
        "FAIL  config      configuration error: PUBLIC_KEY: must differ from ADMIN_TOKEN",
        "FAIL  secrets     PUBLIC_KEY equals ADMIN_TOKEN",
        "is readable by every user (mode 644)",
        "chmod 0640",
        "FAIL  health      the daemon does not answer",
        "fix: start it: sudo systemctl start avio",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    for line in report.lines().filter(|l| l.starts_with("FAIL") || l.starts_with("WARN")) {
        let next = report.lines().skip_while(|l| *l != line).nth(1).unwrap_or("");
        assert!(next.trim_start().starts_with("fix: "), "{line:?} has no fix");
    }

    // A running daemon with a placeholder token and an open data directory.
    let placeholder = "changeme-changeme-changeme";
    let vars = [("DATA_DIR", data_dir.to_str().unwrap()), ("ADMIN_TOKEN", placeholder)];
    write_env(&env_file, &vars, 0o600);
    let daemon = Daemon::start(&mut serve_command(&data_dir, &vars, &[]));
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = avioctl(&env_file, &daemon.url(""), &["diag"]).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for expected in [
        "FAIL  secrets     ADMIN_TOKEN is a placeholder or default value",
        "WARN  secrets     PUBLIC_KEY is not set",
        "is open to other users (mode 755)",
        "chmod 0700",
        "OK    health",
        "WARN  outbox      OUTBOX_ENABLED=false",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    assert!(!report.contains(placeholder), "diag must not print secrets:\n{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_delivers_a_test_message_and_explains_a_refusal() {
    let recorder = Recorder::new();
    let extensions = avio::app::Extensions {
        drivers: vec![(Channel::Telegram, std::sync::Arc::new(RecordingFactory(recorder.clone())))],
        ..Default::default()
    };
    let app = common::spawn_app_ext(&[("OUTBOX_ENABLED", "true"), ("OUTBOX_WHITELIST", "me")], extensions).await;
    app.tenant_with_key(1).await;
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("avio.env");
    write_env(&env_file, &[("ADMIN_TOKEN", common::ADMIN_TOKEN), ("DATA_DIR", "/nonexistent-avio")], 0o600);

    let args = ["send", "--tenant", "1", "--channel", "telegram", "--to", "me", "--text", "проверка связи"];
    let out = avioctl(&env_file, &app.base, &args).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).starts_with("sent: job "), "{}", text(&out.stdout));
    let sent = recorder.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text.as_deref(), Some("проверка связи"));

    let args = ["send", "--tenant", "1", "--channel", "telegram", "--to", "stranger", "--text", "hi"];
    let out = avioctl(&env_file, &app.base, &args).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not_whitelisted: the recipient is not in OUTBOX_WHITELIST"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(recorder.sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn diag_reports_a_dead_telegram_session_and_peer_flood_kept_across_a_restart() {
    use avio::channels::telegram::files::{self, Alerts, Failure};
    use avio::domain::{TenantId, now_s};

    let install =
        Install::new(&[("TELEGRAM_API_ID", "12345"), ("TELEGRAM_API_HASH", "0123456789abcdef0123456789abcdef")]);
    let (admin, env_file, data_dir) = (install.admin.as_str(), &install.env_file, &install.data_dir);
    // What the daemon kept before it restarted: tenant 1's session died at Telegram,
    // tenant 2 hit PEER_FLOOD an hour ago.
    let sessions = data_dir.join("tg_sessions");
    let failed = Failure { reason: "session_revoked".into(), at: now_s() - 600 };
    files::write_alerts(&sessions, TenantId::new(1).unwrap(), &Alerts { failed: Some(failed), peer_flood_at: None })
        .unwrap();
    let flood = Alerts { failed: None, peer_flood_at: Some(now_s() - 3600) };
    files::write_alerts(&sessions, TenantId::new(2).unwrap(), &flood).unwrap();

    let daemon = install.start();
    for (id, name) in [(1, "Мебель"), (2, "Шторы")] {
        create_tenant(&daemon, admin, id, name).await;
    }
    let out = avioctl(env_file, &daemon.url(""), &["diag"]).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for expected in [
        "FAIL  channels    tenant 1 (Мебель): Telegram session failed (session_revoked) since ",
        "log in again by QR from the cabinet (link: avioctl key get --tenant 1)",
        "WARN  channels    tenant 2 (Шторы): Telegram answered PEER_FLOOD at ",
        "@SpamBot",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    for line in report.lines().filter(|l| (l.starts_with("FAIL") || l.starts_with("WARN")) && l.contains("Telegram")) {
        let next = report.lines().skip_while(|l| *l != line).nth(1).unwrap_or("");
        assert!(next.trim_start().starts_with("fix: "), "{line:?} has no fix");
    }
}
