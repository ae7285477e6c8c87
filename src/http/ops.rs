//! Operations routes: queues and dead letters, guardrails, dialog state reset, and
//! the simulator channel (`avioctl chat`, the cabinet's "try the bot" box).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, ApiJson, PubTenant, query_map};
use crate::domain::{Channel, MessageIn, Sender, TenantId, now_s};
use crate::pipeline::accept_incoming;

pub async fn queues(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let depths = state.queues.depths().await?;
    let dead = state.queues.dead_letters().await?;
    Ok(Json(json!({"ok": true, "queues": depths, "dead": dead})))
}

pub async fn retry_dead(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id: u64 = id.parse().map_err(|_| ApiError::invalid("invalid_id"))?;
    if !state.queues.retry_dead(id).await? {
        return Err(ApiError::code(StatusCode::NOT_FOUND, "dead_letter_not_found"));
    }
    state.wake.inbox.notify_one();
    state.wake.outbox.notify_one();
    tracing::info!(event = "dead_letter_retried", item = id);
    Ok(Json(json!({"ok": true, "id": id})))
}

pub async fn guardrails(_: Admin, State(state): State<AppState>) -> Json<Value> {
    let report = state.guardrails.report();
    let ok = report.iter().all(|g| g.ok);
    Json(json!({"ok": true, "healthy": ok, "guardrails": report}))
}

#[derive(Deserialize)]
pub struct ResetBody {
    tenant: Value,
    contact: Value,
}

pub async fn reset_state(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResetBody>,
) -> ApiResult<Json<Value>> {
    let tenant = TenantId::from_json(&body.tenant).ok_or_else(ApiError::invalid_tenant)?;
    let contact = match &body.contact {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|c| *c > 0)
    .ok_or_else(|| ApiError::invalid("invalid_contact"))?;
    if !state.access.tenant_exists(tenant) {
        return Err(ApiError::tenant_not_found());
    }
    let existed = state.dialogs.reset(tenant, contact).await?;
    tracing::info!(event = "state_reset", tenant = %tenant, contact);
    Ok(Json(json!({"ok": true, "tenant": tenant, "contact": contact, "existed": existed})))
}

#[derive(Deserialize)]
pub struct SimMessage {
    #[serde(default)]
    tenant: Option<Value>,
    /// The simulated lead (`avioctl chat --contact`); one peer is one dialog.
    peer: String,
    text: String,
    #[serde(default)]
    name: Option<String>,
    /// The channel the dialog pretends to be on (`{CHANNEL}` in the persona).
    #[serde(default)]
    channel: Option<String>,
}

async fn simulator_message(state: &AppState, tenant: TenantId, body: SimMessage) -> ApiResult<Json<Value>> {
    let peer = body.peer.trim().to_string();
    if peer.is_empty() || peer.len() > 64 {
        return Err(ApiError::invalid("invalid_peer"));
    }
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid("text_required"));
    }
    let as_channel = body.channel.as_deref().and_then(Channel::parse).unwrap_or(Channel::Whatsapp);
    let message = MessageIn {
        tenant,
        channel: Channel::Simulator,
        provider: "simulator".into(),
        message_id: uuid::Uuid::new_v4().to_string(),
        peer: peer.clone(),
        sender: Sender { name: body.name, ..Sender::default() },
        text: Some(body.text),
        attachments: Vec::new(),
        ts: now_s(),
        from_me: false,
        reply_to: None,
        meta: json!({"as_channel": as_channel.as_str()}),
    };
    accept_incoming(state, &message).await?;
    Ok(Json(json!({"ok": true, "queued": true, "message_id": message.message_id, "peer": peer})))
}

async fn simulator_replies(
    state: &AppState,
    tenant: TenantId,
    parts: &axum::http::request::Parts,
) -> ApiResult<Json<Value>> {
    let query = query_map(parts);
    let peer = query
        .get("peer")
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::invalid("invalid_peer"))?;
    let wait_ms = query.get("wait_ms").and_then(|w| w.parse::<u64>().ok()).unwrap_or(0).min(30_000);
    let replies = state.simulator.take_replies(tenant, &peer, Duration::from_millis(wait_ms)).await;
    Ok(Json(json!({"ok": true, "replies": replies})))
}

pub async fn simulator_message_admin(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SimMessage>,
) -> ApiResult<Json<Value>> {
    let tenant = body.tenant.as_ref().and_then(TenantId::from_json).ok_or_else(ApiError::invalid_tenant)?;
    if !state.access.tenant_exists(tenant) {
        return Err(ApiError::tenant_not_found());
    }
    simulator_message(&state, tenant, body).await
}

pub async fn simulator_replies_admin(
    _: Admin,
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
) -> ApiResult<Json<Value>> {
    let tenant =
        query_map(&parts).get("tenant").and_then(|t| TenantId::parse(t)).ok_or_else(ApiError::invalid_tenant)?;
    simulator_replies(&state, tenant, &parts).await
}

pub async fn simulator_message_pub(
    State(state): State<AppState>,
    caller: PubTenant,
    ApiJson(body): ApiJson<SimMessage>,
) -> ApiResult<Json<Value>> {
    simulator_message(&state, caller.tenant, body).await
}

pub async fn simulator_replies_pub(
    State(state): State<AppState>,
    caller: PubTenant,
    parts: axum::http::request::Parts,
) -> ApiResult<Json<Value>> {
    simulator_replies(&state, caller.tenant, &parts).await
}

#[derive(Deserialize)]
pub struct SimPeer {
    tenant: Value,
    peer: String,
}

async fn simulator_contact(state: &AppState, tenant: &Value, peer: &str) -> ApiResult<(TenantId, Option<i64>)> {
    let tenant = TenantId::from_json(tenant).ok_or_else(ApiError::invalid_tenant)?;
    if !state.access.tenant_exists(tenant) {
        return Err(ApiError::tenant_not_found());
    }
    let contact = state.store.contact_by_peer(tenant, Channel::Simulator, peer.trim().to_string()).await?;
    Ok((tenant, contact))
}

/// `reset` inside `avioctl chat`: forgets the simulated dialog's sales state.
pub async fn simulator_reset(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SimPeer>,
) -> ApiResult<Json<Value>> {
    let (tenant, contact) = simulator_contact(&state, &body.tenant, &body.peer).await?;
    let existed = match contact {
        Some(contact) => state.dialogs.reset(tenant, contact).await?,
        None => false,
    };
    Ok(Json(json!({"ok": true, "contact": contact, "existed": existed})))
}

/// `avioctl chat --show-messages`: the simulated dialog as stored.
pub async fn simulator_dialog(
    _: Admin,
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
) -> ApiResult<Json<Value>> {
    let query = query_map(&parts);
    let tenant = Value::String(query.get("tenant").cloned().unwrap_or_default());
    let peer = query.get("peer").cloned().unwrap_or_default();
    let (tenant, contact) = simulator_contact(&state, &tenant, &peer).await?;
    let (messages, sales) = match contact {
        Some(contact) => {
            (state.store.recent_messages(tenant, contact, 200).await?, Some(state.dialogs.get(tenant, contact).await?))
        }
        None => (Vec::new(), None),
    };
    Ok(Json(json!({"ok": true, "contact": contact, "state": sales, "messages": messages})))
}
