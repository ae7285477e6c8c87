//! The message pipeline (SPEC 5): incoming messages into the durable inbox, the inbox
//! worker (contacts, leads, messages, then the bot), and the outbox (guards, delivery
//! through channel drivers, results).

mod attachments;
pub mod inbox;
pub mod outbox;

use futures_util::future::BoxFuture;
use tokio::sync::Notify;

use crate::app::AppState;
use crate::domain::MessageIn;
use crate::queue::{EnqueueOptions, Enqueued, INBOX, QueueError};
use crate::store::IngestOutcome;

/// What the inbox worker calls after a message is stored. The bot implements it;
/// it must be idempotent, because a crash can hand it the same message twice.
pub trait BotHook: Send + Sync {
    fn on_message<'a>(
        &'a self,
        state: &'a AppState,
        message: &'a MessageIn,
        stored: &'a IngestOutcome,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// A catalog conversion finished: rebuild whatever is derived from the catalog.
    fn catalog_ready<'a>(&'a self, _state: &'a AppState, _tenant: crate::domain::TenantId) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A hook that does nothing (no bot configured).
pub struct NoBot;

impl BotHook for NoBot {
    fn on_message<'a>(
        &'a self,
        _: &'a AppState,
        _: &'a MessageIn,
        _: &'a IngestOutcome,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Wakes the workers as soon as there is work, instead of waiting for their poll.
#[derive(Default)]
pub struct Wakers {
    pub inbox: Notify,
    pub outbox: Notify,
    pub catalog: Notify,
    pub bot: Notify,
}

/// Puts an incoming message (from a webhook or an in-process session) into the
/// durable inbox; a repeat of `(tenant, channel, message_id)` is acknowledged and
/// not queued again. Returns after the commit holding it is durable.
pub async fn accept_incoming(state: &AppState, message: &MessageIn) -> Result<Enqueued, QueueError> {
    let options = EnqueueOptions { dedupe_key: Some(message.dedupe_key()), durable: true, ..Default::default() };
    let outcome = state.queues.enqueue(INBOX, message, options).await?;
    match outcome {
        Enqueued::Queued(id) => {
            tracing::info!(event = "incoming_enqueued", ch = %message.channel, tenant = %message.tenant,
                peer = %message.peer, message_id = %message.message_id, item = id);
            state.wake.inbox.notify_one();
        }
        Enqueued::Duplicate => {
            tracing::info!(event = "incoming_duplicate", ch = %message.channel, tenant = %message.tenant,
                message_id = %message.message_id);
        }
    }
    Ok(outcome)
}

/// Feeds what channel sessions report into the pipeline: incoming messages into the
/// inbox, state changes into logs and metrics, delivery acks into message statuses.
pub async fn channel_events(
    state: AppState,
    events: std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<crate::channels::ChannelEvent>>>,
) {
    use crate::channels::ChannelEvent;
    let mut events = events.lock().await;
    while let Some(event) = events.recv().await {
        match event {
            ChannelEvent::Incoming(message) => {
                // Durable before the session moves on; retried while the store is busy.
                let mut delay = std::time::Duration::from_millis(100);
                while let Err(e) = accept_incoming(&state, &message).await {
                    tracing::error!(event = "incoming_enqueue_failed", ch = %message.channel, error = %e);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(10));
                }
            }
            ChannelEvent::State { tenant, channel, from, to } => {
                tracing::info!(event = "channel_state", ch = %channel, tenant = %tenant, from = %from, to = %to);
            }
            ChannelEvent::Delivery { tenant, channel, provider_message_id, status } => {
                tokio::spawn(apply_delivery(state.clone(), tenant, channel, provider_message_id, status));
            }
        }
    }
}

/// Applies a delivery ack. The page can ack a send before the outbox has recorded the
/// message's provider id (the id is written when the send call returns), so an ack for
/// an id not seen yet is tried again for a while instead of being dropped.
async fn apply_delivery(
    state: AppState,
    tenant: crate::domain::TenantId,
    channel: crate::domain::Channel,
    provider_message_id: String,
    status: String,
) {
    use crate::store::DeliveryUpdate;
    let mut delay = std::time::Duration::from_millis(200);
    for _ in 0..8 {
        match state.store.set_delivery_status(tenant, channel, provider_message_id.clone(), status.clone()).await {
            Ok(DeliveryUpdate::Applied) => return,
            Ok(DeliveryUpdate::Unknown) => {}
            Err(e) => tracing::warn!(event = "delivery_status_failed", error = %e),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
    tracing::debug!(event = "delivery_status_unmatched", ch = %channel, tenant = %tenant, status = %status);
}
