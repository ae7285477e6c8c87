//! Avito Messenger end to end (SPEC 6.3): the real router on a random loopback port,
//! real tenant files and queues, and a fake Avito (`tests/fake_avito`) that speaks
//! Avito's paths and JSON, reached through `AVITO_API_BASE` and `AVITO_AUTH_URL`.

mod common;
mod fake_avito;

use std::sync::Arc;
use std::time::Duration;

use avio::app::Extensions;
use avio::domain::{Channel, MessageIn, TransportMessage};
use avio::http::AppState;
use avio::pipeline::BotHook;
use avio::pipeline::outbox::{Origin, submit};
use avio::store::IngestOutcome;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use common::*;
use fake_avito::{ACCOUNT_EMAIL, ACCOUNT_ID, APP_ID, APP_SECRET, FakeAvito, FakeChat, FakeMessage, OWN_ID, OWN_SECRET};

const TENANT: i64 = 7;
const WAIT: Duration = Duration::from_secs(20);
const WEBHOOK_BASE: &str = "https://hooks.example.org/webhook/avito";
const REPLY: &str = "Здравствуйте! Диван в наличии, доставим завтра.";
const LEAD_ID: i64 = 555;

/// A stand-in for the bot (it lands separately): answers a lead through the real
/// outbox into the conversation the message came from, as the bot will.
struct ReplyBot;

impl BotHook for ReplyBot {
    fn on_message<'a>(
        &'a self,
        state: &'a AppState,
        message: &'a MessageIn,
        stored: &'a IngestOutcome,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if message.from_me || stored.message_row.is_none() {
                return Ok(());
            }
            let reply = TransportMessage {
                tenant: message.tenant,
                channel: message.channel,
                to: message.peer.clone(),
                text: Some(REPLY.into()),
                attachments: Vec::new(),
                reply_to: None,
            };
            submit(state, reply, Origin::Bot, Some(format!("bot:{}", message.dedupe_key())), None).await?;
            Ok(())
        })
    }
}

struct Env {
    app: TestApp,
    fake: FakeAvito,
    key: String,
}

async fn start(bot: bool, extra: &[(&str, &str)]) -> Env {
    let fake = FakeAvito::start().await;
    let auth_url = format!("{}/oauth", fake.base);
    let mut vars: Vec<(&str, &str)> = vec![
        ("AVITO_API_BASE", fake.base.as_str()),
        ("AVITO_AUTH_URL", auth_url.as_str()),
        ("AVITO_CLIENT_ID", APP_ID),
        ("AVITO_CLIENT_SECRET", APP_SECRET),
        ("AVITO_WEBHOOK_URL", WEBHOOK_BASE),
        ("OUTBOX_ENABLED", "true"),
        ("OUTBOX_WHITELIST", "*"),
    ];
    vars.extend_from_slice(extra);
    let extensions = Extensions { bot: bot.then(|| Arc::new(ReplyBot) as Arc<dyn BotHook>), ..Default::default() };
    let app = spawn_app_ext(&vars, extensions).await;
    fake.world().redirect_uri = app.url("/connect/avito/callback");
    let key = app.tenant_with_key(TENANT).await;
    Env { app, fake, key }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

impl Env {
    fn pub_path(&self, path: &str) -> String {
        format!("{path}?tenant={TENANT}&k={}", self.key)
    }

    /// The whole OAuth dance as a browser does it: Avio → Avito's page → callback.
    async fn connect_oauth(&self) {
        let response = self.app.http.get(self.app.url(&self.pub_path("/connect/avito"))).send().await.unwrap();
        let status = response.status().as_u16();
        let page = response.text().await.unwrap();
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Авито подключено"), "{page}");
    }

    async fn connect_own(&self) -> (u16, Value) {
        let body = json!({"client_id": OWN_ID, "client_secret": OWN_SECRET});
        self.app.post(&self.pub_path("/pub/avito/credentials"), &body).await
    }

    async fn status(&self) -> Value {
        let (code, body) = self.app.get(&self.pub_path("/pub/avito/status")).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    fn tenant_json(&self) -> Value {
        let path = self.app.data_dir.join(format!("tenants/{TENANT}/tenant.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    async fn webhook(&self, body: &Value) -> (u16, Value) {
        let token = self.app.provider_token(TENANT).await;
        self.app.post(&format!("/webhook/avito?token={token}"), body).await
    }

    async fn stored(&self, message_id: &str) -> i64 {
        let tenant = avio::domain::TenantId::new(TENANT).unwrap();
        self.app.state.store.count_messages(tenant, Channel::Avito, message_id.to_string()).await.unwrap()
    }

    async fn wait_stored(&self, message_id: &str) {
        eventually(WAIT, || async { (self.stored(message_id).await == 1).then_some(()) }).await;
    }

    async fn send(&self, body: Value) -> Value {
        let (code, answer) = self.app.admin_post("/send?wait=true", &body).await;
        assert_eq!(code, 200, "{answer}");
        answer
    }
}

fn lead_message(id: &str, chat: &str, text: &str) -> Value {
    json!({"id": format!("hook-{id}"), "version": "v3.0.0", "timestamp": 1715683200,
           "payload": {"type": "message", "value": {
               "id": id, "chat_id": chat, "user_id": ACCOUNT_ID, "author_id": LEAD_ID,
               "created": 1715683200, "type": "text", "chat_type": "u2i", "item_id": 98765,
               "content": {"text": text}, "read": null}}})
}

fn chat(id: &str, messages: Vec<FakeMessage>) -> FakeChat {
    FakeChat { id: id.into(), item_id: 98765, user_id: LEAD_ID, user_name: "Ирина".into(), messages }
}

fn unread(id: &str, text: &str) -> FakeMessage {
    FakeMessage {
        id: id.into(),
        author_id: LEAD_ID,
        text: text.into(),
        created: avio::domain::now_s() - 60,
        is_read: false,
    }
}

#[tokio::test]
async fn oauth_connect_stores_tokens_switches_auto_reply_on_and_registers_the_webhook() {
    let env = start(false, &[]).await;
    let response = no_redirects().get(env.app.url(&env.pub_path("/connect/avito"))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("{}/oauth?", env.fake.base)), "{location}");
    let query: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(location.split_once('?').unwrap().1).unwrap();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], APP_ID);
    assert_eq!(query["scope"], "messenger:read,messenger:write,user:read");
    assert!(query["state"].len() >= 32, "{location}");

    // The browser goes on to Avito, which sends it back to the callback.
    let callback = no_redirects().get(&location).send().await.unwrap();
    assert_eq!(callback.status().as_u16(), 302);
    let callback_url = callback.headers()["location"].to_str().unwrap().to_string();
    let page = env.app.http.get(&callback_url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains(ACCOUNT_EMAIL));

    let exchange = env.fake.world().token_requests.last().cloned().unwrap();
    assert_eq!(exchange["grant_type"], "authorization_code");
    assert_eq!(exchange["client_id"], APP_ID);
    let doc = env.tenant_json();
    let avito = &doc["integrations"]["avito"];
    assert_eq!(avito["mode"], "oauth");
    assert!(avito["access_token"].as_str().unwrap().starts_with("access-"));
    assert!(avito["refresh_token"].as_str().unwrap().starts_with("refresh-"));
    assert!(avito["expires_at"].as_i64().unwrap() > avio::domain::now_s() + 3600);
    assert_eq!(avito["account_id"], ACCOUNT_ID.to_string());
    assert_eq!(avito["account_login"], ACCOUNT_EMAIL);
    assert_eq!(doc["behavior"]["auto_reply"], true);
    assert_eq!(doc["behavior"]["auto_reply_enabled"], true);
    let tenant_json = env.app.data_dir.join(format!("tenants/{TENANT}/tenant.json"));
    assert_eq!(file_mode(&tenant_json), 0o600);

    // Webhook registered with the tenant's provider token in its URL.
    let token = env.app.provider_token(TENANT).await;
    assert_eq!(env.fake.world().webhooks, vec![format!("{WEBHOOK_BASE}?token={token}")]);
    let status = env.status().await;
    assert_eq!(status["state"], "connected");
    assert_eq!(status["account_id"], ACCOUNT_ID.to_string());
    assert_eq!(status["account_login"], ACCOUNT_EMAIL);
    assert_eq!(status["webhook"]["state"], "registered");

    // Secrets stay out of the front's view and of the status.
    let (_, settings) = env.app.get(&env.pub_path("/pub/settings/get")).await;
    let shown = format!("{settings}{status}");
    for secret in [avito["access_token"].as_str().unwrap(), avito["refresh_token"].as_str().unwrap(), &token] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert_eq!(settings["cfg"]["integrations"]["avito"]["account_id"], ACCOUNT_ID.to_string());

    // A state works once.
    let (code, body) = split(env.app.http.get(&callback_url).send().await.unwrap()).await;
    assert_eq!((code, body["error"].as_str()), (400, Some("invalid_state")), "{body}");
}

#[tokio::test]
async fn a_forged_or_expired_state_is_rejected() {
    let env = start(false, &[]).await;
    let forged = format!("/connect/avito/callback?code=code-1&state={}", "A".repeat(40));
    let (code, body) = env.app.get(&forged).await;
    assert_eq!((code, body["error"].as_str()), (400, Some("invalid_state")), "{body}");
    let (code, _) = env.app.get("/connect/avito/callback?code=code-1").await;
    assert_eq!(code, 400);

    // A real state past its lifetime.
    let stale = "B".repeat(40);
    let key = format!("avito:oauth_state:{stale}");
    env.app.state.queues.kv_set(&key, TENANT.to_string().as_bytes(), Some(Duration::from_millis(1))).await.unwrap();
    eventually(WAIT, || async { env.app.state.queues.kv_get(&key).await.unwrap().is_none().then_some(()) }).await;
    let (code, body) = env.app.get(&format!("/connect/avito/callback?code=code-1&state={stale}")).await;
    assert_eq!((code, body["error"].as_str()), (400, Some("invalid_state")), "{body}");

    assert!(env.fake.world().token_requests.is_empty());
    assert_eq!(env.status().await["state"], "not_connected");
}

#[tokio::test]
async fn connect_without_the_agency_app_answers_503_and_checks_the_key() {
    let env = start(false, &[("AVITO_CLIENT_ID", ""), ("AVITO_CLIENT_SECRET", "")]).await;
    let (code, body) = env.app.get(&env.pub_path("/connect/avito")).await;
    assert_eq!(code, 503);
    assert_eq!(body["error"], "avito_not_configured");
    assert_eq!(body["ok"], false);
    let (code, body) = env.app.get(&format!("/connect/avito?tenant={TENANT}&k=wrong")).await;
    assert_eq!((code, body), (401, json!({"detail": "invalid_key"})));
}

#[tokio::test]
async fn own_credentials_connect_with_the_client_credentials_grant() {
    let env = start(false, &[("AVITO_CLIENT_ID", ""), ("AVITO_CLIENT_SECRET", "")]).await;
    let bad = json!({"client_id": OWN_ID, "client_secret": "wrong-secret"});
    let (code, body) = env.app.post(&env.pub_path("/pub/avito/credentials"), &bad).await;
    assert_eq!((code, body["error"].as_str()), (400, Some("avito_invalid_credentials")), "{body}");
    let (code, body) = env.app.post(&env.pub_path("/pub/avito/credentials"), &json!({"client_id": OWN_ID})).await;
    assert_eq!((code, body["reason"].as_str()), (422, Some("missing_client_secret")), "{body}");

    let (code, body) = env.connect_own().await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["state"], "connected");
    assert_eq!(body["mode"], "client_credentials");
    assert_eq!(body["webhook"]["state"], "registered");
    let grant = env.fake.world().token_requests.last().cloned().unwrap();
    assert_eq!(grant["grant_type"], "client_credentials");
    assert_eq!(grant["client_id"], OWN_ID);

    let doc = env.tenant_json();
    assert_eq!(doc["integrations"]["avito"]["client_secret"], OWN_SECRET);
    assert_eq!(doc["behavior"]["auto_reply_enabled"], true);
    let (_, settings) = env.app.get(&env.pub_path("/pub/settings/get")).await;
    let shown = format!("{settings}{body}");
    assert!(!shown.contains(OWN_SECRET), "{shown}");
    assert!(!shown.contains(doc["integrations"]["avito"]["access_token"].as_str().unwrap()), "{shown}");
}

#[tokio::test]
async fn a_failed_webhook_registration_shows_in_status_and_refresh_retries_it() {
    let env = start(false, &[]).await;
    env.fake.world().webhook_status = Some(404);
    env.connect_oauth().await;
    let status = env.status().await;
    assert_eq!(status["state"], "connected");
    assert_eq!(status["webhook"]["state"], "failed");
    assert_eq!(status["webhook"]["status"], 404);
    assert!(env.fake.world().webhooks.is_empty());

    env.fake.world().webhook_status = None;
    let (code, body) = env.app.post(&env.pub_path("/pub/avito/refresh"), &json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["webhook"]["state"], "registered");
    let token = env.app.provider_token(TENANT).await;
    assert_eq!(env.fake.world().webhooks, vec![format!("{WEBHOOK_BASE}?token={token}")]);
}

#[tokio::test]
async fn the_admin_lists_subscriptions_and_unsubscribes() {
    let env = start(false, &[]).await;
    env.connect_oauth().await;
    let path = format!("/admin/avito/subscriptions?tenant={TENANT}");
    let (code, body) = env.app.get(&path).await;
    assert_eq!((code, body), (401, json!({"detail": "invalid_admin_token"})));
    let (code, body) = env.app.admin_get(&path).await;
    assert_eq!(code, 200, "{body}");
    let token = env.app.provider_token(TENANT).await;
    assert_eq!(body["subscriptions"], json!([{"url": format!("{WEBHOOK_BASE}?token={token}"), "version": "3"}]));
    let (code, _) = env.app.admin_get("/admin/avito/subscriptions?tenant=99").await;
    assert_eq!(code, 404);

    let (code, body) = env.app.admin_post(&format!("/admin/avito/unsubscribe?tenant={TENANT}"), &json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert!(env.fake.world().webhooks.is_empty());
    assert_eq!(env.status().await["webhook"]["state"], "unsubscribed");
}

#[tokio::test]
async fn the_webhook_needs_a_provider_token_and_answers_avitos_empty_check() {
    let env = start(false, &[]).await;
    env.connect_oauth().await;
    let body = lead_message("m1", "u2i-chat1", "Здравствуйте");
    for path in ["/webhook/avito", "/webhook/avito?token=wrong"] {
        let (code, answer) = env.app.post(path, &body).await;
        assert_eq!((code, answer), (401, json!({"ok": false, "error": "invalid_provider_token"})));
    }
    let (code, answer) = env.webhook(&json!({})).await;
    assert_eq!((code, answer["ok"].as_bool()), (200, Some(true)), "{answer}");
    assert_eq!(env.stored("m1").await, 0);
}

#[tokio::test]
async fn an_avito_leads_message_gets_the_bots_reply_in_the_same_chat() {
    let env = start(true, &[]).await;
    env.connect_oauth().await;
    env.fake.add_chat(chat("u2i-chat1", vec![unread("m1", "Здравствуйте, диван в наличии?")]));
    env.fake.add_chat(chat("u2i-other", Vec::new()));

    let (code, answer) = env.webhook(&lead_message("m1", "u2i-chat1", "Здравствуйте, диван в наличии?")).await;
    assert_eq!((code, answer), (200, json!({"ok": true, "queued": true})));
    let sent = eventually(WAIT, || async {
        let sent = env.fake.sent_to("u2i-chat1");
        (!sent.is_empty() && !env.fake.world().reads.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, REPLY);
    assert_eq!(env.fake.world().reads, vec!["u2i-chat1".to_string()]);
    assert!(env.fake.sent_to("u2i-other").is_empty());

    // The lead is one contact linked by its Avito user id; a redelivery changes nothing.
    assert_eq!(env.stored("m1").await, 1);
    let (code, answer) = env.webhook(&lead_message("m1", "u2i-chat1", "Здравствуйте, диван в наличии?")).await;
    assert_eq!((code, answer["duplicate"].as_bool()), (200, Some(true)));
    let db = rusqlite::Connection::open(env.app.data_dir.join("avio.db")).unwrap();
    let (contacts, linked): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), SUM(avito_user_id = ?1) FROM contacts WHERE tenant = ?2",
            rusqlite::params![LEAD_ID.to_string(), TENANT],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((contacts, linked), (1, 1));
    let peer: String = db
        .query_row("SELECT peer FROM lead_contacts WHERE tenant = ?1 AND channel = 'avito'", [TENANT], |r| r.get(0))
        .unwrap();
    assert_eq!(peer, "u2i-chat1");
}

#[tokio::test]
async fn own_echoes_system_messages_and_chatless_events_are_not_queued() {
    let env = start(true, &[]).await;
    env.connect_oauth().await;
    env.fake.add_chat(chat("u2i-chat1", Vec::new()));
    // A lead's message, and the bot's reply that Avio sends.
    env.webhook(&lead_message("real", "u2i-chat1", "А доставка есть?")).await;
    env.wait_stored("real").await;
    eventually(WAIT, || async { (!env.fake.sent_to("u2i-chat1").is_empty()).then_some(()) }).await;
    // Avito then delivers that reply back as the account's own message.
    let mut echo = lead_message("echo", "u2i-chat1", REPLY);
    echo["payload"]["value"]["author_id"] = json!(ACCOUNT_ID);
    let mut system = lead_message("sys", "u2i-chat1", "Покупатель принял предложение");
    system["payload"]["value"]["type"] = json!("system");
    system["payload"]["value"]["content"]["flow_id"] = json!("sbc_seller_notification");
    let mut chatless = lead_message("nochat", "x", "где чат?");
    chatless["payload"]["value"].as_object_mut().unwrap().remove("chat_id");
    for (body, reason) in [(echo, "own_message"), (system, "system"), (chatless, "no_chat")] {
        let (code, answer) = env.webhook(&body).await;
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer, json!({"ok": true, "queued": false, "skipped": reason}));
    }
    for id in ["echo", "sys", "nochat"] {
        assert_eq!(env.stored(id).await, 0, "{id}");
    }
    assert_eq!(env.fake.sent_to("u2i-chat1").len(), 1);
}

/// SPEC 7.3: a manager answering in the Avito app takes the dialog over.
#[tokio::test]
async fn a_reply_typed_in_the_avito_app_is_an_operator_message_and_pauses_the_bot() {
    // The real bot, offline (no LLM key): it answers every lead it may answer.
    let env = start(false, &[("BOT_DEBOUNCE_MS", "50")]).await;
    env.connect_oauth().await;
    env.fake.add_chat(chat("u2i-chat1", Vec::new()));
    env.fake.add_chat(FakeChat { id: "u2i-chat2".into(), user_id: LEAD_ID + 1, ..chat("u2i-chat2", Vec::new()) });

    let mut human = lead_message("human", "u2i-chat1", "Здравствуйте, это Олег, менеджер. Диван есть.");
    human["payload"]["value"]["author_id"] = json!(ACCOUNT_ID);
    let (code, answer) = env.webhook(&human).await;
    assert_eq!((code, answer), (200, json!({"ok": true, "queued": true})));
    env.wait_stored("human").await;
    let db = rusqlite::Connection::open(env.app.data_dir.join("avio.db")).unwrap();
    let (direction, author): (String, String) = db
        .query_row("SELECT direction, author FROM messages WHERE provider_message_id = 'human'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((direction.as_str(), author.as_str()), ("out", "operator"));
    // The seller's own id links no contact.
    let linked: i64 = db
        .query_row("SELECT COUNT(*) FROM contacts WHERE avito_user_id = ?1", [ACCOUNT_ID.to_string()], |r| r.get(0))
        .unwrap();
    assert_eq!(linked, 0);

    // The lead answers in the taken-over chat; another lead writes in another chat.
    env.webhook(&lead_message("after", "u2i-chat1", "А доставка?")).await;
    let mut other = lead_message("other", "u2i-chat2", "Здравствуйте!");
    other["payload"]["value"]["author_id"] = json!(LEAD_ID + 1);
    env.webhook(&other).await;
    env.wait_stored("after").await;
    // The other lead gets the bot's reply; by then the paused chat would have one too.
    eventually(WAIT, || async { (!env.fake.sent_to("u2i-chat2").is_empty()).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.fake.sent_to("u2i-chat1").is_empty(), "the bot answered a taken-over dialog");
    // One dialog: the operator's message and the lead's answer share the contact.
    let contacts: i64 = db
        .query_row(
            "SELECT COUNT(DISTINCT contact_id) FROM messages WHERE provider_message_id IN ('human', 'after')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(contacts, 1);
}

#[tokio::test]
async fn a_403_refreshes_the_token_once_and_retries_the_send() {
    let env = start(false, &[]).await;
    env.connect_oauth().await;
    env.fake.add_chat(chat("u2i-chat1", Vec::new()));
    env.webhook(&lead_message("m1", "u2i-chat1", "Здравствуйте")).await;
    env.wait_stored("m1").await;
    let before = env.tenant_json()["integrations"]["avito"].clone();

    env.fake.expire_access_tokens();
    let answer =
        env.send(json!({"tenant": TENANT, "channel": "avito", "to": "u2i-chat1", "text": "Добрый день!"})).await;
    assert_eq!(answer["ok"], true, "{answer}");

    let world = env.fake.world();
    let sends: Vec<u16> =
        world.calls.iter().filter(|c| c.path.ends_with("/chats/u2i-chat1/messages")).map(|c| c.status).collect();
    assert_eq!(sends, vec![403, 200]);
    let refreshes: Vec<_> = world.token_requests.iter().filter(|f| f["grant_type"] == "refresh_token").collect();
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0]["refresh_token"], before["refresh_token"]);
    assert_eq!(world.sent.last().unwrap().text, "Добрый день!");
    drop(world);
    let after = env.tenant_json()["integrations"]["avito"].clone();
    assert_ne!(after["access_token"], before["access_token"]);
    assert_ne!(after["refresh_token"], before["refresh_token"], "the new refresh token must be stored");
    assert_eq!(after["state"], "connected");
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_the_call() {
    let env = start(false, &[]).await;
    env.connect_oauth().await;
    env.fake.add_chat(chat("u2i-chat1", Vec::new()));
    env.webhook(&lead_message("m1", "u2i-chat1", "Здравствуйте")).await;
    env.wait_stored("m1").await;
    let tenant = avio::domain::TenantId::new(TENANT).unwrap();
    let soon = avio::domain::now_s() + 30;
    env.app
        .state
        .files
        .update(tenant, move |doc| doc.integrations.get_mut("avito").unwrap()["expires_at"] = json!(soon))
        .await
        .unwrap();

    let answer =
        env.send(json!({"tenant": TENANT, "channel": "avito", "to": "u2i-chat1", "text": "Добрый день!"})).await;
    assert_eq!(answer["ok"], true, "{answer}");
    let world = env.fake.world();
    assert_eq!(world.token_requests.iter().filter(|f| f["grant_type"] == "refresh_token").count(), 1);
    assert!(world.calls.iter().all(|c| c.status != 403), "refreshed before, not after, a refusal");
    drop(world);
    assert!(env.tenant_json()["integrations"]["avito"]["expires_at"].as_i64().unwrap() > soon + 3600);
}

#[tokio::test]
async fn a_refused_refresh_makes_the_tenant_unauthorized() {
    let env = start(false, &[]).await;
    env.connect_oauth().await;
    env.fake.add_chat(chat("u2i-chat1", Vec::new()));
    env.webhook(&lead_message("m1", "u2i-chat1", "Здравствуйте")).await;
    env.wait_stored("m1").await;
    env.fake.expire_access_tokens();
    env.fake.world().refuse_refresh = Some(400);

    let answer =
        env.send(json!({"tenant": TENANT, "channel": "avito", "to": "u2i-chat1", "text": "Добрый день!"})).await;
    assert_eq!(answer, json!({"ok": false, "error": "session_gone", "job_id": answer["job_id"]}));
    let status = env.status().await;
    assert_eq!(status["state"], "unauthorized");
    assert_eq!(status["connected"], false);
    let (code, body) = env.app.post(&env.pub_path("/pub/avito/refresh"), &json!({})).await;
    assert_eq!((code, body["error"].as_str()), (409, Some("avito_unauthorized")), "{body}");
}

#[tokio::test]
async fn long_replies_are_split_under_1000_characters_then_the_chat_is_marked_read() {
    let env = start(false, &[]).await;
    env.connect_own().await;
    env.fake.add_chat(chat("u2i-chat1", Vec::new()));
    env.webhook(&lead_message("m1", "u2i-chat1", "Расскажите подробнее")).await;
    env.wait_stored("m1").await;

    let text = "Диван угловой стоит 45 000 ₽, доставка по Казани бесплатная. ".repeat(40);
    let answer = env.send(json!({"tenant": TENANT, "channel": "avito", "to": "u2i-chat1", "text": text})).await;
    assert_eq!(answer["ok"], true, "{answer}");
    let parts = env.fake.sent_to("u2i-chat1");
    assert!(parts.len() >= 3, "{}", parts.len());
    assert!(parts.iter().all(|p| p.text.chars().count() <= 1000));
    let joined: Vec<String> = parts.iter().map(|p| p.text.clone()).collect();
    assert_eq!(joined.join(" "), text.trim());
    assert_eq!(env.fake.world().reads, vec!["u2i-chat1".to_string()]);
}

#[tokio::test]
async fn a_send_without_a_chat_is_skipped_and_the_last_chat_is_the_fallback() {
    let env = start(false, &[]).await;
    env.connect_oauth().await;
    let message = json!({"tenant": TENANT, "channel": "avito", "to": "me", "text": "Есть новости?"});
    let answer = env.send(message.clone()).await;
    assert_eq!(answer["error"], "missing_chat", "{answer}");
    assert!(env.fake.world().sent.is_empty());

    env.fake.add_chat(chat("u2i-last", Vec::new()));
    env.webhook(&lead_message("m1", "u2i-last", "Здравствуйте")).await;
    let answer = env.send(message).await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(env.fake.sent_to("u2i-last").len(), 1);
}

#[tokio::test]
async fn images_are_uploaded_then_sent_by_image_id() {
    let env = start(false, &[]).await;
    env.connect_oauth().await;
    env.fake.add_chat(chat("u2i-chat1", Vec::new()));
    env.webhook(&lead_message("m1", "u2i-chat1", "Покажите фото")).await;
    env.wait_stored("m1").await;

    let photo = format!("{}/files/photo.jpg", env.fake.base);
    let answer = env
        .send(json!({"tenant": TENANT, "channel": "avito", "to": "u2i-chat1", "text": "Вот фото",
                     "attachments": [{"type": "image", "url": photo}]}))
        .await;
    assert_eq!(answer["ok"], true, "{answer}");
    let world = env.fake.world();
    assert_eq!(world.uploads.len(), 1);
    let upload = &world.uploads[0];
    assert_eq!((upload.field.as_str(), upload.filename.as_str()), ("uploadfile[]", "photo.jpg"));
    assert_eq!(upload.content_type, "image/jpeg");
    assert_eq!(upload.bytes, fake_avito::PHOTO);
    let kinds: Vec<(&str, &str)> = world.sent.iter().map(|s| (s.kind.as_str(), s.text.as_str())).collect();
    assert_eq!(kinds, vec![("text", "Вот фото"), ("image", upload.image_id.as_str())]);
}

#[tokio::test]
async fn the_poller_picks_up_a_message_the_webhook_missed() {
    let env = start(true, &[("AVITO_POLL_INTERVAL_S", "1")]).await;
    env.connect_oauth().await;
    env.fake.add_chat(chat("u2i-chat1", vec![unread("m1", "Здравствуйте")]));
    env.webhook(&lead_message("m1", "u2i-chat1", "Здравствуйте")).await;
    eventually(WAIT, || async { (!env.fake.world().reads.is_empty()).then_some(()) }).await;

    // The lead writes again; this time Avito's webhook never arrives.
    env.fake.push_message("u2i-chat1", unread("m2", "Вы тут?"));
    env.wait_stored("m2").await;
    eventually(WAIT, || async { (env.fake.sent_to("u2i-chat1").len() == 2).then_some(()) }).await;
    assert_eq!(env.stored("m1").await, 1, "the overlap is deduplicated");
    let world = env.fake.world();
    assert!(world.calls.iter().any(|c| c.path == "/messenger/v2/accounts/4242/chats" && c.status == 200));
    assert!(world.calls.iter().any(|c| c.path.ends_with("/chats/u2i-chat1/messages/")));
}

#[tokio::test]
async fn logout_forgets_the_tokens_and_unsubscribes() {
    let env = start(false, &[]).await;
    env.connect_oauth().await;
    assert_eq!(env.fake.world().webhooks.len(), 1);
    let (code, body) = env.app.post(&env.pub_path("/pub/avito/logout"), &json!({})).await;
    assert_eq!((code, body), (200, json!({"ok": true})));
    assert!(env.fake.world().webhooks.is_empty());
    assert!(env.tenant_json()["integrations"].get("avito").is_none());
    assert_eq!(env.status().await["state"], "not_connected");
    let (code, body) = env.app.post(&env.pub_path("/pub/avito/refresh"), &json!({})).await;
    assert_eq!((code, body["error"].as_str()), (409, Some("avito_not_connected")));
}
