//! Channel drivers: one interface for WhatsApp, Telegram, Avito and the simulator, so
//! the pipeline never knows which one it talks to.
//!
//! A driver is created per `(tenant, channel)` by its channel's [`DriverFactory`] and
//! pushes what it hears (incoming messages, state changes, delivery acks) into the
//! [`EventSink`]; the app feeds incoming messages into the same inbox as webhooks.
//! Only this module and its children know channel-specific types.

pub mod avito;
pub mod qr;
pub mod simulator;
pub mod telegram;
pub mod whatsapp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::domain::{Channel, MessageIn, TenantId};

/// A file ready to send: already downloaded by the outbox.
#[derive(Debug, Clone)]
pub struct OutboundFile {
    /// `image`, `video`, `audio`, `file`…
    pub kind: String,
    pub name: String,
    pub mime: String,
    pub bytes: bytes::Bytes,
}

/// What the outbox hands a driver.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub tenant: TenantId,
    pub job_id: String,
    pub to: String,
    pub text: Option<String>,
    pub files: Vec<OutboundFile>,
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReceipt {
    pub provider_message_id: Option<String>,
}

/// Why a send did not happen. [`SendError::result_code`] and
/// [`SendError::disposition`] are the one place these map to SPEC result codes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("the channel is not connected for this tenant")]
    NotConnected,
    #[error("rate limited: retry after {0:?}")]
    RateLimited(Duration),
    #[error("no chat to reply in")]
    MissingChat,
    #[error("recipient not found: {0}")]
    RecipientNotFound(String),
    #[error("the session has ended: {0}")]
    SessionGone(String),
    #[error("temporary failure: {0}")]
    Transient(String),
    #[error("refused: {0}")]
    Permanent(String),
}

/// What the outbox does with a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Try again with backoff.
    Retry,
    /// Try again after this long without counting an attempt (FLOOD_WAIT, 429).
    Postpone(Duration),
    /// Record `status=skipped` and stop.
    Skip,
    /// Record `status=failed` and stop.
    Fail,
}

impl SendError {
    pub fn result_code(&self) -> &'static str {
        match self {
            SendError::NotConnected => "not_connected",
            SendError::RateLimited(_) => "rate_limited",
            SendError::MissingChat => "missing_chat",
            SendError::RecipientNotFound(_) => "recipient_not_found",
            SendError::SessionGone(_) => "session_gone",
            SendError::Transient(_) => "transient_error",
            SendError::Permanent(_) => "provider_refused",
        }
    }

    pub fn disposition(&self) -> Disposition {
        match self {
            SendError::NotConnected | SendError::Transient(_) => Disposition::Retry,
            SendError::RateLimited(d) => Disposition::Postpone(*d),
            SendError::MissingChat => Disposition::Skip,
            SendError::RecipientNotFound(_) | SendError::SessionGone(_) | SendError::Permanent(_) => Disposition::Fail,
        }
    }
}

/// What a driver reports besides sends.
#[derive(Debug, Clone)]
// Events are moved through a channel once each; boxing the message would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum ChannelEvent {
    Incoming(MessageIn),
    /// A session state change (`wa_state`, Telegram login states…).
    State {
        tenant: TenantId,
        channel: Channel,
        from: String,
        to: String,
    },
    /// A delivery ack for a message Avio sent.
    Delivery {
        tenant: TenantId,
        channel: Channel,
        provider_message_id: String,
        status: String,
    },
}

pub type EventSink = mpsc::Sender<ChannelEvent>;

/// One tenant's session on one channel.
pub trait ChannelDriver: Send + Sync {
    /// Starts (or resumes) the session: login, QR, connection.
    fn start(&self) -> BoxFuture<'_, Result<Value, SendError>>;
    /// Channel-specific status for the cabinet and `/health/*`.
    fn status(&self) -> BoxFuture<'_, Value>;
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<SendReceipt, SendError>>;
    /// Stops the session without losing its state (logout is channel-specific).
    fn stop(&self) -> BoxFuture<'_, ()>;
}

/// Makes a channel's driver for a tenant.
pub trait DriverFactory: Send + Sync {
    fn create(&self, tenant: TenantId, events: EventSink) -> Arc<dyn ChannelDriver>;
}

/// Drivers keyed by `(tenant, channel)`, created on first use.
pub struct ChannelRegistry {
    factories: HashMap<Channel, Arc<dyn DriverFactory>>,
    drivers: Mutex<HashMap<(TenantId, Channel), Arc<dyn ChannelDriver>>>,
    events: EventSink,
}

impl ChannelRegistry {
    pub fn new(factories: HashMap<Channel, Arc<dyn DriverFactory>>, events: EventSink) -> Self {
        Self { factories, drivers: Mutex::new(HashMap::new()), events }
    }

    /// The tenant's driver for `channel`; `None` when no factory serves the channel.
    pub fn driver(&self, tenant: TenantId, channel: Channel) -> Option<Arc<dyn ChannelDriver>> {
        let mut drivers = self.drivers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(driver) = drivers.get(&(tenant, channel)) {
            return Some(driver.clone());
        }
        let factory = self.factories.get(&channel)?;
        let driver = factory.create(tenant, self.events.clone());
        drivers.insert((tenant, channel), driver.clone());
        Some(driver)
    }

    /// The driver only if it was created already (status pages must not start one).
    pub fn existing(&self, tenant: TenantId, channel: Channel) -> Option<Arc<dyn ChannelDriver>> {
        self.drivers.lock().unwrap_or_else(|p| p.into_inner()).get(&(tenant, channel)).cloned()
    }

    pub fn has_channel(&self, channel: Channel) -> bool {
        self.factories.contains_key(&channel)
    }

    /// Stops every running driver (shutdown).
    pub async fn stop_all(&self) {
        let drivers: Vec<_> = self.drivers.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for driver in drivers {
            driver.stop().await;
        }
    }
}
