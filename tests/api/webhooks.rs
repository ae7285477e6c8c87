use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

async fn hook(app: &TestApp, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let r = app.http.post(app.url(&format!("{path}?token={token}"))).json(body).send().await.unwrap();
    split(r).await
}

fn wa_message(id: &str, from: &str, text: &str) -> Value {
    json!({"event": "messages.incoming", "tenant": 1, "provider": "whatsapp", "channel": "whatsapp",
           "message_id": id, "from": from, "text": text, "ts": 1715683200})
}

/// Waits until the inbox worker stored `n` messages for the tenant.
async fn stored_messages(app: &TestApp, n: i64) {
    let dir = app.data_dir.clone();
    eventually(Duration::from_secs(10), || {
        let dir = dir.clone();
        async move { (count(&db(&dir), "SELECT COUNT(*) FROM messages") >= n).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn webhook_rejects_a_missing_or_wrong_provider_token() {
    let app = spawn_app().await;
    app.tenant_with_key(1).await;
    app.provider_token(1).await;
    let (status, body) = hook(&app, "/webhook", "wrong", &wa_message("m1", "79991234567", "hi")).await;
    assert_eq!((status, body), (401, json!({"ok": false, "error": "invalid_provider_token"})));
    let r = app.http.post(app.url("/webhook")).json(&wa_message("m1", "79991234567", "hi")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (status, _) = hook(&app, "/webhook/telegram", "wrong", &json!({"tenant": 1, "channel": "telegram"})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn webhook_answers_422_for_bad_json_a_bad_tenant_or_a_bad_schema() {
    let app = spawn_app().await;
    app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    let r = app
        .http
        .post(app.url(&format!("/webhook?token={token}")))
        .header("Content-Type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    let (status, body) = split(r).await;
    assert_eq!((status, body["reason"].clone()), (422, json!("malformed_json")));
    let (status, body) = hook(&app, "/webhook", &token, &json!({"event": "messages.incoming", "text": "x"})).await;
    assert_eq!(body, json!({"ok": false, "error": "invalid_payload", "reason": "invalid_tenant"}));
    assert_eq!(status, 422);
    for (body, reason) in [
        (json!({"tenant": 1, "channel": "whatsapp", "message_id": "a", "text": "x"}), "missing_from"),
        (json!({"tenant": 1, "channel": "whatsapp", "message_id": "a", "from": "123", "text": "x"}), "invalid_from"),
        (json!({"tenant": 1, "channel": "whatsapp", "message_id": "a", "from": "79991234567"}), "no_text_or_media"),
        (json!({"tenant": 1, "event": "dance", "channel": "whatsapp"}), "unknown_event"),
    ] {
        let (status, answer) = hook(&app, "/webhook", &token, &body).await;
        assert_eq!((status, answer["reason"].clone()), (422, json!(reason)), "{body}");
    }
}

#[tokio::test]
async fn a_message_from_an_unknown_sender_creates_one_contact_lead_and_message() {
    let app = spawn_app().await;
    app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    let (status, body) = hook(&app, "/webhook", &token, &wa_message("wamid.1", "89991234567", "Добрый день")).await;
    assert_eq!((status, body), (200, json!({"ok": true, "queued": true})));
    stored_messages(&app, 1).await;
    let conn = db(&app.data_dir);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM contacts WHERE whatsapp_phone = '79991234567'"), 1);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM leads"), 1);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM lead_contacts WHERE channel = 'whatsapp' AND peer = '79991234567'"),
        1
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM webhook_events WHERE message_id = 'wamid.1'"), 1);
    let (text, author, direction): (String, String, String) = conn
        .query_row("SELECT text, author, direction FROM messages", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    assert_eq!((text.as_str(), author.as_str(), direction.as_str()), ("Добрый день", "lead", "in"));
}

#[tokio::test]
async fn a_repeated_message_is_acknowledged_and_stored_once() {
    let app = spawn_app().await;
    app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    for _ in 0..3 {
        let (status, _) = hook(&app, "/webhook", &token, &wa_message("wamid.dup", "79991234567", "x")).await;
        assert_eq!(status, 200);
    }
    hook(&app, "/webhook", &token, &wa_message("wamid.after", "79991234567", "y")).await;
    stored_messages(&app, 2).await;
    let conn = db(&app.data_dir);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM messages WHERE provider_message_id = 'wamid.dup'"), 1);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM messages"), 2);
}

#[tokio::test]
async fn media_only_messages_and_iso_timestamps_are_accepted() {
    let app = spawn_app().await;
    app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    let body = json!({"tenant": 1, "channel": "whatsapp", "message_id": "m-media", "from_jid": "79991234567@c.us",
                      "ts": "2024-05-14T10:40:00Z",
                      "media": [{"type": "image", "mime_type": "image/jpeg", "url": "https://example.org/media/1"}]});
    let (status, _) = hook(&app, "/webhook", &token, &body).await;
    assert_eq!(status, 200);
    stored_messages(&app, 1).await;
    let (attachments, ts): (String, String) = db(&app.data_dir)
        .query_row("SELECT attachments, ts FROM messages", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert!(attachments.contains("image/jpeg"), "{attachments}");
    assert_eq!(ts, "2024-05-14T10:40:00Z");
}

#[tokio::test]
async fn the_same_phone_on_telegram_links_to_the_same_contact() {
    let app = spawn_app().await;
    app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    hook(&app, "/webhook", &token, &wa_message("w1", "+79991234567", "Есть диван?")).await;
    stored_messages(&app, 1).await;
    let tg = json!({"tenant": 1, "channel": "telegram", "message_id": 77, "ts": 1715683300,
                    "telegram_user_id": 1564614169, "username": "ivan", "phone": "89991234567", "text": "Это я же"});
    let (status, body) = hook(&app, "/webhook/telegram", &token, &tg).await;
    assert_eq!((status, body), (200, json!({"ok": true, "queued": true})));
    stored_messages(&app, 2).await;
    let conn = db(&app.data_dir);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM contacts"), 1);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM leads"), 1);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM contacts WHERE telegram_user_id = '1564614169' AND whatsapp_phone = '79991234567'"
        ),
        1
    );
    assert_eq!(count(&conn, "SELECT COUNT(DISTINCT contact_id) FROM messages"), 1);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM lead_contacts"), 2);
}

#[tokio::test]
async fn telegram_events_need_a_sender_and_take_the_peer_from_the_user_id() {
    let app = spawn_app().await;
    app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    let no_sender = json!({"tenant": 1, "channel": "telegram", "message_id": 1, "ts": 1715683300, "text": "x"});
    let (status, body) = hook(&app, "/webhook/telegram", &token, &no_sender).await;
    assert_eq!((status, body["reason"].clone()), (422, json!("missing_peer")));
    let ok = json!({"tenant": 1, "channel": "telegram", "message_id": 2, "ts": 1715683300,
                    "telegram_user_id": 42, "text": "x", "meta": {"reply_to": 12345}});
    let r =
        app.http.post(app.url("/webhook/telegram")).header("X-Provider-Token", &token).json(&ok).send().await.unwrap();
    assert_eq!(r.status(), 200);
    stored_messages(&app, 1).await;
    assert_eq!(
        count(&db(&app.data_dir), "SELECT COUNT(*) FROM lead_contacts WHERE channel = 'telegram' AND peer = '42'"),
        1
    );
    let (_, guardrails) = app.admin_get("/admin/guardrails").await;
    let tg = guardrails["guardrails"].as_array().unwrap().iter().find(|g| g["name"] == "telegram_no_peer").unwrap();
    assert_eq!((tg["hits"].as_u64(), tg["total"].as_u64(), tg["ok"].as_bool()), (Some(1), Some(2), Some(false)));
    let non2xx = guardrails["guardrails"].as_array().unwrap().iter().find(|g| g["name"] == "webhook_non_2xx").unwrap();
    assert_eq!(non2xx["hits"], 1);
}

#[tokio::test]
async fn a_qr_event_is_cached_and_served_as_svg() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    let (status, body) = app.get(&format!("/pub/wa/qr.svg?tenant=1&k={key}")).await;
    assert_eq!((status, body), (404, json!({"ok": false, "error": "qr_not_found"})));
    let (status, body) = hook(&app, "/webhook", &token, &json!({"event": "qr", "tenant": 1, "qr_id": "q1"})).await;
    assert_eq!((status, body), (422, json!({"ok": false, "error": "invalid_qr"})));
    let svg = "<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>";
    let (status, body) =
        hook(&app, "/webhook", &token, &json!({"event": "qr", "tenant": 1, "qr_id": "q1", "svg": svg})).await;
    assert_eq!((status, body), (200, json!({"ok": true, "queued": false, "event": "qr"})));
    let r = app.http.get(app.url(&format!("/pub/wa/qr.svg?tenant=1&k={key}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert_eq!(r.text().await.unwrap(), svg);
    let (status, _) =
        hook(&app, "/webhook", &token, &json!({"event": "ready", "tenant": 1, "state": "ready", "ts": 1715683200}))
            .await;
    assert_eq!(status, 200);
    let r = app.http.get(app.url("/metrics")).header("X-Admin-Token", ADMIN_TOKEN).send().await.unwrap();
    let metrics = r.text().await.unwrap();
    assert!(metrics.contains("webhook_provider_total{status=\"422\",channel=\"whatsapp\"} 1"), "{metrics}");
    assert!(metrics.contains("wa_to_app_total{event=\"qr\",status=\"ok\"} 1"), "{metrics}");
}
