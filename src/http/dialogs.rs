//! The cabinet's dialogs (SPEC section 4): the inbox, a dialog, takeover, release and
//! an operator's reply; and the persona editor.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, PubTenant};
use crate::bot::persona;
use crate::dialog::Stage;
use crate::domain::{TenantId, TransportMessage, now_s};
use crate::pipeline::outbox::{self, Origin};

const INBOX_LIMIT: usize = 200;
const THREAD_LIMIT: usize = 500;

pub async fn list(State(state): State<AppState>, caller: PubTenant) -> ApiResult<Json<Value>> {
    let rows = state.store.dialogs(caller.tenant, INBOX_LIMIT).await?;
    let mut dialogs = Vec::with_capacity(rows.len());
    let now = now_s();
    for row in rows {
        let sales = state.dialogs.get(caller.tenant, row.contact_id).await?;
        dialogs.push(json!({
            "contact_id": row.contact_id,
            "channel": row.channel,
            "peer": row.peer,
            "name": row.name,
            "last_message": row.last_message,
            "last_at": row.last_at,
            "stage": sales.stage,
            "bot_paused": sales.bot_paused(now) || sales.stage == Stage::HandedToHuman,
            "needs_human": sales.needs_human,
        }));
    }
    Ok(Json(json!({"ok": true, "dialogs": dialogs})))
}

fn contact_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| ApiError::invalid("invalid_contact"))
}

async fn require_contact(state: &AppState, tenant: TenantId, contact: i64) -> ApiResult<crate::store::ContactRow> {
    state
        .store
        .contact(tenant, contact)
        .await?
        .ok_or_else(|| ApiError::code(StatusCode::NOT_FOUND, "contact_not_found"))
}

pub async fn show(
    State(state): State<AppState>,
    caller: PubTenant,
    Path(contact): Path<String>,
) -> ApiResult<Json<Value>> {
    let contact = contact_id(&contact)?;
    let row = require_contact(&state, caller.tenant, contact).await?;
    let messages = state.store.recent_messages(caller.tenant, contact, THREAD_LIMIT).await?;
    let sales = state.dialogs.get(caller.tenant, contact).await?;
    Ok(Json(json!({
        "ok": true,
        "contact": row,
        "state": sales,
        "bot_paused": sales.bot_paused(now_s()) || sales.stage == Stage::HandedToHuman,
        "messages": messages,
    })))
}

pub async fn takeover(
    State(state): State<AppState>,
    caller: PubTenant,
    Path(contact): Path<String>,
) -> ApiResult<Json<Value>> {
    let contact = contact_id(&contact)?;
    require_contact(&state, caller.tenant, contact).await?;
    state.dialogs.update(caller.tenant, contact, |s| s.takeover = true).await?;
    tracing::info!(event = "dialog_takeover", tenant = %caller.tenant, contact);
    Ok(Json(json!({"ok": true})))
}

pub async fn release(
    State(state): State<AppState>,
    caller: PubTenant,
    Path(contact): Path<String>,
) -> ApiResult<Json<Value>> {
    let contact = contact_id(&contact)?;
    require_contact(&state, caller.tenant, contact).await?;
    state
        .dialogs
        .update(caller.tenant, contact, |s| {
            s.takeover = false;
            s.paused_until = None;
            s.needs_human = false;
            if s.stage == Stage::HandedToHuman {
                s.stage = Stage::Qualifying;
            }
        })
        .await?;
    tracing::info!(event = "dialog_released", tenant = %caller.tenant, contact);
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
pub struct ReplyBody {
    text: String,
}

/// An operator's reply goes out through the outbox on the channel the lead last used.
pub async fn reply(
    State(state): State<AppState>,
    caller: PubTenant,
    Path(contact): Path<String>,
    ApiJson(body): ApiJson<ReplyBody>,
) -> ApiResult<Json<Value>> {
    let contact = contact_id(&contact)?;
    require_contact(&state, caller.tenant, contact).await?;
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid("text_required"));
    }
    let (channel, peer) = state
        .store
        .last_route(caller.tenant, contact)
        .await?
        .ok_or_else(|| ApiError::code(StatusCode::CONFLICT, "no_channel_for_contact"))?;
    let message = TransportMessage {
        tenant: caller.tenant,
        channel,
        to: peer,
        text: Some(body.text),
        attachments: Vec::new(),
        reply_to: None,
    };
    let submitted = outbox::submit(&state, message, Origin::Operator, None, None).await?;
    Ok(Json(json!({"ok": true, "job_id": submitted.job_id})))
}

pub async fn persona_get(State(state): State<AppState>, caller: PubTenant) -> ApiResult<Json<Value>> {
    let (text, is_default) = persona::load(&state.files, caller.tenant).await?;
    let doc = state.tenants.get(caller.tenant).await?;
    let preview = persona::render(&text, &doc, None);
    Ok(Json(json!({"ok": true, "text": text, "is_default": is_default, "preview": preview,
                    "placeholders": persona::PLACEHOLDERS})))
}

#[derive(Deserialize)]
pub struct PersonaBody {
    #[serde(default)]
    text: Option<String>,
    /// Go back to the default persona.
    #[serde(default)]
    reset: bool,
}

pub async fn persona_save(
    State(state): State<AppState>,
    caller: PubTenant,
    ApiJson(body): ApiJson<PersonaBody>,
) -> ApiResult<Json<Value>> {
    let text = if body.reset {
        None
    } else {
        let text = body.text.unwrap_or_default();
        if text.trim().is_empty() {
            return Err(ApiError::invalid("text_required"));
        }
        if text.chars().count() > persona::MAX_PERSONA_CHARS {
            return Err(ApiError::invalid("text_too_long"));
        }
        Some(text)
    };
    persona::save(&state.files, caller.tenant, text).await?;
    tracing::info!(event = "persona_saved", tenant = %caller.tenant, reset = body.reset);
    let (text, is_default) = persona::load(&state.files, caller.tenant).await?;
    let doc = state.tenants.get(caller.tenant).await?;
    Ok(Json(json!({"ok": true, "is_default": is_default, "preview": persona::render(&text, &doc, None)})))
}
