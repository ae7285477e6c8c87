//! A fake Avito for the tests: a small axum app on a random loopback port that speaks
//! Avito's real paths and JSON shapes (token grants, accounts/self, messenger v1/v2/v3,
//! webhooks, image upload) and the authorize page, and records what Avio did.
//! Like Avito, it answers an expired or unknown access token with 403.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const ACCOUNT_ID: i64 = 4242;
pub const ACCOUNT_EMAIL: &str = "shop@example.org";
/// The agency app (`AVITO_CLIENT_ID`/`AVITO_CLIENT_SECRET`).
pub const APP_ID: &str = "agency-app-id";
pub const APP_SECRET: &str = "agency-app-secret-0123456789";
/// A tenant's own Avito Pro app.
pub const OWN_ID: &str = "own-client-id";
pub const OWN_SECRET: &str = "own-client-secret-0123456789";
/// Bytes served at `/files/photo.jpg`.
pub const PHOTO: &[u8] = b"\xff\xd8\xff\xe0fake-jpeg-bytes";

#[derive(Debug, Clone)]
pub struct FakeMessage {
    pub id: String,
    pub author_id: i64,
    pub text: String,
    pub created: i64,
    pub is_read: bool,
}

#[derive(Debug, Clone)]
pub struct FakeChat {
    pub id: String,
    pub item_id: i64,
    pub user_id: i64,
    pub user_name: String,
    /// Oldest first.
    pub messages: Vec<FakeMessage>,
}

/// A message Avio sent (`kind` is `text` or `image`).
#[derive(Debug, Clone)]
pub struct Sent {
    pub chat: String,
    pub kind: String,
    pub text: String,
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub field: String,
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub image_id: String,
}

/// One request as Avio made it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Default)]
pub struct World {
    /// Where `/oauth` sends the browser back (Avio's callback).
    pub redirect_uri: String,
    pub codes: HashMap<String, String>,
    pub access_tokens: HashSet<String>,
    pub refresh_tokens: HashSet<String>,
    /// Form bodies posted to `/token/`.
    pub token_requests: Vec<HashMap<String, String>>,
    /// When set, refresh grants answer this status.
    pub refuse_refresh: Option<u16>,
    /// When set, `POST /messenger/v3/webhook` answers this status.
    pub webhook_status: Option<u16>,
    pub webhooks: Vec<String>,
    pub chats: Vec<FakeChat>,
    pub sent: Vec<Sent>,
    pub reads: Vec<String>,
    pub uploads: Vec<Upload>,
    pub calls: Vec<Call>,
    counter: u64,
}

impl World {
    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    fn issue(&mut self, with_refresh: bool) -> Value {
        let access = self.next("access-");
        self.access_tokens.insert(access.clone());
        let mut grant = json!({"access_token": access, "expires_in": 86400, "token_type": "Bearer"});
        if with_refresh {
            let refresh = self.next("refresh-");
            self.refresh_tokens.insert(refresh.clone());
            grant["refresh_token"] = json!(refresh);
            grant["scope"] = json!("messenger:read,messenger:write,user:read");
        }
        grant
    }

    fn record(&mut self, method: &str, path: &str, status: u16) {
        self.calls.push(Call { method: method.into(), path: path.into(), status });
    }
}

pub struct FakeAvito {
    pub base: String,
    world: Arc<Mutex<World>>,
}

type Shared = Arc<Mutex<World>>;

fn lock(world: &Shared) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeAvito {
    pub async fn start() -> FakeAvito {
        let world: Shared = Arc::default();
        let app = Router::new()
            .route("/oauth", get(authorize))
            .route("/token/", post(token))
            .route("/core/v1/accounts/self", get(account_self))
            .route("/messenger/v3/webhook", post(set_webhook))
            .route("/messenger/v1/subscriptions", post(subscriptions))
            .route("/messenger/v1/webhook/unsubscribe", post(unsubscribe))
            .route("/messenger/v2/accounts/{account}/chats", get(chats))
            .route("/messenger/v3/accounts/{account}/chats/{chat}/messages/", get(messages))
            .route("/messenger/v1/accounts/{account}/chats/{chat}/messages", post(send_text))
            .route("/messenger/v1/accounts/{account}/chats/{chat}/messages/image", post(send_image))
            .route("/messenger/v1/accounts/{account}/chats/{chat}/read", post(read))
            .route("/messenger/v1/accounts/{account}/uploadImages", post(upload_images))
            .route("/files/photo.jpg", get(|| async { ([(header::CONTENT_TYPE, "image/jpeg")], PHOTO) }))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeAvito { base, world }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    /// Every access token issued so far stops working (Avito answers 403).
    pub fn expire_access_tokens(&self) {
        self.world().access_tokens.clear();
    }

    /// A chat with one lead and its messages (oldest first).
    pub fn add_chat(&self, chat: FakeChat) {
        self.world().chats.push(chat);
    }

    /// A new message in an existing chat (one whose webhook "never arrived").
    pub fn push_message(&self, chat: &str, message: FakeMessage) {
        let mut world = self.world();
        let found = world.chats.iter_mut().find(|c| c.id == chat).expect("chat exists");
        found.messages.push(message);
    }

    pub fn sent_to(&self, chat: &str) -> Vec<Sent> {
        self.world().sent.iter().filter(|s| s.chat == chat).cloned().collect()
    }
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string()
}

fn error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap();
    (code, axum::Json(json!({"error": {"code": status, "message": message}}))).into_response()
}

/// Checks the token (403 like Avito for an expired one) and the account in the path.
fn authorize_call(
    world: &mut World,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    account: Option<i64>,
) -> Result<String, u16> {
    let token = bearer(headers);
    let status = if !world.access_tokens.contains(&token) {
        403
    } else if account.is_some_and(|a| a != ACCOUNT_ID) {
        404
    } else {
        200
    };
    world.record(method, path, status);
    if status == 200 { Ok(token) } else { Err(status) }
}

async fn authorize(State(world): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut world = lock(&world);
    let valid = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("client_id").map(String::as_str) == Some(APP_ID)
        && q.get("scope").is_some_and(|s| s.contains("messenger:read") && s.contains("messenger:write"));
    if !valid {
        return (StatusCode::BAD_REQUEST, "bad authorize request").into_response();
    }
    // The user approves at once.
    let code = world.next("code-");
    world.codes.insert(code.clone(), APP_ID.into());
    let state = q.get("state").cloned().unwrap_or_default();
    let target = format!(
        "{}?{}",
        world.redirect_uri,
        serde_urlencoded::to_string([("code", code.as_str()), ("state", state.as_str())]).unwrap()
    );
    (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
}

async fn token(State(world): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut world = lock(&world);
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
    world.token_requests.push(form.clone());
    if !form_encoded {
        return error(400, "form encoding expected");
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (id, secret) = (field("client_id"), field("client_secret"));
    let app_ok = id == APP_ID && secret == APP_SECRET;
    let own_ok = id == OWN_ID && secret == OWN_SECRET;
    let grant = match field("grant_type").as_str() {
        "client_credentials" if app_ok || own_ok => world.issue(false),
        "authorization_code" if app_ok && world.codes.remove(&field("code")).is_some() => world.issue(true),
        "refresh_token" if app_ok => {
            if let Some(status) = world.refuse_refresh {
                return (StatusCode::from_u16(status).unwrap(), axum::Json(json!({"error": "invalid_grant"})))
                    .into_response();
            }
            // Avito issues a new refresh token and the old one stops working.
            if !world.refresh_tokens.remove(&field("refresh_token")) {
                return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
            }
            world.issue(true)
        }
        _ => return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_client"}))).into_response(),
    };
    axum::Json(grant).into_response()
}

async fn account_self(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let mut world = lock(&world);
    if let Err(denied) = authorize_call(&mut world, &headers, "GET", "/core/v1/accounts/self", None) {
        return error(denied, "forbidden");
    }
    axum::Json(json!({"id": ACCOUNT_ID, "name": "Мебель Казань", "email": ACCOUNT_EMAIL, "phone": "79990000000",
                      "profile_url": "https://www.avito.ru/user/abc/profile"}))
    .into_response()
}

async fn set_webhook(State(world): State<Shared>, headers: HeaderMap, body: axum::Json<Value>) -> Response {
    let mut world = lock(&world);
    if let Some(status) = world.webhook_status {
        world.record("POST", "/messenger/v3/webhook", status);
        return error(status, "not found");
    }
    if let Err(denied) = authorize_call(&mut world, &headers, "POST", "/messenger/v3/webhook", None) {
        return error(denied, "forbidden");
    }
    let url = body.get("url").and_then(Value::as_str).unwrap_or("").to_string();
    if !world.webhooks.contains(&url) {
        world.webhooks.push(url);
    }
    axum::Json(json!({"ok": true})).into_response()
}

async fn subscriptions(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let mut world = lock(&world);
    if let Err(denied) = authorize_call(&mut world, &headers, "POST", "/messenger/v1/subscriptions", None) {
        return error(denied, "forbidden");
    }
    let list: Vec<Value> = world.webhooks.iter().map(|u| json!({"url": u, "version": "3"})).collect();
    axum::Json(json!({"subscriptions": list})).into_response()
}

async fn unsubscribe(State(world): State<Shared>, headers: HeaderMap, body: axum::Json<Value>) -> Response {
    let mut world = lock(&world);
    if let Err(denied) = authorize_call(&mut world, &headers, "POST", "/messenger/v1/webhook/unsubscribe", None) {
        return error(denied, "forbidden");
    }
    let url = body.get("url").and_then(Value::as_str).unwrap_or("").to_string();
    world.webhooks.retain(|u| *u != url);
    axum::Json(json!({"ok": true})).into_response()
}

fn message_json(m: &FakeMessage) -> Value {
    let direction = if m.author_id == ACCOUNT_ID { "out" } else { "in" };
    json!({"id": m.id, "author_id": m.author_id, "created": m.created, "direction": direction,
           "is_read": m.is_read, "type": "text", "content": {"text": m.text}})
}

async fn chats(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(account): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut world = lock(&world);
    let path = format!("/messenger/v2/accounts/{account}/chats");
    if let Err(denied) = authorize_call(&mut world, &headers, "GET", &path, Some(account)) {
        return error(denied, "forbidden");
    }
    let unread_only = q.get("unread_only").map(String::as_str) == Some("true");
    let list: Vec<Value> = world
        .chats
        .iter()
        .filter(|c| !unread_only || c.messages.iter().any(|m| !m.is_read && m.author_id != ACCOUNT_ID))
        .map(|c| {
            let last = c.messages.last().map(message_json).unwrap_or(Value::Null);
            json!({"id": c.id, "created": 1, "updated": 2,
                   "context": {"type": "item", "value": {"id": c.item_id, "title": "Диван угловой",
                               "price_string": "45 000 ₽", "url": "https://www.avito.ru/kazan/mebel/divan"}},
                   "users": [{"id": c.user_id, "name": c.user_name}, {"id": ACCOUNT_ID, "name": "Мебель Казань"}],
                   "last_message": last})
        })
        .collect();
    axum::Json(json!({"chats": list})).into_response()
}

async fn messages(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((account, chat)): Path<(i64, String)>,
) -> Response {
    let mut world = lock(&world);
    let path = format!("/messenger/v3/accounts/{account}/chats/{chat}/messages/");
    if let Err(denied) = authorize_call(&mut world, &headers, "GET", &path, Some(account)) {
        return error(denied, "forbidden");
    }
    let Some(found) = world.chats.iter().find(|c| c.id == chat) else { return error(404, "chat not found") };
    // Newest first, as Avito lists them; the spec's `Messages` is a bare array.
    let list: Vec<Value> = found.messages.iter().rev().map(message_json).collect();
    axum::Json(Value::Array(list)).into_response()
}

fn chat_exists(world: &World, chat: &str) -> bool {
    world.chats.iter().any(|c| c.id == chat)
}

async fn send_text(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((account, chat)): Path<(i64, String)>,
    body: axum::Json<Value>,
) -> Response {
    let mut world = lock(&world);
    let path = format!("/messenger/v1/accounts/{account}/chats/{chat}/messages");
    let token = match authorize_call(&mut world, &headers, "POST", &path, Some(account)) {
        Ok(token) => token,
        Err(denied) => return error(denied, "forbidden"),
    };
    let text = body.pointer("/message/text").and_then(Value::as_str).unwrap_or("").to_string();
    if body.get("type").and_then(Value::as_str) != Some("text") || text.is_empty() {
        return error(400, "type text with message.text expected");
    }
    // Avito's documented limit.
    if text.chars().count() > 1000 {
        return error(400, "text is longer than 1000 characters");
    }
    if !chat_exists(&world, &chat) {
        return error(404, "chat not found");
    }
    let id = world.next("out-");
    world.sent.push(Sent { chat, kind: "text".into(), text: text.clone(), token });
    axum::Json(json!({"id": id, "content": {"text": text}, "created": 1715683300, "direction": "out", "type": "text"}))
        .into_response()
}

async fn send_image(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((account, chat)): Path<(i64, String)>,
    body: axum::Json<Value>,
) -> Response {
    let mut world = lock(&world);
    let path = format!("/messenger/v1/accounts/{account}/chats/{chat}/messages/image");
    let token = match authorize_call(&mut world, &headers, "POST", &path, Some(account)) {
        Ok(token) => token,
        Err(denied) => return error(denied, "forbidden"),
    };
    let image_id = body.get("image_id").and_then(Value::as_str).unwrap_or("").to_string();
    if !world.uploads.iter().any(|u| u.image_id == image_id) {
        return error(400, "unknown image_id");
    }
    if !chat_exists(&world, &chat) {
        return error(404, "chat not found");
    }
    let id = world.next("out-");
    world.sent.push(Sent { chat, kind: "image".into(), text: image_id, token });
    axum::Json(json!({"id": id, "created": 1715683300, "direction": "out", "type": "image"})).into_response()
}

async fn read(State(world): State<Shared>, headers: HeaderMap, Path((account, chat)): Path<(i64, String)>) -> Response {
    let mut world = lock(&world);
    let path = format!("/messenger/v1/accounts/{account}/chats/{chat}/read");
    if let Err(denied) = authorize_call(&mut world, &headers, "POST", &path, Some(account)) {
        return error(denied, "forbidden");
    }
    if let Some(found) = world.chats.iter_mut().find(|c| c.id == chat) {
        found.messages.iter_mut().for_each(|m| m.is_read = true);
    }
    world.reads.push(chat);
    axum::Json(json!({"ok": true})).into_response()
}

async fn upload_images(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(account): Path<i64>,
    mut multipart: Multipart,
) -> Response {
    {
        let mut world = lock(&world);
        let path = format!("/messenger/v1/accounts/{account}/uploadImages");
        if let Err(denied) = authorize_call(&mut world, &headers, "POST", &path, Some(account)) {
            return error(denied, "forbidden");
        }
    }
    let mut parts = Vec::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().unwrap_or("").to_string();
        let content_type = field.content_type().unwrap_or("").to_string();
        let bytes = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        parts.push((name, filename, content_type, bytes));
    }
    let mut world = lock(&world);
    // One image per request, in `uploadfile[]`.
    if parts.len() != 1 || parts[0].0 != "uploadfile[]" {
        return error(400, "one uploadfile[] part expected");
    }
    let (field, filename, content_type, bytes) = parts.remove(0);
    let image_id = world.next("img.");
    world.uploads.push(Upload { field, filename, content_type, bytes, image_id: image_id.clone() });
    let mut answer = serde_json::Map::new();
    answer.insert(image_id, json!({"1280x960": "https://img.example/1280x960/photo.jpg"}));
    axum::Json(Value::Object(answer)).into_response()
}
