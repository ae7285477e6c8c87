//! The two binaries, run for real: `avioctl` against a live app, `avio serve` start-up
//! checks, dev-mode secrets and graceful shutdown.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::daemon::{self, Daemon};

use common::*;

fn avioctl(app_url: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_avioctl"))
        .env_clear()
        .env("AVIO_URL", app_url)
        .env("ADMIN_TOKEN", token)
        .env("DATA_DIR", "/nonexistent-avio-test-dir")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn avioctl_manages_tenants_keys_and_tokens() {
    let app = spawn_app().await;
    let url = app.base.clone();
    let run = move |args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || avioctl(&url, ADMIN_TOKEN, args))
    };

    let out = run(&["tenant", "add", "--name", "Мебель", "--id", "4", "--brand", "Уют"]).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("created tenant 4"));

    let out = run(&["tenant", "list"]).await.unwrap();
    assert!(stdout(&out).contains("Мебель"), "{}", stdout(&out));

    let out = run(&["tenant", "show", "4"]).await.unwrap();
    assert!(stdout(&out).contains("\"brand\": \"Уют\""), "{}", stdout(&out));

    let out = run(&["key", "get", "--tenant", "4"]).await.unwrap();
    let key_line = stdout(&out);
    assert!(key_line.contains("/connect/wa?tenant=4&k="), "{key_line}");
    let (_, body) = app.admin_get("/admin/key/get?tenant=4").await;
    assert!(key_line.contains(body["key"].as_str().unwrap()));

    let out = run(&["key", "delete", "--tenant", "4"]).await.unwrap();
    assert!(stdout(&out).contains("deleted"));
    let (_, listed) = app.admin_get("/admin/keys/list?tenant=4").await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 0);

    let out = run(&["token", "--tenant", "4"]).await.unwrap();
    assert_eq!(stdout(&out).trim(), app.provider_token(4).await);

    let out = run(&["status"]).await.unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("healthy") && text.contains(ADMIN_TOKEN) && text.contains("/admin"), "{text}");

    let tenant = avio::domain::TenantId::new(4).unwrap();
    app.state.dialogs.update(tenant, 1, |s| s.takeover = true).await.unwrap();
    let out = run(&["state", "reset", "--tenant", "4", "--contact", "1"]).await.unwrap();
    assert_eq!(stdout(&out).trim(), "state reset", "{}", stderr(&out));
    assert!(!app.state.dialogs.get(tenant, 1).await.unwrap().takeover);
    let out = run(&["state", "reset", "--tenant", "4", "--contact", "1"]).await.unwrap();
    assert_eq!(stdout(&out).trim(), "no state to reset");

    let out = run(&["tenant", "show", "99"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tenant_not_found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn avioctl_says_what_to_do_when_the_daemon_is_down_or_the_token_is_wrong() {
    let out = tokio::task::spawn_blocking(|| avioctl("http://127.0.0.1:9", ADMIN_TOKEN, &["status"])).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot reach the daemon"), "{}", stderr(&out));

    let app = spawn_app().await;
    let url = app.base.clone();
    let out =
        tokio::task::spawn_blocking(move || avioctl(&url, "wrong-token-xxxxxxxx", &["tenant", "list"])).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("refused the admin token"), "{}", stderr(&out));

    let out = Command::new(env!("CARGO_BIN_EXE_avioctl"))
        .env_clear()
        .env("DATA_DIR", "/nonexistent-avio-test-dir")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ADMIN_TOKEN is not set"), "{}", stderr(&out));
}

#[test]
fn avioctl_migrate_prints_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_avioctl"))
        .env_clear()
        .env("DATA_DIR", dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("applied now: [1]"), "{text}");
    assert!(text.contains("leads     present") && text.contains("messages  present"), "{text}");
    assert!(text.contains("whatsapp_phone") && text.contains("telegram_user_id"), "{text}");
    assert!(dir.path().join("avio.db").exists());
}

fn serve(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Command {
    daemon::serve_command(dir, envs, args)
}

#[test]
fn equal_public_key_and_admin_token_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve(dir.path(), &[("ADMIN_TOKEN", ADMIN_TOKEN), ("PUBLIC_KEY", ADMIN_TOKEN)], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("PUBLIC_KEY") && err.contains("must differ from ADMIN_TOKEN"), "{err}");
}

#[test]
fn a_malformed_variable_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve(dir.path(), &[("ADMIN_TOKEN", ADMIN_TOKEN), ("LOG_FORMAT", "xml")], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("LOG_FORMAT"), "{}", stderr(&out));
    let out = serve(dir.path(), &[], &[]).output().unwrap();
    assert!(stderr(&out).contains("ADMIN_TOKEN"), "{}", stderr(&out));
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn dev_mode_generates_secrets_once_and_sigterm_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&mut serve(dir.path(), &[], &["--dev"]));
    assert!(http_get(d.port, "/health").starts_with("HTTP/1.1 200"));
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
    let printed: Vec<String> = d.lines.try_iter().collect();
    let secrets_file = dir.path().join("dev-secrets.env");
    assert_eq!(file_mode(&secrets_file), 0o600);
    let stored = avio::config::read_env_file(&secrets_file).unwrap();
    let admin = &stored["ADMIN_TOKEN"];
    assert_ne!(admin, &stored["PUBLIC_KEY"]);
    assert!(printed.iter().any(|l| l.contains(admin.as_str())), "{printed:?}");
    assert!(printed.iter().any(|l| l.contains("/admin")), "{printed:?}");
    assert!(printed.iter().any(|l| l.contains("event=stopped")), "{printed:?}");

    // Second start: same secrets, not printed again.
    let mut d = Daemon::start(&mut serve(dir.path(), &[], &["--dev"]));
    d.terminate();
    let printed: Vec<String> = d.lines.try_iter().collect();
    assert!(!printed.iter().any(|l| l.contains(admin.as_str())), "{printed:?}");
    assert_eq!(avio::config::read_env_file(&secrets_file).unwrap()["ADMIN_TOKEN"], *admin);
}

#[test]
fn serve_reads_an_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("avio.env");
    std::fs::write(
        &env_file,
        format!("# comment\nADMIN_TOKEN={ADMIN_TOKEN}\nPUBLIC_KEY=\"{PUBLIC_KEY}\"\nLOG_FORMAT=json\n"),
    )
    .unwrap();
    let mut d = Daemon::start(&mut serve(dir.path(), &[], &["--env-file", env_file.to_str().unwrap()]));
    let port = d.port;
    let reply = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET /admin/tenants HTTP/1.1\r\nHost: x\r\nX-Admin-Token: {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    };
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    d.terminate();
    let lines: Vec<String> = d.lines.try_iter().collect();
    assert!(lines.iter().any(|l| l.starts_with('{') && l.contains("\"event\":\"stopped\"")), "{lines:?}");
}
