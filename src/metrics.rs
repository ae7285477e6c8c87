//! Prometheus series (SPEC 10), owned by the app rather than a global recorder so
//! two apps in one process keep separate counts.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub status: String,
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WaToAppLabels {
    pub event: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SendResultLabels {
    pub channel: String,
    pub status: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelStateLabels {
    pub channel: String,
    pub state: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub webhook_provider: Family<WebhookLabels, Counter>,
    pub wa_to_app: Family<WaToAppLabels, Counter>,
    pub send_result: Family<SendResultLabels, Counter>,
    pub queue_depth: Family<QueueLabels, Gauge>,
    pub queue_dead: Family<QueueLabels, Gauge>,
    pub llm_latency_seconds: Histogram,
    pub llm_tokens: Family<KindLabels, Counter>,
    pub catalog_jobs: Family<StatusLabels, Counter>,
    pub channel_sessions: Family<ChannelStateLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let webhook_provider = Family::<WebhookLabels, Counter>::default();
        registry.register("webhook_provider", "Inbound provider webhooks by answer status", webhook_provider.clone());
        let wa_to_app = Family::<WaToAppLabels, Counter>::default();
        registry.register("wa_to_app", "WhatsApp events reaching the app", wa_to_app.clone());
        let send_result = Family::<SendResultLabels, Counter>::default();
        registry.register("send_result", "Outbox delivery results", send_result.clone());
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register("queue_depth", "Items waiting in each queue", queue_depth.clone());
        let queue_dead = Family::<QueueLabels, Gauge>::default();
        registry.register("queue_dead_letters", "Dead letters of each queue", queue_dead.clone());
        let llm_latency_seconds = Histogram::new([0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
        registry.register("llm_latency_seconds", "LLM completion latency", llm_latency_seconds.clone());
        let llm_tokens = Family::<KindLabels, Counter>::default();
        registry.register("llm_tokens", "LLM tokens used (prompt, completion)", llm_tokens.clone());
        let catalog_jobs = Family::<StatusLabels, Counter>::default();
        registry.register("catalog_jobs", "Catalog conversion jobs by outcome", catalog_jobs.clone());
        let channel_sessions = Family::<ChannelStateLabels, Gauge>::default();
        registry.register("channel_sessions", "Channel sessions by state", channel_sessions.clone());
        Self {
            registry: Mutex::new(registry),
            webhook_provider,
            wa_to_app,
            send_result,
            queue_depth,
            queue_dead,
            llm_latency_seconds,
            llm_tokens,
            catalog_jobs,
            channel_sessions,
        }
    }

    pub fn webhook(&self, status: u16, channel: &str) {
        self.webhook_provider
            .get_or_create(&WebhookLabels { status: status.to_string(), channel: channel.to_string() })
            .inc();
    }

    pub fn send_result(&self, channel: &str, status: &str, reason: &str) {
        self.send_result
            .get_or_create(&SendResultLabels {
                channel: channel.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
