//! The `simulator` channel: a real product channel for trying the bot before any
//! account is connected (`avioctl chat`, the cabinet's "try the bot" box). Sends land
//! in a mailbox per `(tenant, peer)` that the reader who asked drains.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{ChannelDriver, DriverFactory, EventSink, OutboundMessage, SendError, SendReceipt};
use crate::domain::TenantId;

/// Mailboxes are bounded so an unread dialog cannot grow without limit.
const MAILBOX_LIMIT: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct SimReply {
    pub text: Option<String>,
    pub files: Vec<String>,
    pub ts: i64,
}

#[derive(Default)]
pub struct Simulator {
    mailboxes: Mutex<HashMap<(TenantId, String), Vec<SimReply>>>,
    arrived: Notify,
}

impl Simulator {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Waits up to `wait` for replies to `peer`, then takes every reply waiting.
    pub async fn take_replies(&self, tenant: TenantId, peer: &str, wait: Duration) -> Vec<SimReply> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.arrived.notified();
            {
                let mut boxes = self.mailboxes.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(replies) = boxes.get_mut(&(tenant, peer.to_string()))
                    && !replies.is_empty()
                {
                    return std::mem::take(replies);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }

    fn deliver(&self, tenant: TenantId, message: &OutboundMessage) {
        let mut boxes = self.mailboxes.lock().unwrap_or_else(|p| p.into_inner());
        let mailbox = boxes.entry((tenant, message.to.clone())).or_default();
        if mailbox.len() >= MAILBOX_LIMIT {
            mailbox.remove(0);
        }
        mailbox.push(SimReply {
            text: message.text.clone(),
            files: message.files.iter().map(|f| f.name.clone()).collect(),
            ts: crate::domain::now_s(),
        });
        drop(boxes);
        self.arrived.notify_waiters();
    }
}

struct SimulatorDriver {
    tenant: TenantId,
    simulator: Arc<Simulator>,
}

impl ChannelDriver for SimulatorDriver {
    fn start(&self) -> BoxFuture<'_, Result<Value, SendError>> {
        async { Ok(json!({"state": "ready"})) }.boxed()
    }

    fn status(&self) -> BoxFuture<'_, Value> {
        async { json!({"state": "ready", "ready": true}) }.boxed()
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<SendReceipt, SendError>> {
        async move {
            self.simulator.deliver(self.tenant, message);
            Ok(SendReceipt { provider_message_id: Some(format!("sim-{}", message.job_id)) })
        }
        .boxed()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

/// The factory shares one [`Simulator`] (its mailboxes) across tenants.
pub struct SimulatorFactory(pub Arc<Simulator>);

impl DriverFactory for SimulatorFactory {
    fn create(&self, tenant: TenantId, _events: EventSink) -> Arc<dyn ChannelDriver> {
        Arc::new(SimulatorDriver { tenant, simulator: self.0.clone() })
    }
}
