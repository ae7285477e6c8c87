//! A fake WhatsApp Web on loopback for the WhatsApp tests: serves a page with the
//! module surfaces Avio's adapter uses (`fake_wa.js`) and plays WhatsApp's servers
//! behind it: QR refs, pairing by "scan", incoming messages, the phone's logout, and a
//! record of everything the page sent.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>WhatsApp</title></head>
<body><div id="app"></div><script src="/fake_wa.js"></script></body></html>"#;
const SCRIPT: &str = include_str!("fake_wa.js");

/// QR cadence and load delay (the real page: 60 s first, 20 s next).
#[derive(Debug, Clone, Copy)]
pub struct FakeConfig {
    pub first_qr_ms: u64,
    pub next_qr_ms: u64,
    pub debug_delay_ms: u64,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self { first_qr_ms: 1500, next_qr_ms: 1000, debug_delay_ms: 300 }
    }
}

#[derive(Default)]
struct Inner {
    /// ref → device that showed it.
    refs: HashMap<String, String>,
    refs_issued: usize,
    /// phone number → the paired device.
    paired: HashMap<String, String>,
    /// device → events waiting for its long-poll.
    events: HashMap<String, Vec<Value>>,
    /// (me, message) for everything a page sent.
    sent: Vec<(String, Value)>,
    /// Devices that logged out through the page (`Socket.logout()`).
    api_logouts: Vec<String>,
    /// Restored sessions announcing themselves: me per hello.
    hellos: Vec<String>,
    next_id: u64,
}

struct Shared {
    config: FakeConfig,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    files: HashMap<String, (String, Vec<u8>)>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

pub struct FakeWa {
    pub url: String,
    shared: Arc<Shared>,
}

impl FakeWa {
    pub async fn start() -> FakeWa {
        Self::start_with(FakeConfig::default()).await
    }

    pub async fn start_with(config: FakeConfig) -> FakeWa {
        let mut files = HashMap::new();
        files
            .insert("price.pdf".to_string(), ("application/pdf".to_string(), b"%PDF-1.4 fake price list\n".repeat(40)));
        files.insert("sofa.png".to_string(), ("image/png".to_string(), tiny_png()));
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared { config, inner: Mutex::new(Inner::default()), changed, files });
        let router = Router::new()
            .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }))
            .route("/fake_wa.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], SCRIPT) }))
            .route("/api/config", get(config_handler))
            .route("/api/ref", post(ref_handler))
            .route("/api/poll", get(poll_handler))
            .route("/api/hello", post(hello_handler))
            .route("/api/sent", post(sent_handler))
            .route("/api/logout", post(logout_handler))
            .route("/files/{name}", get(file_handler))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeWa { url, shared }
    }

    /// The phone scans `qr` (the string the page encodes); `false` when the ref was
    /// never shown by any page.
    pub fn scan(&self, qr: &str, me: &str) -> bool {
        let reference = qr.split(',').next().unwrap_or("");
        let mut inner = self.shared.lock();
        let Some(device) = inner.refs.get(reference).cloned() else { return false };
        inner.paired.insert(me.to_string(), device.clone());
        inner.events.entry(device).or_default().push(json!({"type": "paired", "me": me}));
        drop(inner);
        self.shared.bump();
        true
    }

    /// A message arrives at the account `me` (`from_me`: the phone wrote it to `peer`).
    /// Returns the message id the page will report.
    pub fn incoming(&self, me: &str, peer: &str, text: &str, from_me: bool) -> String {
        self.push_message(me, peer, json!({"type": "chat", "body": text}), None, from_me)
    }

    /// An incoming media message with its bytes: an `image` for image types, else a
    /// `document`.
    pub fn incoming_media(&self, me: &str, peer: &str, mime: &str, name: &str, bytes: &[u8], caption: &str) -> String {
        use base64::Engine as _;
        let kind = if mime.starts_with("image/") { "image" } else { "document" };
        let media =
            json!({"b64": base64::engine::general_purpose::STANDARD.encode(bytes), "mimetype": mime, "filename": name});
        self.push_message(me, peer, json!({"type": kind, "caption": caption}), Some(media), false)
    }

    fn push_message(&self, me: &str, peer: &str, mut message: Value, media: Option<Value>, from_me: bool) -> String {
        let mut inner = self.shared.lock();
        inner.next_id += 1;
        let id = format!("3A{:018X}", inner.next_id);
        message["id"] = json!(id);
        message["fromMe"] = json!(from_me);
        message["notifyName"] = json!("Лид");
        let jid = format!("{peer}@c.us");
        if from_me {
            message["to"] = json!(jid);
        } else {
            message["from"] = json!(jid);
        }
        let device = inner.paired.get(me).cloned().expect("no device is paired with this number");
        inner.events.entry(device).or_default().push(json!({"type": "incoming", "message": message, "media": media}));
        drop(inner);
        self.shared.bump();
        format!("{from_me}_{jid}_{id}")
    }

    /// The phone logs the linked device out ("Log out" in Linked devices).
    pub fn phone_logout(&self, me: &str) {
        let mut inner = self.shared.lock();
        if let Some(device) = inner.paired.remove(me) {
            inner.events.entry(device).or_default().push(json!({"type": "logout"}));
        }
        drop(inner);
        self.shared.bump();
    }

    /// The page of `me` hangs (an endless loop on its main thread).
    pub fn hang(&self, me: &str) {
        let mut inner = self.shared.lock();
        let device = inner.paired.get(me).cloned().expect("no device is paired with this number");
        inner.events.entry(device).or_default().push(json!({"type": "hang"}));
        drop(inner);
        self.shared.bump();
    }

    /// What the page paired with `me` sent, oldest first.
    pub fn sent(&self, me: &str) -> Vec<Value> {
        self.shared.lock().sent.iter().filter(|(m, _)| m == me).map(|(_, v)| v.clone()).collect()
    }

    pub fn refs_issued(&self) -> usize {
        self.shared.lock().refs_issued
    }

    pub fn api_logouts(&self) -> Vec<String> {
        self.shared.lock().api_logouts.clone()
    }

    pub fn hellos(&self, me: &str) -> usize {
        self.shared.lock().hellos.iter().filter(|m| *m == me).count()
    }

    pub fn is_paired(&self, me: &str) -> bool {
        self.shared.lock().paired.contains_key(me)
    }

    pub fn file_url(&self, name: &str) -> String {
        format!("{}/files/{name}", self.url)
    }

    pub fn file_bytes(&self, name: &str) -> Vec<u8> {
        self.shared.files[name].1.clone()
    }
}

async fn config_handler(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({"version": "2.3000.1017054665-fake", "debug_delay_ms": shared.config.debug_delay_ms}))
}

#[derive(Deserialize)]
struct DeviceBody {
    device: String,
    #[serde(default)]
    me: Option<String>,
}

async fn ref_handler(State(shared): State<Arc<Shared>>, Json(body): Json<DeviceBody>) -> Json<Value> {
    let mut inner = shared.lock();
    let first = !inner.refs.values().any(|d| *d == body.device);
    inner.refs_issued += 1;
    let reference = format!("2@ref{}{}", inner.refs_issued, uuid::Uuid::new_v4().simple());
    inner.refs.insert(reference.clone(), body.device);
    let ttl_ms = if first { shared.config.first_qr_ms } else { shared.config.next_qr_ms };
    Json(json!({"ref": reference, "ttl_ms": ttl_ms}))
}

#[derive(Deserialize)]
struct PollQuery {
    device: String,
}

/// Long-poll: answers as soon as the device has events, or `[]` after a while.
async fn poll_handler(State(shared): State<Arc<Shared>>, Query(query): Query<PollQuery>) -> Json<Value> {
    let mut changed = shared.changed.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = shared.lock().events.remove(&query.device).unwrap_or_default();
        if !events.is_empty() {
            return Json(Value::Array(events));
        }
        if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
            return Json(json!([]));
        }
    }
}

async fn hello_handler(State(shared): State<Arc<Shared>>, Json(body): Json<DeviceBody>) -> Json<Value> {
    let mut inner = shared.lock();
    if let Some(me) = body.me {
        inner.paired.insert(me.clone(), body.device);
        inner.hellos.push(me);
    }
    Json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct SentBody {
    me: Option<String>,
    message: Value,
}

async fn sent_handler(State(shared): State<Arc<Shared>>, Json(body): Json<SentBody>) -> Json<Value> {
    shared.lock().sent.push((body.me.unwrap_or_default(), body.message));
    Json(json!({"ok": true}))
}

async fn logout_handler(State(shared): State<Arc<Shared>>, Json(body): Json<DeviceBody>) -> Json<Value> {
    let mut inner = shared.lock();
    if let Some(me) = &body.me {
        inner.paired.remove(me);
    }
    inner.api_logouts.push(body.device);
    Json(json!({"ok": true}))
}

async fn file_handler(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> impl IntoResponse {
    match shared.files.get(&name) {
        Some((mime, bytes)) => ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// A valid 1×1 PNG.
pub fn tiny_png() -> Vec<u8> {
    vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00,
        0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D,
        0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ]
}
