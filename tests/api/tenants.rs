use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn health_answers_ok_while_both_stores_are_writable() {
    let app = spawn_app().await;
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["sqlite"], "ok");
    assert_eq!(body["redb"], "ok");
}

#[tokio::test]
async fn admin_routes_require_the_admin_token() {
    let app = spawn_app().await;
    let (status, body) = app.get("/admin/tenants").await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"detail": "invalid_admin_token"}));
    let r = app.http.get(app.url("/admin/tenants")).header("X-Admin-Token", "wrong").send().await.unwrap();
    let (status, body) = split(r).await;
    assert_eq!((status, body), (401, json!({"detail": "invalid_admin_token"})));
    let r = app
        .http
        .get(app.url("/admin/tenants"))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = app.get("/metrics").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn creating_a_tenant_writes_a_private_tenant_json() {
    let app = spawn_app().await;
    let (status, body) = app
        .admin_post(
            "/admin/tenants",
            &json!({"id": 7, "name": "Мебель", "passport": {"brand": "Уют", "agent_name": "Анна", "city": "Казань"},
                    "settings": {"whatsapp_link": "https://wa.me/7999"}, "behavior": {"auto_reply": true}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["tenant"]["id"], 7);
    assert_eq!(body["tenant"]["passport"]["brand"], "Уют");

    let path = app.data_dir.join("tenants/7/tenant.json");
    let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(on_disk["settings"]["whatsapp_link"], "https://wa.me/7999");
    assert_eq!(file_mode(&path), 0o600);
    assert_eq!(file_mode(&app.data_dir.join("tenants/7")), 0o700);
    assert_eq!(file_mode(&app.data_dir.join("avio.db")), 0o600);
    assert_eq!(file_mode(&app.data_dir.join("queues.redb")), 0o600);

    let (status, body) = app.admin_get("/admin/tenants").await;
    assert_eq!(status, 200);
    assert_eq!(body["tenants"].as_array().unwrap().len(), 1);
    let (status, body) = app.admin_get("/admin/tenants/7").await;
    assert_eq!((status, body["tenant"]["name"].clone()), (200, json!("Мебель")));
}

#[tokio::test]
async fn tenant_ids_are_assigned_when_not_given() {
    let app = spawn_app().await;
    let (_, a) = app.admin_post("/admin/tenants", &json!({"name": "A"})).await;
    let (_, b) = app.admin_post("/admin/tenants", &json!({"name": "B"})).await;
    assert_eq!(a["tenant"]["id"], 1);
    assert_eq!(b["tenant"]["id"], 2);
}

#[tokio::test]
async fn a_taken_tenant_id_answers_409_tenant_exists() {
    let app = spawn_app().await;
    app.admin_post("/admin/tenants", &json!({"id": 3, "name": "A"})).await;
    let (status, body) = app.admin_post("/admin/tenants", &json!({"id": 3, "name": "B"})).await;
    assert_eq!(status, 409);
    assert_eq!(body, json!({"ok": false, "error": "tenant_exists"}));
}

#[tokio::test]
async fn bad_tenant_bodies_answer_422_with_a_reason() {
    let app = spawn_app().await;
    let (status, body) = app.admin_post("/admin/tenants", &json!({"id": "seven", "name": "A"})).await;
    assert_eq!(status, 422);
    assert_eq!(body, json!({"ok": false, "error": "invalid_payload", "reason": "invalid_tenant"}));
    let (status, body) = app.admin_post("/admin/tenants", &json!({"passport": {}})).await;
    assert_eq!((status, body["reason"].clone()), (422, json!("name_required")));
    let r = app
        .http
        .post(app.url("/admin/tenants"))
        .header("X-Admin-Token", ADMIN_TOKEN)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = split(r).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"], "invalid_payload");
    assert_eq!(body["reason"], "malformed_json");
}

#[tokio::test]
async fn an_oversized_body_answers_413() {
    let app = spawn_app().await;
    let big = "x".repeat(2 * 1024 * 1024);
    let (status, body) = app.admin_post("/admin/tenants", &json!({"name": big})).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "payload_too_large");
}

#[tokio::test]
async fn unknown_or_malformed_tenant_ids_on_admin_routes() {
    let app = spawn_app().await;
    let (status, body) = app.admin_get("/admin/tenants/99").await;
    assert_eq!((status, body), (404, json!({"ok": false, "error": "tenant_not_found"})));
    let (status, body) = app.admin_get("/admin/tenants/abc").await;
    assert_eq!(status, 422);
    assert_eq!(body["reason"], "invalid_tenant");
    for path in ["/admin/key/get", "/admin/key/get?tenant=x", "/admin/keys/list?tenant=", "/admin/key/get?tenant=-1"] {
        let (status, body) = app.admin_get(path).await;
        assert_eq!(status, 422, "{path}");
        assert_eq!(body, json!({"ok": false, "error": "invalid_payload", "reason": "invalid_tenant"}), "{path}");
    }
    for path in ["/admin/key/get?tenant=42", "/admin/keys/list?tenant=42", "/admin/provider-token/42"] {
        let (status, body) = app.admin_get(path).await;
        assert_eq!((status, body), (404, json!({"ok": false, "error": "tenant_not_found"})), "{path}");
    }
}

#[tokio::test]
async fn patching_a_tenant_merges_sections() {
    let app = spawn_app().await;
    app.admin_post("/admin/tenants", &json!({"id": 1, "name": "A", "passport": {"brand": "X", "city": "Омск"}})).await;
    let r = app
        .http
        .patch(app.url("/admin/tenants/1"))
        .header("X-Admin-Token", ADMIN_TOKEN)
        .json(&json!({"name": "B", "passport": {"city": null, "agent_name": "Ольга"}, "behavior": {"auto_reply_enabled": false}}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"]["name"], "B");
    assert_eq!(body["tenant"]["passport"], json!({"brand": "X", "agent_name": "Ольга"}));
    assert_eq!(body["tenant"]["behavior"]["auto_reply_enabled"], false);
    let (_, list) = app.admin_get("/admin/tenants").await;
    assert_eq!(list["tenants"][0]["name"], "B");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/metrics")).header("X-Admin-Token", ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("# TYPE queue_depth gauge"), "{text}");
    assert!(text.contains("queue_depth{queue=\"inbox:message_in\"} 0"), "{text}");
}
