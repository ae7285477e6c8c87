//! Provider webhooks (SPEC 5.1): `POST /webhook` (WhatsApp-style events) and
//! `POST /webhook/telegram`, plus the cached WhatsApp QR they feed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::PubTenant;
use crate::domain::{MessageIn, Rejected, TenantId, now_s};
use crate::metrics::WaToAppLabels;
use crate::pipeline::accept_incoming;

// The cache itself lives in `channels::qr`, shared with the in-process sessions.
pub use crate::channels::qr::{qr_key, qr_last_key};

/// Stores a QR for `/pub/wa/qr.svg` (used by webhooks and the in-process driver).
pub async fn cache_qr(
    state: &AppState,
    tenant: TenantId,
    qr_id: &str,
    svg: &str,
) -> Result<(), crate::queue::QueueError> {
    crate::channels::qr::cache(&state.queues, tenant, qr_id, svg).await
}

fn token(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    headers
        .get("x-provider-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            let query = uri.query()?;
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .ok()?
                .into_iter()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v)
        })
        .unwrap_or_default()
}

/// JSON body, tenant and provider token, in that order: 422 malformed, 422
/// `invalid_tenant`, then 401.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    body: &Bytes,
) -> ApiResult<(TenantId, Value)> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiError::invalid("malformed_json"))?;
    if !value.is_object() {
        return Err(ApiError::invalid("expected_object"));
    }
    let tenant = value.get("tenant").and_then(TenantId::from_json).ok_or_else(ApiError::invalid_tenant)?;
    if !state.access.check_provider_token(tenant, &token(headers, uri)) {
        return Err(ApiError::code(StatusCode::UNAUTHORIZED, "invalid_provider_token"));
    }
    Ok((tenant, value))
}

fn status_of(result: &ApiResult<Json<Value>>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(ApiError::InvalidKey | ApiError::InvalidAdminToken) => 401,
        Err(ApiError::InvalidPayload(_)) => 422,
        Err(ApiError::Code { status, .. }) => status.as_u16(),
        Err(ApiError::Internal(_)) => 500,
    }
}

fn observe(state: &AppState, channel: &str, result: &ApiResult<Json<Value>>) {
    let status = status_of(result);
    state.metrics.webhook(status, channel);
    state.guardrails.webhook_answered(channel, status);
    if status >= 400 {
        let reason = match result {
            Err(ApiError::InvalidPayload(reason)) => reason.as_str(),
            Err(ApiError::Code { code, .. }) => code,
            _ => "",
        };
        tracing::warn!(event = "webhook_rejected", ch = channel, status, reason);
    }
}

fn rejected(state: &AppState, channel: &str, reason: Rejected) -> ApiError {
    if reason.0 == "no_text_or_media" {
        tracing::warn!(event = "skip_no_text", ch = channel);
    }
    let _ = state;
    ApiError::invalid(reason.0)
}

async fn enqueue(state: &AppState, message: MessageIn) -> ApiResult<Json<Value>> {
    tracing::info!(event = "webhook_received", ch = %message.channel, tenant = %message.tenant, peer = %message.peer,
        message_id = %message.message_id);
    accept_incoming(state, &message).await?;
    Ok(Json(json!({"ok": true, "queued": true})))
}

/// `POST /webhook`: `messages.incoming`, `qr`, `ready`.
pub async fn whatsapp(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let event = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("event").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "messages.incoming".into());
    let result = whatsapp_inner(&state, &headers, &uri, &body, &event).await;
    observe(&state, "whatsapp", &result);
    let status = if result.is_ok() { "ok" } else { "error" };
    state.metrics.wa_to_app.get_or_create(&WaToAppLabels { event: event.clone(), status: status.into() }).inc();
    result.into_response()
}

async fn whatsapp_inner(
    state: &AppState,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    body: &Bytes,
    event: &str,
) -> ApiResult<Json<Value>> {
    let (tenant, value) = authenticate(state, headers, uri, body)?;
    match event {
        "messages.incoming" | "message" => {
            let parsed = MessageIn::from_whatsapp_event(tenant, &value, now_s());
            let bad_sender = matches!(&parsed, Err(Rejected("missing_from" | "invalid_from")));
            state.guardrails.whatsapp_sender(bad_sender);
            state.guardrails.message_event("whatsapp", matches!(&parsed, Err(Rejected("no_text_or_media"))));
            let message = parsed.map_err(|r| rejected(state, "whatsapp", r))?;
            enqueue(state, message).await
        }
        "qr" => {
            let qr_id = match value.get("qr_id") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => now_s().to_string(),
            };
            let svg = value.get("svg").and_then(Value::as_str).map(str::trim).unwrap_or("");
            if !svg.contains("<svg") {
                return Err(ApiError::code(StatusCode::UNPROCESSABLE_ENTITY, "invalid_qr"));
            }
            cache_qr(state, tenant, &qr_id, svg).await?;
            // A new QR means the provider's session is signed out.
            crate::channels::qr::forget_ready(&state.queues, tenant).await?;
            tracing::info!(event = "wa_qr_received", tenant = %tenant, qr_id = %qr_id);
            Ok(Json(json!({"ok": true, "queued": false, "event": "qr"})))
        }
        "ready" => {
            let ready = json!({
                "state": value.get("state").and_then(Value::as_str).unwrap_or("ready"),
                "ts": value.get("ts").and_then(crate::domain::message::parse_ts).unwrap_or_else(now_s),
                "me": value.get("me").cloned().unwrap_or(Value::Null),
            });
            crate::channels::qr::remember_ready(&state.queues, tenant, &ready).await?;
            state.queues.kv_delete(&qr_last_key(tenant)).await?;
            tracing::info!(event = "wa_ready", tenant = %tenant);
            Ok(Json(json!({"ok": true, "queued": true})))
        }
        _ => Err(ApiError::invalid("unknown_event")),
    }
}

/// `POST /webhook/telegram`.
pub async fn telegram(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let result = telegram_inner(&state, &headers, &uri, &body).await;
    observe(&state, "telegram", &result);
    result.into_response()
}

async fn telegram_inner(
    state: &AppState,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    body: &Bytes,
) -> ApiResult<Json<Value>> {
    let (tenant, value) = authenticate(state, headers, uri, body)?;
    let parsed = MessageIn::from_telegram_event(tenant, &value);
    state.guardrails.telegram_sender(matches!(&parsed, Err(Rejected("missing_peer"))));
    state.guardrails.message_event("telegram", matches!(&parsed, Err(Rejected("no_text_or_media"))));
    let message = parsed.map_err(|r| rejected(state, "telegram", r))?;
    enqueue(state, message).await
}

/// `GET /pub/wa/qr.svg`: the latest QR (or `?qr_id=`), 404 `qr_not_found`.
pub async fn qr_svg(State(state): State<AppState>, caller: PubTenant, uri: axum::http::Uri) -> ApiResult<Response> {
    let requested = uri.query().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "qr_id")
            .map(|(_, v)| v)
    });
    let svg = match requested {
        Some(qr_id) => {
            state.queues.kv_get(&qr_key(caller.tenant, &qr_id)).await?.map(|b| String::from_utf8_lossy(&b).into_owned())
        }
        None => state
            .queues
            .kv_get(&qr_last_key(caller.tenant))
            .await?
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("svg").and_then(Value::as_str).map(str::to_string)),
    };
    let svg = svg.ok_or_else(|| ApiError::code(StatusCode::NOT_FOUND, "qr_not_found"))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg).into_response())
}
