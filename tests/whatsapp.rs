//! WhatsApp in-process sessions end to end: real headless Chromium driven by the
//! production driver against the fake WhatsApp Web page (`tests/fake_wa`) on
//! loopback, the real router on a random port, real files.

mod common;
mod fake_wa;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use avio::http::AppState;
use serde_json::{Value, json};

use common::*;
use fake_wa::{FakeConfig, FakeWa};

/// Chromium starts in about a second here; CI boxes are slower and shared.
const WAIT: Duration = Duration::from_secs(90);
const ME: &str = "79990001122";
const LEAD: &str = "79991234567";

/// Kills the browsers of an app whose test failed: the OS does not end Chromium when
/// a test panics, and a leftover browser would outlive the test run.
struct BrowserGuard(Option<AppState>);

impl BrowserGuard {
    fn new(state: &AppState) -> Self {
        BrowserGuard(Some(state.clone()))
    }

    /// Lets go of the app without killing anything (it is about to stop gracefully
    /// and its stores must close).
    fn release(mut self) {
        self.0 = None;
    }
}

impl Drop for BrowserGuard {
    fn drop(&mut self) {
        for pid in self.0.as_ref().map(|s| s.whatsapp.browser_pids()).unwrap_or_default() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// One tenant's WhatsApp, through the public routes.
struct Tenant<'a> {
    app: &'a TestApp,
    id: i64,
    key: String,
}

impl<'a> Tenant<'a> {
    async fn create(app: &'a TestApp, id: i64) -> Tenant<'a> {
        let key = app.tenant_with_key(id).await;
        Tenant { app, id, key }
    }

    fn path(&self, route: &str) -> String {
        format!("{route}?tenant={}&k={}", self.id, self.key)
    }

    async fn start(&self) -> (u16, Value) {
        self.app.post(&self.path("/pub/wa/start"), &json!({})).await
    }

    async fn status(&self) -> Value {
        let (code, body) = self.app.get(&self.path("/pub/wa/status")).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    async fn admin_status(&self) -> Value {
        let (code, body) = self.app.admin_get(&format!("/admin/wa/status?tenant={}", self.id)).await;
        assert_eq!(code, 200, "{body}");
        body["sessions"][0].clone()
    }

    async fn qr_svg(&self) -> (u16, String) {
        let response = self.app.http.get(self.app.url(&self.path("/pub/wa/qr.svg"))).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn wait_state(&self, state: &str) -> Value {
        eventually(WAIT, || async {
            let status = self.status().await;
            (status["state"] == state).then_some(status)
        })
        .await
    }

    /// Start, wait for the QR, scan it with the phone `me`, wait for ready.
    async fn connect(&self, fake: &FakeWa, me: &str) -> Value {
        let (code, body) = self.start().await;
        assert_eq!(code, 200, "{body}");
        let status = self.wait_state("qr").await;
        assert!(fake.scan(status["qr"].as_str().unwrap(), me), "the page never showed this QR");
        self.wait_state("ready").await
    }

    async fn logs(&self) -> String {
        let (_, body) = self.app.admin_get(&format!("/admin/wa/logs?tenant={}", self.id)).await;
        body["lines"].as_array().unwrap().iter().map(|l| format!("{} {}\n", l["event"], l["detail"])).collect()
    }

    fn profile(&self) -> std::path::PathBuf {
        self.app.data_dir.join("wa_state").join(self.id.to_string())
    }
}

fn wa_env(fake: &FakeWa) -> Vec<(&'static str, String)> {
    vec![("WA_WEB_URL", fake.url.clone())]
}

/// The page, sending allowed, and the real bot answering without waiting long.
fn bot_env(fake: &FakeWa) -> Vec<(&'static str, String)> {
    let mut vars = wa_env(fake);
    vars.push(("OUTBOX_ENABLED", "true".into()));
    vars.push(("OUTBOX_WHITELIST", "*".into()));
    vars.push(("BOT_DEBOUNCE_MS", "100".into()));
    vars
}

fn refs<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn message_row(data_dir: &Path, provider_id: &str) -> Option<(String, String, Option<String>, String, String)> {
    db(data_dir)
        .query_row(
            "SELECT direction, author, text, attachments, status FROM messages WHERE provider_message_id = ?1",
            [provider_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_qr_rotates_in_the_svg_and_a_scan_makes_the_session_ready_with_me() {
    let fake = FakeWa::start().await;
    let app = spawn_app_with(&refs(&wa_env(&fake))).await;
    let _guard = BrowserGuard::new(&app.state);
    let tenant = Tenant::create(&app, 1).await;

    // A lock left by a container that no longer exists must not block the start.
    std::fs::create_dir_all(tenant.profile()).unwrap();
    std::os::unix::fs::symlink("gone-container-4242424", tenant.profile().join("SingletonLock")).unwrap();

    let (code, body) = tenant.qr_svg().await;
    assert_eq!(code, 404);
    assert!(body.contains("qr_not_found"), "{body}");

    let (code, body) = tenant.start().await;
    assert_eq!((code, body["ok"].clone()), (200, json!(true)), "{body}");
    assert!(["starting", "qr"].contains(&body["state"].as_str().unwrap()), "{body}");

    let first = tenant.wait_state("qr").await;
    assert_eq!(first["ready"], false);
    let first_qr = first["qr"].as_str().unwrap().to_string();
    assert_eq!(first_qr.split(',').count(), 5, "ref,noise,identity,adv,platform: {first_qr}");
    let (code, first_svg) = tenant.qr_svg().await;
    assert_eq!(code, 200);
    assert!(first_svg.contains("<svg"), "{first_svg}");

    // The page rotates its ref; the cached SVG and the status follow.
    let rotated = eventually(WAIT, || async {
        let (code, svg) = tenant.qr_svg().await;
        (code == 200 && svg != first_svg).then_some(svg)
    })
    .await;
    assert!(rotated.contains("<svg"));
    let status = tenant.wait_state("qr").await;
    assert_ne!(status["qr_id"], first["qr_id"]);

    assert!(tenant.profile().join("DO_NOT_DELETE.txt").is_file());
    let lock = std::fs::read_link(tenant.profile().join("SingletonLock")).unwrap();
    assert_ne!(lock.to_string_lossy(), "gone-container-4242424", "Chromium took the profile");

    let current = tenant.status().await;
    assert!(fake.scan(current["qr"].as_str().unwrap(), ME));
    let ready = tenant.wait_state("ready").await;
    assert_eq!(ready, json!({"ok": true, "ready": true, "qr": null, "state": "ready", "qr_id": null, "me": ME}));

    let (code, _) = tenant.qr_svg().await;
    assert_eq!(code, 404, "no QR once the session is ready");
    let (code, body) = app.admin_get("/health/wa?tenant=1").await;
    assert_eq!((code, body["state"].clone()), (200, json!("ready")), "{body}");
    let (code, _) = app.admin_get("/health/wa?tenant=9").await;
    assert_eq!(code, 404);
    let (_, metrics) = app.admin_get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(metrics.contains(r#"channel_sessions{channel="whatsapp",state="ready"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"channel_sessions{channel="whatsapp",state="qr"} 0"#), "{metrics}");

    let logs = tenant.logs().await;
    for step in ["stopped -> starting", "starting -> qr", "qr -> ready", "wa_stale_lock_cleared"] {
        assert!(logs.contains(step), "{step} missing in:\n{logs}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn incoming_messages_reach_the_inbox_and_the_bot_and_the_outbox_reply_through_the_page() {
    let fake = FakeWa::start().await;
    let app = spawn_app_with(&refs(&bot_env(&fake))).await;
    let _guard = BrowserGuard::new(&app.state);
    let tenant = Tenant::create(&app, 1).await;
    tenant.connect(&fake, ME).await;

    // A lead writes: the message is stored once, as the lead's.
    let id = fake.incoming(ME, LEAD, "Здравствуйте, есть диван?", false);
    let row = eventually(WAIT, || async { message_row(&app.data_dir, &id) }).await;
    assert_eq!((row.0.as_str(), row.1.as_str()), ("in", "lead"));
    assert_eq!(row.2.as_deref(), Some("Здравствуйте, есть диван?"));
    let phone: String =
        db(&app.data_dir).query_row("SELECT whatsapp_phone FROM contacts WHERE tenant = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(phone, LEAD);

    // The bot (offline: no LLM configured) replies through the page's own send function.
    let reply = eventually(WAIT, || async { fake.sent(ME).into_iter().next() }).await;
    assert!(reply["body"].as_str().is_some_and(|b| !b.is_empty()), "{reply}");
    assert_eq!(reply["to"], format!("{LEAD}@c.us"));
    assert_eq!(reply["type"], "chat");
    // Its echo in the page's message collection is ours, not the phone writing.
    let reply_id = reply["id"].as_str().unwrap().to_string();
    let bot_row = eventually(WAIT, || async { message_row(&app.data_dir, &reply_id) }).await;
    assert_eq!((bot_row.0.as_str(), bot_row.1.as_str()), ("out", "bot"));

    // `POST /send` with a +E164 recipient; the acks the page reports reach the row.
    let (code, body) = app
        .admin_post(
            "/send?wait=true",
            &json!({"tenant": 1, "channel": "whatsapp", "to": format!("+{LEAD}"), "text": "Диван есть, 25 000 ₽"}),
        )
        .await;
    assert_eq!((code, body["ok"].clone()), (200, json!(true)), "{body}");
    let sent = eventually(WAIT, || async {
        fake.sent(ME).into_iter().find(|m| m["body"] == "Диван есть, 25 000 ₽")
    })
    .await;
    let sent_id = sent["id"].as_str().unwrap().to_string();
    let read = eventually(WAIT, || async { message_row(&app.data_dir, &sent_id).filter(|row| row.4 == "read") }).await;
    assert_eq!(read.1, "operator");

    // Files: a document with the text as its caption, and an image.
    let (code, body) = app
        .admin_post(
            "/send?wait=true",
            &json!({"tenant": 1, "channel": "whatsapp", "to": format!("{LEAD}@c.us"), "text": "Прайс",
                    "attachments": [{"type": "file", "url": fake.file_url("price.pdf"), "name": "price.pdf"},
                                    {"type": "image", "url": fake.file_url("sofa.png")}]}),
        )
        .await;
    assert_eq!((code, body["ok"].clone()), (200, json!(true)), "{body}");
    let document = fake.sent(ME).into_iter().find(|m| m["type"] == "document").expect("the PDF was sent");
    assert_eq!(document["mimetype"], "application/pdf");
    assert_eq!(document["filename"], "price.pdf");
    assert_eq!(document["caption"], "Прайс");
    assert_eq!(document["size"], fake.file_bytes("price.pdf").len());
    let image = fake.sent(ME).into_iter().find(|m| m["type"] == "image").expect("the PNG was sent");
    assert_eq!(image["mimetype"], "image/png");
    assert_eq!(image["size"], fake.file_bytes("sofa.png").len());
    assert_eq!(image["caption"], Value::Null);

    // A lead's photo is downloaded through the page into the tenant's folder.
    let png = fake_wa::tiny_png();
    let photo_id = fake.incoming_media(ME, LEAD, "image/png", "photo.png", &png, "Вот такой");
    let row = eventually(WAIT, || async { message_row(&app.data_dir, &photo_id) }).await;
    assert_eq!(row.2.as_deref(), Some("Вот такой"));
    let attachments: Value = serde_json::from_str(&row.3).unwrap();
    let path = attachments[0]["path"].as_str().expect("a local path").to_string();
    assert!(path.starts_with("media/") && path.ends_with(".png"), "{path}");
    assert_eq!(std::fs::read(app.data_dir.join("tenants/1").join(&path)).unwrap(), png);
    assert_eq!(file_mode(&app.data_dir.join("tenants/1").join(&path)), 0o600);

    // No operator rows appeared from the page echoing what Avio sent.
    let echoes =
        count(&db(&app.data_dir), "SELECT COUNT(*) FROM messages WHERE outbox_job_id IS NULL AND direction = 'out'");
    assert_eq!(echoes, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_sent_from_the_phone_is_stored_as_an_operator_message_and_pauses_the_bot() {
    let fake = FakeWa::start().await;
    let app = spawn_app_with(&refs(&bot_env(&fake))).await;
    let _guard = BrowserGuard::new(&app.state);
    let tenant = Tenant::create(&app, 1).await;
    tenant.connect(&fake, ME).await;

    let lead_id = fake.incoming(ME, LEAD, "Сколько стоит доставка?", false);
    eventually(WAIT, || async { message_row(&app.data_dir, &lead_id) }).await;
    let phone_id = fake.incoming(ME, LEAD, "Доставка бесплатно, я сам вам отвечу", true);
    let row = eventually(WAIT, || async { message_row(&app.data_dir, &phone_id) }).await;
    assert_eq!((row.0.as_str(), row.1.as_str()), ("out", "operator"));
    assert_eq!(row.2.as_deref(), Some("Доставка бесплатно, я сам вам отвечу"));

    // It joined the lead's dialog, and the bot stepped back there (SPEC 7.3).
    let dialogs = count(&db(&app.data_dir), "SELECT COUNT(DISTINCT contact_id) FROM messages WHERE tenant = 1");
    assert_eq!(dialogs, 1, "the phone's message joined the lead's dialog");
    let contact: i64 = db(&app.data_dir)
        .query_row("SELECT contact_id FROM messages WHERE provider_message_id = ?1", [&phone_id], |r| r.get(0))
        .unwrap();
    let tenant_id = avio::domain::TenantId::new(1).unwrap();
    let paused = eventually(WAIT, || async {
        let sales = app.state.dialogs.get(tenant_id, contact).await.unwrap();
        sales.bot_paused(avio::domain::now_s()).then_some(sales)
    })
    .await;
    assert!(!paused.takeover, "a pause, not a takeover");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_browser_is_restarted_and_sessions_come_back_without_a_new_qr() {
    let fake = FakeWa::start().await;
    let dir = tempfile::tempdir().unwrap();
    let vars = wa_env(&fake);
    let app = spawn_app_in(dir.path(), &refs(&vars)).await;
    let guard = BrowserGuard::new(&app.state);
    let tenant = Tenant::create(&app, 1).await;
    tenant.connect(&fake, ME).await;
    let first = tenant.admin_status().await;
    let pid = first["pid"].as_u64().unwrap();
    let refs_before = fake.refs_issued();

    let killed = Command::new("kill").arg("-9").arg(pid.to_string()).status().unwrap();
    assert!(killed.success());
    let back = eventually(WAIT, || async {
        let status = tenant.admin_status().await;
        (status["state"] == "ready" && status["pid"].as_u64().is_some_and(|p| p != pid)).then_some(status)
    })
    .await;
    assert!(back["restarts"].as_u64().unwrap() >= 1, "{back}");
    assert!(back["last_error"].as_str().unwrap().contains("exited"), "{back}");
    assert_eq!(back["me"], ME);
    assert_eq!(fake.refs_issued(), refs_before, "the restored session showed no new QR");
    assert!(fake.hellos(ME) >= 1);
    let logs = tenant.logs().await;
    assert!(logs.contains("ready -> failed") && logs.contains("failed -> starting"), "{logs}");

    // The restored session still receives messages.
    let id = fake.incoming(ME, LEAD, "Вы тут?", false);
    eventually(WAIT, || async { message_row(&app.data_dir, &id) }).await;

    // A daemon restart brings ready sessions back from their profiles.
    let key = tenant.key.clone();
    guard.release();
    app.stop().await;
    let app = spawn_app_in(dir.path(), &refs(&vars)).await;
    let _guard = BrowserGuard::new(&app.state);
    let tenant = Tenant { app: &app, id: 1, key };
    let status = tenant.wait_state("ready").await;
    assert_eq!(status["me"], ME);
    assert_eq!(fake.refs_issued(), refs_before, "no QR after a daemon restart either");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_page_fails_its_heartbeat_and_the_browser_is_restarted() {
    let fake = FakeWa::start().await;
    let app = spawn_app_with(&refs(&wa_env(&fake))).await;
    let _guard = BrowserGuard::new(&app.state);
    let tenant = Tenant::create(&app, 1).await;
    tenant.connect(&fake, ME).await;
    let pid = tenant.admin_status().await["pid"].as_u64().unwrap();
    let refs_before = fake.refs_issued();

    fake.hang(ME);
    let back = eventually(WAIT, || async {
        let status = tenant.admin_status().await;
        (status["state"] == "ready" && status["pid"].as_u64().is_some_and(|p| p != pid)).then_some(status)
    })
    .await;
    assert!(back["last_error"].as_str().unwrap().contains("heartbeat failed"), "{back}");
    assert_eq!(fake.refs_issued(), refs_before, "restored from the profile, no QR");
    let id = fake.incoming(ME, LEAD, "Алло?", false);
    eventually(WAIT, || async { message_row(&app.data_dir, &id) }).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_resets_the_state_directory_and_a_phone_logout_keeps_it() {
    let fake = FakeWa::start().await;
    let app = spawn_app_with(&refs(&wa_env(&fake))).await;
    let _guard = BrowserGuard::new(&app.state);
    let tenant = Tenant::create(&app, 1).await;
    tenant.connect(&fake, ME).await;
    assert!(names_in(&tenant.profile()).len() > 1, "Chromium wrote its profile");

    let (code, body) = app.post(&tenant.path("/pub/wa/logout"), &json!({})).await;
    assert_eq!(body, json!({"ok": true, "state": "logged_out"}), "{code}");
    assert_eq!(fake.api_logouts().len(), 1, "the page logged the device out");
    assert!(!fake.is_paired(ME));
    assert_eq!(names_in(&tenant.profile()), ["DO_NOT_DELETE.txt"]);
    assert_eq!(tenant.status().await["state"], "logged_out");
    let (code, _) = app.admin_get("/health/wa?tenant=1").await;
    assert_eq!(code, 503);

    // A new start shows a new QR; the phone then ends the session itself.
    tenant.connect(&fake, ME).await;
    fake.phone_logout(ME);
    let status = tenant.wait_state("logged_out").await;
    assert_eq!(status["ready"], false);
    let names = names_in(&tenant.profile());
    assert!(names.len() > 1, "only our logout resets the state directory: {names:?}");
    assert!(!names.contains(&"avio_session.json".to_string()), "not restored at boot: {names:?}");
    let logs = tenant.logs().await;
    assert!(logs.contains("ready -> logged_out (logout_from_bridge)"), "{logs}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wa_max_sessions_caps_the_browsers_and_avioctl_operates_them() {
    let fake = FakeWa::start_with(FakeConfig { first_qr_ms: 60_000, ..FakeConfig::default() }).await;
    let mut vars = wa_env(&fake);
    vars.push(("WA_MAX_SESSIONS", "1".into()));
    let app = spawn_app_with(&refs(&vars)).await;
    let _guard = BrowserGuard::new(&app.state);
    let one = Tenant::create(&app, 1).await;
    let two = Tenant::create(&app, 2).await;

    let (code, _) = one.start().await;
    assert_eq!(code, 200);
    let (code, body) = two.start().await;
    assert_eq!((code, body), (503, json!({"ok": false, "error": "wa_max_sessions", "max_sessions": 1})));
    one.wait_state("qr").await;

    let run = |args: &'static [&'static str]| {
        let app_base = app.base.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_avioctl"))
                .env_clear()
                .env("AVIO_URL", app_base)
                .env("ADMIN_TOKEN", ADMIN_TOKEN)
                .env("DATA_DIR", "/nonexistent-avio-test-dir")
                .args(args)
                .output()
                .unwrap()
        })
    };
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };

    let out = run(&["wa", "status", "--all"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("qr"), "{}", text(&out));

    let out = run(&["wa", "up", "--tenant", "2"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("wa_max_sessions"), "{}", text(&out));

    let out = run(&["wa", "purge", "--tenant", "1"]).await.unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("state must not be deleted; use logout"), "{}", text(&out));
    let refused: [&'static [&'static str]; 2] = [&["wa", "purge", "--all"], &["wa", "purge"]];
    for args in refused {
        let out = run(args).await.unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("state must not be deleted; use logout"), "{}", text(&out));
    }
    assert!(one.profile().join("DO_NOT_DELETE.txt").is_file());

    let out = run(&["wa", "down", "--tenant", "1"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(one.status().await["state"], "stopped");
    assert!(one.profile().join("DO_NOT_DELETE.txt").is_file(), "down keeps the state");

    let out = run(&["wa", "up", "--tenant", "2"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    two.wait_state("qr").await;
    let out = run(&["wa", "restart", "--tenant", "2"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["wa", "logs", "--tenant", "2"]).await.unwrap();
    assert!(text(&out).contains("starting -> qr"), "{}", text(&out));
    eventually(WAIT, || async {
        text(&run(&["wa", "logs", "--tenant", "2"]).await.unwrap()).contains("qr -> starting").then_some(())
    })
    .await;
    two.wait_state("qr").await;
    let out = run(&["wa", "down", "--all"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(two.status().await["state"], "stopped");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_run_isolated_sessions() {
    let fake = FakeWa::start().await;
    let mut vars = wa_env(&fake);
    vars.push(("OUTBOX_ENABLED", "true".into()));
    vars.push(("OUTBOX_WHITELIST", "*".into()));
    let app = spawn_app_with(&refs(&vars)).await;
    let _guard = BrowserGuard::new(&app.state);
    let one = Tenant::create(&app, 1).await;
    let two = Tenant::create(&app, 2).await;
    let (me_one, me_two) = ("79990000001", "79990000002");
    let (a, b) = tokio::join!(one.connect(&fake, me_one), two.connect(&fake, me_two));
    assert_eq!((a["me"].as_str(), b["me"].as_str()), (Some(me_one), Some(me_two)));
    let pids = (one.admin_status().await["pid"].clone(), two.admin_status().await["pid"].clone());
    assert_ne!(pids.0, pids.1);

    let to_one = fake.incoming(me_one, "79995550001", "Первому", false);
    let to_two = fake.incoming(me_two, "79995550002", "Второму", false);
    for (id, tenant) in [(&to_one, 1), (&to_two, 2)] {
        let stored: i64 = eventually(WAIT, || async {
            db(&app.data_dir)
                .query_row("SELECT tenant FROM messages WHERE provider_message_id = ?1", [id], |r| r.get(0))
                .ok()
        })
        .await;
        assert_eq!(stored, tenant);
    }

    let (code, body) = app
        .admin_post(
            "/send?wait=true",
            &json!({"tenant": 2, "channel": "whatsapp", "to": "79995550002", "text": "Ответ второго"}),
        )
        .await;
    assert_eq!((code, body["ok"].clone()), (200, json!(true)), "{body}");
    assert_eq!(fake.sent(me_two).len(), 1);
    assert!(fake.sent(me_one).is_empty(), "tenant 1's page sent nothing");
    // Tenant 1 has no lead 79995550002: the outbox refuses instead of sending.
    let (_, body) = app
        .admin_post(
            "/send?wait=true",
            &json!({"tenant": 1, "channel": "whatsapp", "to": "79995550002", "text": "Чужой"}),
        )
        .await;
    assert_eq!(body["ok"], false, "{body}");
    assert!(fake.sent(me_one).is_empty());

    let (_, metrics) = app.admin_get("/metrics").await;
    assert!(metrics.as_str().unwrap().contains(r#"channel_sessions{channel="whatsapp",state="ready"} 2"#));
    assert_ne!(one.profile(), two.profile());
    assert!(one.profile().join("DO_NOT_DELETE.txt").is_file() && two.profile().join("DO_NOT_DELETE.txt").is_file());
    app.stop().await;
}

/// `RssAnon` of one process (private memory, without the mapped binary), in KiB.
fn anon_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("RssAnon:")?.split_whitespace().next()?.parse().ok()))
        .unwrap_or(0)
}

/// Sums `VmRSS`, `Pss` and `RssAnon` (KiB) over a process and its descendants.
fn tree_memory(root: u32) -> (u64, u64, u64, usize) {
    use avio::channels::whatsapp::browser::{process_tree, pss_kib, rss_kib};
    let tree = process_tree(root);
    let sum = |f: fn(u32) -> u64| tree.iter().map(|p| f(*p)).sum::<u64>();
    (sum(rss_kib), sum(pss_kib), sum(anon_kib), tree.len())
}

/// The memory benchmark: the real `avio serve` plus its Chromium processes with 1 and
/// 5 ready sessions. Run: `cargo test --release --test whatsapp
/// -- --ignored --nocapture wa_memory`.
// Ignored in the suite: a benchmark that prints figures and asserts none, and whose
// five browsers would only slow the other tests on a small machine.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "memory benchmark: run with --ignored --nocapture"]
async fn wa_memory_benchmark() {
    let fake = FakeWa::start_with(FakeConfig { first_qr_ms: 60_000, next_qr_ms: 20_000, debug_delay_ms: 300 }).await;
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("WA_WEB_URL", fake.url.as_str()),
        ("ADMIN_TOKEN", ADMIN_TOKEN),
        ("PUBLIC_KEY", PUBLIC_KEY),
        ("WA_MAX_SESSIONS", "5"),
        ("PATH", "/usr/bin:/bin"),
    ];
    let mut daemon = common::daemon::Daemon::start(&mut common::daemon::serve_command(dir.path(), &envs, &[]));
    let base = format!("http://127.0.0.1:{}", daemon.port);
    let http = reqwest::Client::new();
    let admin = |path: String| http.get(format!("{base}{path}")).header("X-Admin-Token", ADMIN_TOKEN).send();
    let root = daemon.child.id();
    let (idle_rss, idle_pss, idle_anon, _) = tree_memory(root);
    println!("daemon alone: RSS {} MiB, PSS {} MiB, anon {} MiB", idle_rss / 1024, idle_pss / 1024, idle_anon / 1024);
    let mut connected = 0;
    for n in [1usize, 5] {
        while connected < n {
            connected += 1;
            let id = connected as i64;
            let r = http
                .post(format!("{base}/admin/tenants"))
                .header("X-Admin-Token", ADMIN_TOKEN)
                .json(&json!({"id": id, "name": format!("T{id}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201);
            let r = http.post(format!("{base}/pub/wa/start?tenant={id}&k={PUBLIC_KEY}")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let me = format!("7999000000{id}");
            let qr: String = eventually(WAIT, || async {
                let v: Value = http
                    .get(format!("{base}/pub/wa/status?tenant={id}&k={PUBLIC_KEY}"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                v["qr"].as_str().map(str::to_string)
            })
            .await;
            assert!(fake.scan(&qr, &me));
            eventually(WAIT, || async {
                let v: Value = admin(format!("/health/wa?tenant={id}")).await.ok()?.json().await.ok()?;
                (v["ok"] == true).then_some(())
            })
            .await;
        }
        let (rss, pss, anon, processes) = tree_memory(root);
        let per = |total: u64, idle: u64| total.saturating_sub(idle) / 1024 / n as u64;
        println!(
            "{n} ready session(s): {processes} processes; VmRSS sum {} MiB ({} MiB per session); \
             PSS {} MiB ({} per session); RssAnon {} MiB ({} per session)",
            rss / 1024,
            per(rss, idle_rss),
            pss / 1024,
            per(pss, idle_pss),
            anon / 1024,
            per(anon, idle_anon)
        );
    }
    // SIGTERM: the daemon closes its browsers gracefully before it exits.
    let _ = Command::new("kill").arg("-TERM").arg(root.to_string()).status();
    let _ = daemon.child.wait();
}
