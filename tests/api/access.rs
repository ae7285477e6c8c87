use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn key_get_creates_one_key_and_returns_it_again() {
    let app = spawn_app().await;
    app.admin_post("/admin/tenants", &json!({"id": 5, "name": "A"})).await;
    let (status, first) = app.admin_get("/admin/key/get?tenant=5").await;
    assert_eq!(status, 200);
    assert_eq!(first["ok"], true);
    assert_eq!(first["tenant"], 5);
    let key = first["key"].as_str().unwrap();
    assert!(key.len() >= 32);
    assert!(first["link"].as_str().unwrap().ends_with(&format!("/connect/wa?tenant=5&k={key}")));
    let (_, second) = app.admin_get("/admin/key/get?tenant=5").await;
    assert_eq!(second["key"], first["key"]);
}

#[tokio::test]
async fn creating_a_second_key_answers_409_key_already_exists() {
    let app = spawn_app().await;
    app.admin_post("/admin/tenants", &json!({"id": 5, "name": "A"})).await;
    let (status, created) = app.admin_post("/admin/key?tenant=5", &json!({})).await;
    assert_eq!(status, 201, "{created}");
    let (status, body) = app.admin_post("/admin/key?tenant=5", &json!({})).await;
    assert_eq!((status, body), (409, json!({"ok": false, "error": "key_already_exists"})));
    let (status, body) = app.admin_post("/admin/key?tenant=5", &json!({"key": "my-own-saved-key-123"})).await;
    assert_eq!((status, body), (409, json!({"ok": false, "error": "key_already_exists"})));

    let (status, body) = app.admin_delete("/admin/key?tenant=5").await;
    assert_eq!((status, body["deleted"].clone()), (200, json!(true)));
    let (status, body) = app.admin_post("/admin/key?tenant=5", &json!({"key": "my-own-saved-key-123"})).await;
    assert_eq!(status, 201);
    assert_eq!(body["key"], "my-own-saved-key-123");
    assert_ne!(body["key"], created["key"]);
}

#[tokio::test]
async fn a_tenant_key_opens_only_its_own_tenant() {
    let app = spawn_app().await;
    let key1 = app.tenant_with_key(1).await;
    let key2 = app.tenant_with_key(2).await;
    let (status, body) = app.get(&format!("/pub/settings/get?tenant=1&k={key1}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["cfg"]["id"], 1);
    let (status, body) = app.get(&format!("/pub/settings/get?tenant=1&k={key2}")).await;
    assert_eq!((status, body), (401, json!({"detail": "invalid_key"})));
}

#[tokio::test]
async fn a_deleted_key_stops_working() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    app.admin_delete("/admin/key?tenant=1").await;
    let (status, body) = app.get(&format!("/pub/settings/get?tenant=1&k={key}")).await;
    assert_eq!((status, body), (401, json!({"detail": "invalid_key"})));
}

#[tokio::test]
async fn public_key_opens_any_tenant_but_only_in_the_query() {
    let app = spawn_app().await;
    app.tenant_with_key(3).await;
    let (status, _) = app.get(&format!("/pub/settings/get?tenant=3&k={PUBLIC_KEY}")).await;
    assert_eq!(status, 200);
    let r = app
        .http
        .get(app.url("/pub/settings/get?tenant=3"))
        .header("X-Public-Key", PUBLIC_KEY)
        .header("Authorization", format!("Bearer {PUBLIC_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(split(r).await, (401, json!({"detail": "invalid_key"})));
}

#[tokio::test]
async fn public_routes_check_the_tenant_then_the_key() {
    let app = spawn_app().await;
    app.tenant_with_key(1).await;
    let (status, body) = app.get(&format!("/pub/settings/get?k={PUBLIC_KEY}")).await;
    assert_eq!((status, body), (422, json!({"ok": false, "error": "invalid_payload", "reason": "invalid_tenant"})));
    let (status, body) = app.get(&format!("/pub/settings/get?tenant=abc&k={PUBLIC_KEY}")).await;
    assert_eq!((status, body["reason"].clone()), (422, json!("invalid_tenant")));
    let (status, body) = app.get("/pub/settings/get?tenant=1&k=wrong").await;
    assert_eq!((status, body), (401, json!({"detail": "invalid_key"})));
    let (status, body) = app.get("/pub/settings/get?tenant=1").await;
    assert_eq!((status, body), (401, json!({"detail": "invalid_key"})));
    // An unknown tenant looks the same as a wrong key on public routes.
    let (status, body) = app.get(&format!("/pub/settings/get?tenant=99&k={PUBLIC_KEY}")).await;
    assert_eq!((status, body), (401, json!({"detail": "invalid_key"})));
}

#[tokio::test]
async fn admin_token_works_as_k_only_in_compat_mode() {
    let strict = spawn_app().await;
    strict.tenant_with_key(1).await;
    let (status, _) = strict.get(&format!("/pub/settings/get?tenant=1&k={ADMIN_TOKEN}")).await;
    assert_eq!(status, 401);

    let compat = spawn_app_with(&[("PUBLIC_KEY", "")]).await;
    compat.tenant_with_key(1).await;
    let (status, body) = compat.get(&format!("/pub/settings/get?tenant=1&k={ADMIN_TOKEN}")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn settings_save_updates_the_passport_and_settings_get_hides_secrets() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let (status, body) = app
        .post(
            &format!("/pub/settings/save?tenant=1&k={key}"),
            &json!({"passport": {"brand": "Новый бренд"}, "settings": {"catalog_url": "https://shop.example/c"},
                    "integrations": {"avito": {"access_token": "injected"}}}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"ok": true})));
    // Secrets written by integrations never reach the front.
    app.state
        .files
        .update(avio::domain::TenantId::new(1).unwrap(), |doc| {
            doc.integrations.insert(
                "avito".into(),
                json!({"access_token": "AT-secret", "refresh_token": "RT-secret", "client_secret": "CS", "account_id": 42}),
            );
        })
        .await
        .unwrap();
    let (status, body) = app.get(&format!("/pub/settings/get?tenant=1&k={key}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["cfg"]["passport"]["brand"], "Новый бренд");
    assert_eq!(body["cfg"]["settings"]["catalog_url"], "https://shop.example/c");
    assert_eq!(body["cfg"]["integrations"]["avito"]["account_id"], 42);
    let text = body.to_string();
    for secret in ["AT-secret", "RT-secret", "\"CS\"", "injected"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test]
async fn ensure_returns_one_provider_token_for_every_internal_secret() {
    let app =
        spawn_app_with(&[("WA_WEB_TOKEN", "wa-web-token-123456"), ("WEBHOOK_SECRET", "webhook-secret-123456")]).await;
    app.tenant_with_key(7).await;
    let r =
        app.http.post(app.url("/internal/tenant/7/ensure")).header("X-Auth-Token", ADMIN_TOKEN).send().await.unwrap();
    let (status, first) = split(r).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["ok"], true);
    assert_eq!(first["tenant"], 7);
    let token = first["provider_token"].as_str().unwrap().to_string();
    for secret in ["wa-web-token-123456", "webhook-secret-123456"] {
        let r = app.http.post(app.url(&format!("/internal/tenant/7/ensure?token={secret}"))).send().await.unwrap();
        let (status, body) = split(r).await;
        assert_eq!(status, 200);
        assert_eq!(body["provider_token"], token.as_str(), "reused on repeat");
    }
    let r = app.http.post(app.url("/internal/tenant/7/ensure?token=nope")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (_, listed) = app.admin_get("/admin/keys/list?tenant=7").await;
    assert_eq!(listed["provider_token"], token.as_str());
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed["keys"][0]["primary"], true);
    let (_, direct) = app.admin_get("/admin/provider-token/7").await;
    assert_eq!(direct["provider_token"], token.as_str());

    let file = app.data_dir.join("tenants/7/provider_token.json");
    assert_eq!(file_mode(&file), 0o600);
    let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(on_disk["provider_token"], token.as_str());
}

#[tokio::test]
async fn keys_and_tokens_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), &[]).await;
    let key = app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    app.stop().await;

    let app = spawn_app_in(dir.path(), &[]).await;
    let (status, _) = app.get(&format!("/pub/settings/get?tenant=1&k={key}")).await;
    assert_eq!(status, 200);
    assert_eq!(app.provider_token(1).await, token);
    let (_, body) = app.admin_get("/admin/key/get?tenant=1").await;
    assert_eq!(body["key"], key.as_str());
    app.stop().await;
}

#[tokio::test]
async fn a_provider_token_file_and_row_each_recreate_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), &[]).await;
    app.tenant_with_key(1).await;
    app.tenant_with_key(2).await;
    let token1 = app.provider_token(1).await;
    let token2 = app.provider_token(2).await;
    app.stop().await;

    // Tenant 1 loses its file, tenant 2 its database row.
    std::fs::remove_file(dir.path().join("tenants/1/provider_token.json")).unwrap();
    let db = rusqlite_delete(dir.path(), 2);
    assert_eq!(db, 1);

    let app = spawn_app_in(dir.path(), &[]).await;
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tenants/1/provider_token.json")).unwrap()).unwrap();
    assert_eq!(file["provider_token"], token1.as_str());
    assert_eq!(app.provider_token(2).await, token2);
    let (_, listed) = app.admin_get("/admin/keys/list?tenant=2").await;
    assert_eq!(listed["provider_token"], token2.as_str());
    app.stop().await;
}

fn rusqlite_delete(dir: &std::path::Path, tenant: i64) -> usize {
    let conn = rusqlite::Connection::open(dir.join("avio.db")).unwrap();
    conn.execute("DELETE FROM provider_tokens WHERE tenant = ?1", [tenant]).unwrap()
}
