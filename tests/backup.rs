//! `avioctl backup` / `avioctl restore` through the real binaries, and the automatic
//! snapshot taken before migrations: every tenant, key, message, dialog state and
//! session file comes back, a damaged archive changes nothing, a running daemon is
//! never restored over.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::daemon::{Daemon, serve_command};
use common::{ADMIN_TOKEN, PUBLIC_KEY, eventually, file_mode};
use serde_json::{Value, json};

/// `avioctl` with a clean environment pointed at `data_dir` and `url`.
fn avioctl(data_dir: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_avioctl"))
        .env_clear()
        .env("DATA_DIR", data_dir)
        .env("AVIO_URL", url)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("PUBLIC_KEY", PUBLIC_KEY)
        .args(args)
        .output()
        .unwrap()
}

async fn avioctl_async(data_dir: &Path, url: &str, args: &[&str]) -> Output {
    let (data_dir, url) = (data_dir.to_path_buf(), url.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        avioctl(&data_dir, &url, &args)
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn start(data_dir: &Path) -> Daemon {
    Daemon::start(&mut serve_command(data_dir, &[("ADMIN_TOKEN", ADMIN_TOKEN), ("PUBLIC_KEY", PUBLIC_KEY)], &[]))
}

/// A URL where nothing listens: the port of a listener that was just closed.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(daemon: &Daemon) -> Api {
        Api { base: daemon.url(""), http: reqwest::Client::new() }
    }
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).header("X-Admin-Token", ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        common::split(request.send().await.unwrap()).await
    }
    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.admin(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.admin(reqwest::Method::POST, path, Some(body)).await
    }
}

/// What a restore must bring back, read through the API.
#[derive(Debug, PartialEq)]
struct Visible {
    tenants: Value,
    keys: Vec<String>,
    provider_tokens: Vec<String>,
    dialog_texts: Vec<Vec<String>>,
    takeovers: Vec<bool>,
}

async fn visible(api: &Api, tenants: &[(i64, i64)]) -> Visible {
    let mut out = Visible {
        tenants: api.get("/admin/tenants").await["tenants"].clone(),
        keys: Vec::new(),
        provider_tokens: Vec::new(),
        dialog_texts: Vec::new(),
        takeovers: Vec::new(),
    };
    for &(tenant, contact) in tenants {
        let key = api.get(&format!("/admin/key/get?tenant={tenant}")).await["key"].as_str().unwrap().to_string();
        out.provider_tokens
            .push(api.get(&format!("/admin/provider-token/{tenant}")).await["provider_token"].as_str().unwrap().into());
        let dialog: Value = api
            .http
            .get(format!("{}/pub/dialogs/{contact}?tenant={tenant}&k={key}", api.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.dialog_texts.push(
            dialog["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["text"].as_str().map(str::to_string))
                .collect(),
        );
        out.takeovers.push(dialog["state"]["takeover"] == true);
        out.keys.push(key);
    }
    out
}

/// Tenant `id` with a key, a provider token and one WhatsApp lead whose dialog an
/// operator took over (dialog state lives in redb). Returns the contact id.
async fn tenant_with_a_lead(api: &Api, id: i64, phone: &str) -> i64 {
    let (status, body) = api
        .post(
            "/admin/tenants",
            json!({"id": id, "name": format!("Клиент {id}"), "passport": {"brand": "Уют", "city": "Казань"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key = api.get(&format!("/admin/key/get?tenant={id}")).await["key"].as_str().unwrap().to_string();
    let token = api.get(&format!("/admin/provider-token/{id}")).await["provider_token"].as_str().unwrap().to_string();
    let message = json!({"event": "messages.incoming", "tenant": id, "provider": "whatsapp", "channel": "whatsapp",
        "message_id": format!("wamid.{id}"), "from": phone, "text": format!("Сколько стоит диван? ({id})"), "ts": 1715683200});
    let r = api.http.post(format!("{}/webhook?token={token}", api.base)).json(&message).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let contact = eventually(Duration::from_secs(30), || async {
        let list: Value = api
            .http
            .get(format!("{}/pub/dialogs?tenant={id}&k={key}", api.base))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        list["dialogs"].as_array()?.first()?["contact_id"].as_i64()
    })
    .await;
    let r =
        api.http.post(format!("{}/pub/dialogs/{contact}/takeover?tenant={id}&k={key}", api.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    contact
}

/// Session files as the channels leave them, plus a Chromium cache the backup skips.
fn session_files(data_dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let files = vec![
        (data_dir.join("tg_sessions/1.session"), b"telegram session 1".to_vec()),
        (data_dir.join("tg_sessions/2.session"), b"telegram session 2".to_vec()),
        (data_dir.join("wa_state/1/DO_NOT_DELETE.txt"), b"This is a WhatsApp session".to_vec()),
        (
            data_dir.join("wa_state/1/Default/Local Storage/leveldb/000003.log"),
            (0..=255u8).cycle().take(70_000).collect(),
        ),
        (
            data_dir.join("wa_state/1/Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/CURRENT"),
            b"MANIFEST-000001\n".to_vec(),
        ),
        (data_dir.join("tenants/1/persona.md"), "Ты — {AGENT_NAME}, консультант {BRAND}.".as_bytes().to_vec()),
    ];
    for (path, bytes) in &files {
        avio::store::fsutil::write_private(path, bytes).unwrap();
    }
    avio::store::fsutil::write_private(&data_dir.join("wa_state/1/Default/Cache/Cache_Data/data_0"), &[7u8; 4096])
        .unwrap();
    files
}

fn wipe(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) }.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_wipe_restore_brings_every_tenant_key_message_and_session_back() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let archive = dir.path().join("avio-backup.tar.zst");
    let mut daemon = start(&data_dir);
    let api = Api::new(&daemon);
    let contact_1 = tenant_with_a_lead(&api, 1, "79991234567").await;
    let contact_2 = tenant_with_a_lead(&api, 2, "79997654321").await;
    let files = session_files(&data_dir);
    let before = visible(&api, &[(1, contact_1), (2, contact_2)]).await;
    assert_eq!(before.takeovers, [true, true]);
    assert!(before.dialog_texts[0].iter().any(|t| t.contains("Сколько стоит диван? (1)")), "{before:?}");

    // Online: the daemon snapshots its databases while it keeps running.
    let out = avioctl_async(&data_dir, &daemon.url(""), &["backup", archive.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("online snapshot"), "{}", text(&out.stdout));
    assert_eq!(file_mode(&archive), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(data_dir.join("backups")).unwrap().collect();
    assert!(leftovers.is_empty(), "snapshot directories left behind: {leftovers:?}");

    let manifest = avio::ops::backup::verify(&archive).unwrap();
    assert_eq!(manifest.format, avio::ops::backup::FORMAT);
    assert_eq!(manifest.source, "online");
    assert_eq!(manifest.avio_version, env!("CARGO_PKG_VERSION"));
    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    for expected in [
        "data/avio.db",
        "data/queues.redb",
        "data/tenants/1/tenant.json",
        "data/tenants/2/provider_token.json",
        "data/tg_sessions/2.session",
        "data/wa_state/1/Default/Local Storage/leveldb/000003.log",
    ] {
        assert!(paths.contains(&expected), "{expected} missing from {paths:?}");
    }
    assert!(!paths.iter().any(|p| p.contains("/Cache/")), "a Chromium cache was archived: {paths:?}");
    assert!(manifest.files.iter().all(|f| f.sha256.len() == 64));

    // A running daemon is never restored over.
    let out = avioctl_async(&data_dir, &daemon.url(""), &["restore", archive.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("stop it first"), "{}", text(&out.stderr));

    daemon.terminate();
    wipe(&data_dir);
    let out = avioctl_async(&data_dir, &closed_url(), &["restore", archive.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("2 tenants"), "{}", text(&out.stdout));

    for (path, bytes) in &files {
        assert_eq!(&std::fs::read(path).unwrap(), bytes, "{}", path.display());
        assert_eq!(file_mode(path), 0o600, "{}", path.display());
    }
    assert_eq!(file_mode(&data_dir.join("wa_state/1")), 0o700);
    assert!(!data_dir.join("wa_state/1/Default/Cache").exists());

    let daemon = start(&data_dir);
    let after = visible(&Api::new(&daemon), &[(1, contact_1), (2, contact_2)]).await;
    assert_eq!(after, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_backup_of_a_stopped_daemon_restores_into_a_new_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (dir.path().join("old"), dir.path().join("new"));
    let archive = dir.path().join("offline.tar.zst");
    let mut daemon = start(&old_dir);
    let api = Api::new(&daemon);
    let contact = tenant_with_a_lead(&api, 7, "79990001122").await;
    let before = visible(&api, &[(7, contact)]).await;
    daemon.terminate();

    let out = avioctl_async(&old_dir, &closed_url(), &["backup", archive.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("offline snapshot"), "{}", text(&out.stdout));
    // The source is only read: no copies left, and the live files are as they were.
    assert!(std::fs::read_dir(old_dir.join("backups")).unwrap().next().is_none());

    let out = avioctl_async(&new_dir, &closed_url(), &["restore", archive.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let daemon = start(&new_dir);
    assert_eq!(visible(&Api::new(&daemon), &[(7, contact)]).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_refuses_to_copy_a_running_daemons_files_without_asking_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let _daemon = start(&data_dir);
    // Wrong URL: avioctl cannot ask the daemon, and the files are locked.
    let out =
        avioctl_async(&data_dir, &closed_url(), &["backup", dir.path().join("x.tar.zst").to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("daemon is running"), "{}", text(&out.stderr));
    assert!(!dir.path().join("x.tar.zst").exists());
}

/// Rewrites the archive with one byte of `victim` flipped (the manifest unchanged).
fn tamper(archive: &Path, victim: &str, out: &Path) {
    let mut tar = tar::Archive::new(zstd::Decoder::new(std::fs::File::open(archive).unwrap()).unwrap());
    let encoder = zstd::Encoder::new(std::fs::File::create(out).unwrap(), 3).unwrap();
    let mut builder = tar::Builder::new(encoder);
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if path == victim {
            bytes[0] ^= 1;
        }
        let mut header = entry.header().clone();
        builder.append_data(&mut header, &path, &bytes[..]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_refuses_a_damaged_or_foreign_archive_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let archive = dir.path().join("good.tar.zst");
    let mut daemon = start(&data_dir);
    let api = Api::new(&daemon);
    tenant_with_a_lead(&api, 3, "79993334455").await;
    let out = avioctl_async(&data_dir, &daemon.url(""), &["backup", archive.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    daemon.terminate();
    let db_before = std::fs::read(data_dir.join("avio.db")).unwrap();

    let damaged = dir.path().join("damaged.tar.zst");
    tamper(&archive, "data/tenants/3/tenant.json", &damaged);
    let out = avioctl_async(&data_dir, &closed_url(), &["restore", damaged.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("data/tenants/3/tenant.json does not match its checksum"),
        "{}",
        text(&out.stderr)
    );

    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, "not a backup").unwrap();
    let out = avioctl_async(&data_dir, &closed_url(), &["restore", foreign.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not an Avio backup"), "{}", text(&out.stderr));

    assert_eq!(std::fs::read(data_dir.join("avio.db")).unwrap(), db_before);
    let names: Vec<String> =
        std::fs::read_dir(&data_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.starts_with(".restore-")), "{names:?}");
    let moved_aside = std::fs::read_dir(data_dir.join("backups"))
        .map(|d| d.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().starts_with("pre-restore")))
        .unwrap_or(false);
    assert!(!moved_aside, "a refused restore moved the live state aside");
}

#[test]
fn migrations_run_after_a_snapshot_of_the_old_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("avio.db");
    {
        // A database from before the first migration, holding data.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE legacy (note TEXT); INSERT INTO legacy VALUES ('keep me');").unwrap();
    }
    let store = avio::store::Store::open(&path).unwrap();
    drop(store);
    let snapshots: Vec<PathBuf> =
        std::fs::read_dir(dir.path().join("backups")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let name = snapshots[0].file_name().unwrap().to_string_lossy().into_owned();
    let latest = avio::store::snapshot::latest_version();
    assert!(name.starts_with(&format!("avio.db.pre-v{latest}.")), "{name}");
    assert_eq!(file_mode(&snapshots[0]), 0o600);
    let old = rusqlite::Connection::open(&snapshots[0]).unwrap();
    let note: String = old.query_row("SELECT note FROM legacy", [], |r| r.get(0)).unwrap();
    assert_eq!(note, "keep me");
    let version: u32 = old.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 0);

    // Up to date: no second snapshot. A fresh database: none at all.
    drop(avio::store::Store::open(&path).unwrap());
    assert_eq!(std::fs::read_dir(dir.path().join("backups")).unwrap().count(), 1);
    let fresh = tempfile::tempdir().unwrap();
    drop(avio::store::Store::open(&fresh.path().join("avio.db")).unwrap());
    assert!(!fresh.path().join("backups").exists());
}
