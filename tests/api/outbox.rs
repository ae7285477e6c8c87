use std::sync::Arc;
use std::time::Duration;

use avio::app::Extensions;
use avio::channels::SendError;
use avio::domain::Channel;
use serde_json::{Value, json};

use crate::common::recording::{Recorder, RecordingFactory};
use crate::common::*;

const OPEN: &[(&str, &str)] = &[("OUTBOX_ENABLED", "true"), ("OUTBOX_WHITELIST", "*"), ("OUTBOX_RETRY_BASE_MS", "10")];

async fn app_with_recorder(overrides: &[(&str, &str)]) -> (TestApp, Arc<Recorder>) {
    let recorder = Recorder::new();
    let extensions = Extensions {
        drivers: vec![
            (Channel::Whatsapp, Arc::new(RecordingFactory(recorder.clone()))),
            (Channel::Telegram, Arc::new(RecordingFactory(recorder.clone()))),
        ],
        bot: None,
        ..Default::default()
    };
    let app = spawn_app_ext(overrides, extensions).await;
    app.tenant_with_key(1).await;
    (app, recorder)
}

/// A lead who wrote from 79991234567 on WhatsApp.
async fn known_lead(app: &TestApp) {
    let token = app.provider_token(1).await;
    let body = json!({"event": "messages.incoming", "tenant": 1, "channel": "whatsapp", "message_id": "in-1",
                      "from": "79991234567", "text": "Здравствуйте"});
    let r = app.http.post(app.url(&format!("/webhook?token={token}"))).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let dir = app.data_dir.clone();
    eventually(Duration::from_secs(10), || {
        let dir = dir.clone();
        async move { (count(&db(&dir), "SELECT COUNT(*) FROM lead_contacts") == 1).then_some(()) }
    })
    .await;
}

fn wa_send(text: &str) -> Value {
    json!({"tenant": 1, "channel": "whatsapp", "to": "+79991234567", "text": text})
}

#[tokio::test]
async fn send_is_refused_while_the_outbox_is_disabled() {
    let (app, recorder) = app_with_recorder(&[]).await;
    let (status, body) = app.admin_post("/send", &wa_send("hi")).await;
    assert_eq!((status, body), (403, json!({"ok": false, "error": "outbox_disabled"})));
    // The switch is checked before the body.
    let (status, _) = app.admin_post("/send", &json!({"tenant": 1})).await;
    assert_eq!(status, 403);
    assert!(recorder.sent().is_empty());
    let (status, _) = app.post("/send", &wa_send("hi")).await;
    assert_eq!(status, 401, "admin only");
}

#[tokio::test]
async fn send_is_refused_for_recipients_outside_the_whitelist() {
    let (app, _) = app_with_recorder(&[("OUTBOX_ENABLED", "true")]).await;
    let (status, body) = app.admin_post("/send", &wa_send("hi")).await;
    assert_eq!((status, body), (403, json!({"ok": false, "error": "not_whitelisted"})), "empty blocks all");
    let (app, _) = app_with_recorder(&[("OUTBOX_ENABLED", "true"), ("OUTBOX_WHITELIST", "79990000000, bob")]).await;
    let (status, body) = app.admin_post("/send", &wa_send("hi")).await;
    assert_eq!((status, body["error"].clone()), (403, json!("not_whitelisted")));
    let (status, _) =
        app.admin_post("/send", &json!({"tenant": 1, "channel": "telegram", "to": "@Bob", "text": "x"})).await;
    assert_eq!(status, 202, "usernames match without @ and case");
    let (status, _) =
        app.admin_post("/send", &json!({"tenant": 1, "channel": "whatsapp", "to": "89990000000", "text": "x"})).await;
    assert_eq!(status, 202, "8… matches 7…");
}

#[tokio::test]
async fn bad_send_bodies_answer_422_and_unknown_tenants_404() {
    let (app, _) = app_with_recorder(OPEN).await;
    for (body, reason) in [
        (json!({"tenant": 1, "channel": "whatsapp", "text": "x"}), "missing_to"),
        (json!({"tenant": 1, "channel": "pigeon", "to": "1", "text": "x"}), "invalid_channel"),
        (json!({"tenant": 1, "channel": "whatsapp", "to": "79991234567"}), "text_or_attachments_required"),
        (json!({"channel": "whatsapp", "to": "79991234567", "text": "x"}), "invalid_tenant"),
    ] {
        let (status, answer) = app.admin_post("/send", &body).await;
        assert_eq!(
            (status, answer["error"].clone(), answer["reason"].clone()),
            (422, json!("invalid_payload"), json!(reason))
        );
    }
    let (status, body) =
        app.admin_post("/send", &json!({"tenant": 9, "channel": "whatsapp", "to": "79991234567", "text": "x"})).await;
    assert_eq!((status, body["error"].clone()), (404, json!("tenant_not_found")));
    let (status, body) = app.admin_get("/send/nope").await;
    assert_eq!((status, body), (404, json!({"ok": false, "error": "job_not_found"})));
}

#[tokio::test]
async fn a_send_to_a_known_lead_is_delivered_and_recorded() {
    let (app, recorder) = app_with_recorder(OPEN).await;
    known_lead(&app).await;
    let (status, body) = app.admin_post("/send", &wa_send("Ваш заказ готов")).await;
    assert_eq!(status, 202);
    assert_eq!(body["queued"], true);
    let job_id = body["job_id"].as_str().unwrap().to_string();
    let job = eventually(Duration::from_secs(10), || {
        let app = &app;
        let job_id = job_id.clone();
        async move {
            let (_, job) = app.admin_get(&format!("/send/{job_id}")).await;
            (job["status"] == "sent").then_some(job)
        }
    })
    .await;
    assert_eq!(job["result"], json!({"ok": true}));
    let sent = recorder.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "79991234567");
    assert_eq!(sent[0].text.as_deref(), Some("Ваш заказ готов"));
    let conn = db(&app.data_dir);
    let (author, status, direction): (String, String, String) = conn
        .query_row("SELECT author, status, direction FROM messages WHERE outbox_job_id = ?1", [&job_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((author.as_str(), status.as_str(), direction.as_str()), ("operator", "sent", "out"));
}

#[tokio::test]
async fn delivery_acks_that_beat_the_send_result_still_update_the_message() {
    let (app, recorder) = app_with_recorder(OPEN).await;
    known_lead(&app).await;
    // "read" then a late "delivered", both before the send call returns.
    *recorder.acks_during_send.lock().unwrap() = vec!["read", "delivered"];
    let (status, body) = app.admin_post("/send", &wa_send("Счёт отправлен")).await;
    assert_eq!(status, 202);
    let job_id = body["job_id"].as_str().unwrap().to_string();
    let dir = app.data_dir.clone();
    let status = eventually(Duration::from_secs(10), || {
        let (dir, job_id) = (dir.clone(), job_id.clone());
        async move {
            let status: Option<String> = db(&dir)
                .query_row("SELECT status FROM messages WHERE outbox_job_id = ?1", [&job_id], |r| r.get(0))
                .ok();
            status.filter(|s| s == "read" || s == "delivered")
        }
    })
    .await;
    assert_eq!(status, "read");
    // The out-of-order "delivered" never downgrades it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status: String =
        db(&dir).query_row("SELECT status FROM messages WHERE outbox_job_id = ?1", [&job_id], |r| r.get(0)).unwrap();
    assert_eq!(status, "read");
}

/// A crash after the send but before the worker's (unfsynced) ack brings the job back;
/// its recorded result keeps it from going out twice.
#[tokio::test]
async fn a_redelivered_job_that_was_already_sent_is_not_sent_again() {
    let (app, recorder) = app_with_recorder(OPEN).await;
    known_lead(&app).await;
    let (status, body) = app.admin_post("/send?wait=true", &wa_send("Один раз")).await;
    assert_eq!(status, 200, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_string();
    assert_eq!(recorder.sent().len(), 1);
    // The queue item as the worker had leased it, back again.
    let item = json!({"job_id": job_id, "origin": "api", "message": wa_send("Один раз")});
    let options = avio::queue::EnqueueOptions { durable: true, ..Default::default() };
    app.state.queues.enqueue(avio::queue::OUTBOX, &item, options).await.unwrap();
    app.state.wake.outbox.notify_one();
    eventually(Duration::from_secs(10), || async {
        let depths = app.state.queues.depths().await.unwrap();
        depths.iter().all(|d| d.queue != avio::queue::OUTBOX || d.depth == 0).then_some(())
    })
    .await;
    assert_eq!(recorder.sent().len(), 1, "sent twice");
}

#[tokio::test]
async fn wait_true_returns_the_result() {
    let (app, recorder) = app_with_recorder(OPEN).await;
    known_lead(&app).await;
    let (status, body) = app.admin_post("/send?wait=true", &wa_send("сейчас")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert!(body["job_id"].is_string());
    assert_eq!(recorder.sent().len(), 1);
}

#[tokio::test]
async fn no_lead_means_err_no_lead_and_nothing_delivered() {
    let (app, recorder) = app_with_recorder(OPEN).await;
    let (status, body) = app.admin_post("/send?wait=true", &wa_send("hi")).await;
    assert_eq!((status, body["ok"].clone(), body["error"].clone()), (200, json!(false), json!("err:no_lead")));
    assert!(recorder.sent().is_empty());
    // "me" (Saved Messages) needs no lead.
    let (status, body) = app
        .admin_post("/send?wait=true", &json!({"tenant": 1, "channel": "telegram", "to": "me", "text": "note"}))
        .await;
    assert_eq!((status, body["ok"].clone()), (200, json!(true)), "{body}");
    assert_eq!(recorder.sent()[0].to, "me");
}

#[tokio::test]
async fn attachments_are_downloaded_and_the_caption_becomes_the_text() {
    let files = axum::Router::new()
        .route(
            "/price.pdf",
            axum::routing::get(|| async { ([("content-type", "application/pdf")], b"%PDF-1.4 tiny".to_vec()) }),
        )
        .route("/huge.bin", axum::routing::get(|| async { vec![0u8; 26 * 1024 * 1024] }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let files_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, files).await.unwrap() });

    let (app, recorder) = app_with_recorder(OPEN).await;
    known_lead(&app).await;
    let body = json!({"tenant": 1, "channel": "whatsapp", "to": "79991234567",
                      "attachments": [{"type": "file", "url": format!("{files_url}/price.pdf"), "caption": "Прайс"}]});
    let (status, answer) = app.admin_post("/send?wait=true", &body).await;
    assert_eq!((status, answer["ok"].clone()), (200, json!(true)), "{answer}");
    let sent = recorder.sent();
    assert_eq!(sent[0].text.as_deref(), Some("Прайс"));
    assert_eq!(sent[0].files[0].name, "price.pdf");
    assert_eq!(sent[0].files[0].mime, "application/pdf");
    assert_eq!(&sent[0].files[0].bytes[..], b"%PDF-1.4 tiny");

    let too_big = json!({"tenant": 1, "channel": "whatsapp", "to": "79991234567", "text": "x",
                         "attachments": [{"type": "file", "url": format!("{files_url}/huge.bin")}]});
    let (_, answer) = app.admin_post("/send?wait=true", &too_big).await;
    assert_eq!(answer["error"], "provider_refused");
    assert_eq!(recorder.sent().len(), 1);
}

#[tokio::test]
async fn failing_sends_retry_then_dead_letter_and_can_be_retried() {
    let (app, recorder) = app_with_recorder(&[
        ("OUTBOX_ENABLED", "true"),
        ("OUTBOX_WHITELIST", "*"),
        ("OUTBOX_RETRY_BASE_MS", "10"),
        ("OUTBOX_MAX_ATTEMPTS", "3"),
    ])
    .await;
    known_lead(&app).await;
    recorder.fail_next(SendError::Transient("network".into()), 1);
    let (_, answer) = app.admin_post("/send?wait=true", &wa_send("retry me")).await;
    assert_eq!(answer["ok"], true, "one failure is retried: {answer}");

    recorder.fail_next(SendError::Transient("network".into()), 3);
    let (_, answer) = app.admin_post("/send?wait=true", &wa_send("dead")).await;
    assert_eq!(answer["error"], "transient_error", "{answer}");
    let (_, queues) = app.admin_get("/admin/queues").await;
    let dead = queues["dead"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["queue"], "outbox:send");
    let id = dead[0]["id"].as_u64().unwrap();
    let (status, body) = app.admin_post(&format!("/admin/queues/dead/{id}/retry"), &json!({})).await;
    assert_eq!((status, body["ok"].clone()), (200, json!(true)));
    let recorder2 = recorder.clone();
    eventually(Duration::from_secs(10), || {
        let r = recorder2.clone();
        async move { r.sent().iter().any(|m| m.text.as_deref() == Some("dead")).then_some(()) }
    })
    .await;
    let (status, body) = app.admin_post("/admin/queues/dead/999999/retry", &json!({})).await;
    assert_eq!((status, body["error"].clone()), (404, json!("dead_letter_not_found")));
}

#[tokio::test]
async fn flood_wait_postpones_without_failing() {
    let (app, recorder) =
        app_with_recorder(&[("OUTBOX_ENABLED", "true"), ("OUTBOX_WHITELIST", "*"), ("OUTBOX_MAX_ATTEMPTS", "1")]).await;
    known_lead(&app).await;
    recorder.fail_next(SendError::RateLimited(Duration::from_millis(50)), 3);
    let (_, answer) = app.admin_post("/send?wait=true", &wa_send("later")).await;
    assert_eq!(answer["ok"], true, "rate limits do not use up attempts: {answer}");
}

#[tokio::test]
async fn state_reset_forgets_a_dialog() {
    let app = spawn_app().await;
    app.tenant_with_key(1).await;
    let tenant = avio::domain::TenantId::new(1).unwrap();
    app.state.dialogs.update(tenant, 5, |s| s.takeover = true).await.unwrap();
    let (status, body) = app.admin_post("/admin/state/reset", &json!({"tenant": 1, "contact": 5})).await;
    assert_eq!((status, body["existed"].clone()), (200, json!(true)));
    assert!(!app.state.dialogs.get(tenant, 5).await.unwrap().takeover);
    let (status, body) = app.admin_post("/admin/state/reset", &json!({"tenant": "x", "contact": 5})).await;
    assert_eq!((status, body["reason"].clone()), (422, json!("invalid_tenant")));
}
