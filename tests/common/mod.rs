//! Shared test helpers: the real application on a random loopback port with a fresh
//! data directory, and an HTTP client pointed at it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use avio::app::Application;
use avio::config::Config;
use avio::http::AppState;
use serde_json::Value;

pub mod daemon;
pub mod recording;
pub mod tg_script;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const PUBLIC_KEY: &str = "test-public-key-0123456789";

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub state: AppState,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Kept last so the directory outlives the app.
    _dir: Option<tempfile::TempDir>,
}

/// Variables every test app starts with; `overrides` replace or add (an empty value
/// removes a variable).
pub fn base_vars(data_dir: &Path) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    vars.insert("BIND".into(), "127.0.0.1:0".into());
    vars.insert("DATA_DIR".into(), data_dir.display().to_string());
    vars.insert("ADMIN_TOKEN".into(), ADMIN_TOKEN.into());
    vars.insert("PUBLIC_KEY".into(), PUBLIC_KEY.into());
    vars
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_in(dir.path(), overrides).await;
    app._dir = Some(dir);
    app
}

/// Starts an app with injected parts (a recording channel driver, a bot).
pub async fn spawn_app_ext(overrides: &[(&str, &str)], extensions: avio::app::Extensions) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_full(dir.path(), overrides, extensions).await;
    app._dir = Some(dir);
    app
}

/// Starts an app on an existing data directory (restart tests).
pub async fn spawn_app_in(data_dir: &Path, overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_full(data_dir, overrides, avio::app::Extensions::default()).await
}

pub async fn spawn_app_full(data_dir: &Path, overrides: &[(&str, &str)], extensions: avio::app::Extensions) -> TestApp {
    init_test_log();
    let mut vars = base_vars(data_dir);
    for (k, v) in overrides {
        if v.is_empty() {
            vars.remove(*k);
        } else {
            vars.insert(k.to_string(), v.to_string());
        }
    }
    let config = Config::from_vars(&vars).expect("test config");
    let app = Application::build_with(config, extensions).await.expect("build app");
    let port = app.port();
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        port,
        data_dir: data_dir.to_path_buf(),
        state,
        http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
        shutdown,
        handle: Some(handle),
        _dir: None,
    }
}

fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        avio::telemetry::init(avio::config::LogFormat::Text);
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the app gracefully and waits until it has let go of its stores.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
        // The redb writer thread exits once every handle is gone.
        drop(self.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).header("X-Admin-Token", ADMIN_TOKEN).send().await.unwrap();
        split(r).await
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.http.post(self.url(path)).header("X-Admin-Token", ADMIN_TOKEN).json(body).send().await.unwrap();
        split(r).await
    }

    pub async fn admin_delete(&self, path: &str) -> (u16, Value) {
        let r = self.http.delete(self.url(path)).header("X-Admin-Token", ADMIN_TOKEN).send().await.unwrap();
        split(r).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        split(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        split(self.http.post(self.url(path)).json(body).send().await.unwrap()).await
    }

    /// Creates tenant `id` and returns its key.
    pub async fn tenant_with_key(&self, id: i64) -> String {
        let (status, _) = self
            .admin_post(
                "/admin/tenants",
                &serde_json::json!({"id": id, "name": format!("Tenant {id}"),
                "passport": {"brand": "Уютный дом", "agent_name": "Анна", "city": "Казань"}}),
            )
            .await;
        assert_eq!(status, 201);
        let (status, body) = self.admin_get(&format!("/admin/key/get?tenant={id}")).await;
        assert_eq!(status, 200);
        body["key"].as_str().unwrap().to_string()
    }

    /// The tenant's provider token.
    pub async fn provider_token(&self, id: i64) -> String {
        let (status, body) = self.admin_get(&format!("/admin/provider-token/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body["provider_token"].as_str().unwrap().to_string()
    }
}

/// Opens the app's SQLite database for assertions (WAL allows a second reader).
pub fn db(data_dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data_dir.join("avio.db")).unwrap()
}

pub fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub async fn split(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
