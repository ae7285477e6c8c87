//! The inbox worker: leases inbound messages, stores them (contact, lead, message,
//! webhook event) idempotently, then hands them to the bot hook. A failure retries
//! with backoff and dead-letters after [`POLICY`]`.max_attempts`.

use std::time::Duration;

use crate::app::AppState;
use crate::domain::MessageIn;
use crate::queue::{FailOutcome, INBOX, Leased, QueueError, RetryPolicy};

pub const POLICY: RetryPolicy =
    RetryPolicy { max_attempts: 8, base: Duration::from_secs(1), max: Duration::from_secs(120) };
const LEASE: Duration = Duration::from_secs(120);
const BATCH: usize = 64;

/// Processes one batch; returns how many items it took.
pub async fn step(state: &AppState) -> Result<usize, QueueError> {
    let items = state.queues.lease(INBOX, BATCH, LEASE).await?;
    for item in &items {
        match process(state, item).await {
            Ok(()) => {
                state.queues.ack(INBOX, item.id).await?;
            }
            Err(e) => {
                let reason = format!("{e:#}");
                match state.queues.fail(INBOX, item.id, &reason, POLICY).await? {
                    FailOutcome::RetryAt(_) => {
                        tracing::warn!(event = "inbox_retry", item = item.id, attempt = item.attempts, error = %reason);
                    }
                    FailOutcome::Dead => {
                        tracing::error!(event = "inbox_dead_letter", item = item.id, attempts = item.attempts, error = %reason);
                    }
                }
            }
        }
    }
    Ok(items.len())
}

async fn process(state: &AppState, item: &Leased) -> anyhow::Result<()> {
    let message: MessageIn = serde_json::from_value(item.payload.clone())?;
    let stored = state.store.ingest(message.clone()).await?;
    tracing::info!(event = "lead_upsert_ok", ch = %message.channel, tenant = %message.tenant, peer = %message.peer,
        lead = stored.lead_id, contact = stored.contact_id, new_contact = stored.new_contact,
        duplicate = stored.message_row.is_none());
    state.bot.on_message(state, &message, &stored).await
}

/// Runs until shutdown: a batch whenever there is work, woken by new messages.
pub async fn run(state: AppState) {
    if !state.config.inbox_enabled {
        tracing::warn!(event = "inbox_disabled", hint = "INBOX_ENABLED=false: messages are kept, not processed");
        return std::future::pending().await;
    }
    loop {
        let woken = state.wake.inbox.notified();
        match step(&state).await {
            Ok(0) => {
                let _ = tokio::time::timeout(Duration::from_millis(500), woken).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(event = "inbox_step_failed", error = %e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
