//! The backstop poller (SPEC 6.3): Avito documents no delivery guarantee for webhooks,
//! so every `AVITO_POLL_INTERVAL_S` each connected tenant's unread chats are read and
//! their unread inbound messages go into the inbox. The inbox dedupes by message id,
//! so a message that did arrive by webhook is not processed twice. The poller also
//! refreshes tokens well before they expire, so a quiet tenant's token never lapses.

use serde_json::Value;
use tokio::time::MissedTickBehavior;

use super::{AvitoError, inbound};
use crate::app::AppState;
use crate::domain::{TenantId, now_s};
use crate::pipeline::accept_incoming;
use crate::queue::Enqueued;

/// Older unread messages are left to a human: answering a week-old message as if it
/// had just arrived would confuse the lead.
const LOOKBACK_S: i64 = 3 * 24 * 3600;
/// The poller refreshes a token this long (seconds) before it expires.
const PROACTIVE_REFRESH_S: i64 = 3600;

/// Runs until shutdown: one pass at start, then one per interval.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(state.config.avito_poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        poll_all(&state).await;
    }
}

/// One pass over every tenant; returns how many messages it recovered.
pub async fn poll_all(state: &AppState) -> usize {
    let mut recovered = 0;
    for tenant in state.access.tenant_ids() {
        match poll_tenant(state, tenant).await {
            Ok(n) => recovered += n,
            Err(e) => {
                tracing::warn!(event = "avito_poll_failed", tenant = %tenant, status = %e.status_text(), error = %e);
            }
        }
    }
    recovered
}

/// Reads the tenant's unread chats and queues the messages that never arrived.
pub async fn poll_tenant(state: &AppState, tenant: TenantId) -> Result<usize, AvitoError> {
    let avito = &state.avito;
    if !avito.integration(tenant).await?.is_some_and(|i| i.is_connected()) {
        return Ok(0);
    }
    let (_, account) = avito.access_token_within(tenant, PROACTIVE_REFRESH_S).await?;
    let api = avito.api();
    let chats = avito.authed(tenant, |token, account| async move { api.unread_chats(&token, &account).await }).await?;
    let since = now_s() - LOOKBACK_S;
    let mut recovered = 0;
    for chat in chats.get("chats").and_then(Value::as_array).into_iter().flatten() {
        let Some(chat_id) = inbound::id_text(chat.get("id")) else { continue };
        let chat_ref = chat_id.as_str();
        let messages = match avito
            .authed(tenant, |token, account| async move { api.messages(&token, &account, chat_ref).await })
            .await
        {
            Ok(messages) => messages,
            Err(e) => {
                // One broken chat must not hide the others.
                tracing::warn!(event = "avito_poll_chat_failed", tenant = %tenant, peer = %chat_id,
                    status = %e.status_text());
                continue;
            }
        };
        for message in inbound::parse_chat_messages(tenant, chat, &messages, &account, since) {
            if let Enqueued::Queued(_) = accept_incoming(state, &message).await? {
                recovered += 1;
                tracing::info!(event = "avito_poll_recovered", tenant = %tenant, peer = %message.peer,
                    message_id = %message.message_id);
                avito.remember_chat(tenant, &message.peer).await?;
            }
        }
    }
    Ok(recovered)
}
