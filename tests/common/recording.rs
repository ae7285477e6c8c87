//! A channel driver that records what the outbox sends, injected through
//! `Extensions::drivers`; it can be told to fail its next sends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use avio::channels::{ChannelDriver, ChannelEvent, DriverFactory, EventSink, OutboundMessage, SendError, SendReceipt};
use avio::domain::{Channel, TenantId};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

#[derive(Default)]
pub struct Recorder {
    pub sent: Mutex<Vec<OutboundMessage>>,
    /// Errors returned by the next sends, in order.
    pub failures: Mutex<VecDeque<SendError>>,
    /// Delivery acks the driver reports during a send, before the send returns (as a
    /// fast page does), in this order.
    pub acks_during_send: Mutex<Vec<&'static str>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn sent(&self) -> Vec<OutboundMessage> {
        self.sent.lock().unwrap().clone()
    }

    pub fn fail_next(&self, error: SendError, times: usize) {
        let mut failures = self.failures.lock().unwrap();
        for _ in 0..times {
            failures.push_back(error.clone());
        }
    }
}

struct RecordingDriver(Arc<Recorder>, TenantId, EventSink);

impl ChannelDriver for RecordingDriver {
    fn start(&self) -> BoxFuture<'_, Result<Value, SendError>> {
        async { Ok(json!({"state": "ready"})) }.boxed()
    }
    fn status(&self) -> BoxFuture<'_, Value> {
        async { json!({"state": "ready"}) }.boxed()
    }
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<SendReceipt, SendError>> {
        async move {
            if let Some(error) = self.0.failures.lock().unwrap().pop_front() {
                return Err(error);
            }
            let id = {
                let mut sent = self.0.sent.lock().unwrap();
                sent.push(message.clone());
                format!("rec-{}", sent.len())
            };
            let acks = self.0.acks_during_send.lock().unwrap().clone();
            for status in acks {
                let event = ChannelEvent::Delivery {
                    tenant: self.1,
                    // The ack tests send on WhatsApp.
                    channel: Channel::Whatsapp,
                    provider_message_id: id.clone(),
                    status: status.to_string(),
                };
                self.2.send(event).await.unwrap();
            }
            Ok(SendReceipt { provider_message_id: Some(id) })
        }
        .boxed()
    }
    fn stop(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

pub struct RecordingFactory(pub Arc<Recorder>);

impl DriverFactory for RecordingFactory {
    fn create(&self, tenant: TenantId, events: EventSink) -> Arc<dyn ChannelDriver> {
        Arc::new(RecordingDriver(self.0.clone(), tenant, events))
    }
}
