//! Avito routes (SPEC 4 and 6.3): connecting (`/connect/avito`, its callback, own
//! credentials), status, refresh and logout for the cabinet, the admin's view of
//! webhook subscriptions, and the inbound webhook. Thin: the work is in
//! `channels::avito`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, ApiJson, PubTenant, TenantParam};
use crate::channels::avito::AvitoError;
use crate::channels::avito::inbound::{Skip, parse_webhook};
use crate::domain::{Channel, now_s};
use crate::pipeline::accept_incoming;
use crate::queue::Enqueued;

impl From<AvitoError> for ApiError {
    fn from(e: AvitoError) -> Self {
        match e {
            AvitoError::NotConfigured => ApiError::code(StatusCode::SERVICE_UNAVAILABLE, "avito_not_configured")
                .with("detail", "set AVITO_CLIENT_ID and AVITO_CLIENT_SECRET, or connect with own credentials"),
            AvitoError::NotConnected => ApiError::code(StatusCode::CONFLICT, "avito_not_connected"),
            AvitoError::Unauthorized(reason) => {
                ApiError::code(StatusCode::CONFLICT, "avito_unauthorized").with("reason", reason)
            }
            AvitoError::InvalidCredentials(reason) => {
                ApiError::code(StatusCode::BAD_REQUEST, "avito_invalid_credentials").with("reason", reason)
            }
            AvitoError::Rejected { status, .. } => {
                ApiError::code(StatusCode::BAD_GATEWAY, "avito_rejected").with("upstream_status", status)
            }
            AvitoError::RateLimited(_) | AvitoError::Unavailable(_) => {
                ApiError::code(StatusCode::BAD_GATEWAY, "avito_unavailable")
            }
            AvitoError::Store(e) => e.into(),
            AvitoError::Queue(e) => e.into(),
        }
    }
}

fn with_ok(mut status: Value) -> Json<Value> {
    if let Value::Object(map) = &mut status {
        map.insert("ok".into(), Value::Bool(true));
    }
    Json(status)
}

/// `GET /connect/avito?tenant=&k=`: 302 to Avito's authorize page.
pub async fn connect(State(state): State<AppState>, caller: PubTenant) -> ApiResult<Response> {
    let url = state.avito.authorize_url(caller.tenant).await?;
    tracing::info!(event = "avito_oauth_started", tenant = %caller.tenant);
    Ok((StatusCode::FOUND, [(header::LOCATION, url), (header::CACHE_CONTROL, "no-store".into())]).into_response())
}

/// `GET /connect/avito/callback?code=&state=`: where Avito sends the browser back.
pub async fn callback(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let query = query_of(&uri);
    let presented = query.get("state").map(String::as_str).unwrap_or("");
    let Some(tenant) = state.avito.take_oauth_state(presented).await? else {
        tracing::warn!(event = "avito_oauth_rejected", reason = "invalid_state");
        return Err(ApiError::code(StatusCode::BAD_REQUEST, "invalid_state"));
    };
    let Some(code) = query.get("code").filter(|c| !c.trim().is_empty()) else {
        let reason = query.get("error").cloned().unwrap_or_else(|| "missing_code".into());
        tracing::warn!(event = "avito_oauth_rejected", tenant = %tenant, reason = %reason);
        return Err(ApiError::code(StatusCode::BAD_REQUEST, "avito_access_denied").with("reason", reason));
    };
    let status = state.avito.connect_oauth(tenant, code.trim()).await?;
    let account = status.get("account_login").and_then(Value::as_str).unwrap_or("");
    let page = format!(
        "<!doctype html><html lang=\"ru\"><meta charset=\"utf-8\"><title>Авито подключено</title>\
         <body><h1>Авито подключено</h1><p>Аккаунт {}. Это окно можно закрыть.</p></body></html>",
        html_escape(account)
    );
    Ok(Html(page).into_response())
}

/// The query string as a map (first value wins).
fn query_of(uri: &Uri) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(uri.query().unwrap_or("")).unwrap_or_default();
    for (k, v) in pairs {
        map.entry(k).or_insert(v);
    }
    map
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `POST /pub/avito/credentials {client_id, client_secret}`: the tenant's own app.
pub async fn credentials(
    State(state): State<AppState>,
    caller: PubTenant,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let field = |key: &'static str| {
        body.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::invalid(format!("missing_{key}")))
    };
    let (client_id, client_secret) = (field("client_id")?, field("client_secret")?);
    let status = state.avito.connect_own_credentials(caller.tenant, client_id, client_secret).await?;
    Ok(with_ok(status))
}

/// `GET /pub/avito/status`.
pub async fn status(State(state): State<AppState>, caller: PubTenant) -> Json<Value> {
    with_ok(state.avito.status(caller.tenant).await)
}

/// `POST /pub/avito/refresh`: fresh token, webhook registered again.
pub async fn refresh(State(state): State<AppState>, caller: PubTenant) -> ApiResult<Json<Value>> {
    Ok(with_ok(state.avito.refresh_connection(caller.tenant).await?))
}

/// `POST /pub/avito/logout`: forgets the tokens.
pub async fn logout(State(state): State<AppState>, caller: PubTenant) -> ApiResult<Json<Value>> {
    state.avito.logout(caller.tenant).await?;
    Ok(Json(json!({"ok": true})))
}

/// `GET /admin/avito/subscriptions?tenant=`: Avito's list of the account's webhooks.
pub async fn subscriptions(
    _: Admin,
    State(state): State<AppState>,
    TenantParam(tenant): TenantParam,
) -> ApiResult<Json<Value>> {
    if !state.access.tenant_exists(tenant) {
        return Err(ApiError::tenant_not_found());
    }
    let subscriptions = state.avito.subscriptions(tenant).await?;
    Ok(Json(json!({"ok": true, "tenant": tenant, "subscriptions": subscriptions})))
}

/// `POST /admin/avito/unsubscribe?tenant=` with an optional `{"url"}` (default: Avio's own).
pub async fn unsubscribe(
    _: Admin,
    State(state): State<AppState>,
    TenantParam(tenant): TenantParam,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    if !state.access.tenant_exists(tenant) {
        return Err(ApiError::tenant_not_found());
    }
    let url = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: Value = serde_json::from_slice(&body).map_err(|_| ApiError::invalid("malformed_json"))?;
        value.get("url").and_then(Value::as_str).map(str::trim).filter(|u| !u.is_empty()).map(str::to_string)
    };
    state.avito.unsubscribe(tenant, url).await?;
    Ok(Json(json!({"ok": true})))
}

fn provider_token(headers: &HeaderMap, uri: &Uri) -> String {
    if let Some(token) = headers.get("x-provider-token").and_then(|v| v.to_str().ok()) {
        return token.trim().to_string();
    }
    query_of(uri).remove("token").unwrap_or_default()
}

/// `POST /webhook/avito?token=`: Avito waits 2 s, so this only parses and queues.
pub async fn webhook(State(state): State<AppState>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let result = webhook_inner(&state, &headers, &uri, &body).await;
    let status = match &result {
        Ok(_) => 200,
        Err(ApiError::InvalidKey | ApiError::InvalidAdminToken) => 401,
        Err(ApiError::InvalidPayload(_)) => 422,
        Err(ApiError::Code { status, .. }) => status.as_u16(),
        Err(ApiError::Internal(_)) => 500,
    };
    state.metrics.webhook(status, "avito");
    state.guardrails.webhook_answered("avito", status);
    if status >= 400 {
        tracing::warn!(event = "webhook_rejected", ch = "avito", status);
    }
    result.into_response()
}

async fn webhook_inner(state: &AppState, headers: &HeaderMap, uri: &Uri, body: &Bytes) -> ApiResult<Json<Value>> {
    let Some(tenant) = state.access.tenant_for_provider_token(&provider_token(headers, uri)) else {
        return Err(ApiError::code(StatusCode::UNAUTHORIZED, "invalid_provider_token"));
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiError::invalid("malformed_json"))?;
    // Only when the payload lacks `user_id` is the stored account needed.
    let needs_account = value.pointer("/payload/value/user_id").is_none();
    let account_id = if needs_account {
        state.avito.integration(tenant).await.ok().flatten().and_then(|i| i.account_id)
    } else {
        None
    };
    let message = match parse_webhook(tenant, &value, account_id.as_deref(), now_s()) {
        Ok(message) => message,
        Err(skip) => {
            let chat = value.pointer("/payload/value/chat_id").and_then(Value::as_str).unwrap_or("");
            tracing::info!(event = "avito_webhook_skip", reason = skip.reason(), tenant = %tenant, peer = chat);
            let mut answer = json!({"ok": true, "queued": false, "skipped": skip.reason()});
            if skip == Skip::NoPayload {
                // Avito's reachability check posts `{}`: a plain 200 is all it needs.
                answer = json!({"ok": true, "queued": false});
            }
            return Ok(Json(answer));
        }
    };
    if message.from_me {
        let echo = state
            .store
            .is_own_echo(tenant, Channel::Avito, message.message_id.clone(), message.peer.clone(), message.text.clone())
            .await?;
        if echo {
            tracing::info!(event = "avito_webhook_skip", reason = Skip::OwnMessage.reason(), tenant = %tenant,
                peer = %message.peer);
            return Ok(Json(json!({"ok": true, "queued": false, "skipped": Skip::OwnMessage.reason()})));
        }
    }
    tracing::info!(event = "webhook_received", ch = "avito", tenant = %tenant, peer = %message.peer,
        message_id = %message.message_id, from_me = message.from_me);
    let outcome = accept_incoming(state, &message).await?;
    if let Err(e) = state.avito.remember_chat(tenant, &message.peer).await {
        tracing::warn!(event = "avito_last_chat_failed", tenant = %tenant, error = %e);
    }
    Ok(Json(match outcome {
        Enqueued::Queued(_) => json!({"ok": true, "queued": true}),
        Enqueued::Duplicate => json!({"ok": true, "queued": false, "duplicate": true}),
    }))
}
