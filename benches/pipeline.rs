//! Pipeline overhead from webhook to outbox enqueue (and on to the channel's send) with
//! a zero-latency fake LLM and no debounce: p50 and p99 per message. In-process (the library's `Application`),
//! `cargo bench --bench pipeline`. Prints the figures; asserts nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avio::app::{Application, Extensions};
use avio::channels::{ChannelDriver, DriverFactory, EventSink, OutboundMessage, SendError, SendReceipt};
use avio::config::Config;
use avio::domain::{Channel, TenantId};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::Notify;

const MESSAGES: usize = 1000;
const ADMIN: &str = "bench-admin-token-0123456789";

/// Notes when each reply reached the channel.
#[derive(Default)]
struct Arrivals {
    at: Mutex<HashMap<String, Instant>>,
    notify: Notify,
}

struct TimingDriver(Arc<Arrivals>);

impl ChannelDriver for TimingDriver {
    fn start(&self) -> BoxFuture<'_, Result<Value, SendError>> {
        async { Ok(json!({})) }.boxed()
    }
    fn status(&self) -> BoxFuture<'_, Value> {
        async { json!({}) }.boxed()
    }
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<SendReceipt, SendError>> {
        async move {
            self.0.at.lock().unwrap().insert(message.to.clone(), Instant::now());
            self.0.notify.notify_waiters();
            Ok(SendReceipt::default())
        }
        .boxed()
    }
    fn stop(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

struct TimingFactory(Arc<Arrivals>);

impl DriverFactory for TimingFactory {
    fn create(&self, _tenant: TenantId, _events: EventSink) -> Arc<dyn ChannelDriver> {
        Arc::new(TimingDriver(self.0.clone()))
    }
}

async fn fake_llm() -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async {
            axum::Json(json!({"choices": [{"message": {"role": "assistant", "content": "Здравствуйте! Чем помочь?"}}],
                              "usage": {"prompt_tokens": 10, "completion_tokens": 5}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let llm = fake_llm().await;
        let vars: HashMap<String, String> = [
            ("BIND", "127.0.0.1:0"),
            ("DATA_DIR", dir.path().to_str().unwrap()),
            ("ADMIN_TOKEN", ADMIN),
            ("PUBLIC_KEY", "bench-public-key-0123456789"),
            ("OPENAI_API_KEY", "sk-bench"),
            ("OPENAI_BASE_URL", &llm),
            ("BOT_DEBOUNCE_MS", "0"),
            ("OUTBOX_ENABLED", "true"),
            ("OUTBOX_WHITELIST", "*"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let arrivals = Arc::new(Arrivals::default());
        let extensions = Extensions {
            drivers: vec![(Channel::Whatsapp, Arc::new(TimingFactory(arrivals.clone())))],
            bot: None,
            ..Default::default()
        };
        let app = Application::build_with(Config::from_vars(&vars).unwrap(), extensions).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        let admin =
            |m: reqwest::Method, p: &str| client.request(m, format!("{base}{p}")).header("X-Admin-Token", ADMIN);
        admin(reqwest::Method::POST, "/admin/tenants").json(&json!({"id": 1, "name": "Bench"})).send().await.unwrap();
        let token: String =
            admin(reqwest::Method::GET, "/admin/provider-token/1").send().await.unwrap().json::<Value>().await.unwrap()
                ["provider_token"]
                .as_str()
                .unwrap()
                .into();
        let url = format!("{base}/webhook?token={token}");

        let mut latencies = Vec::with_capacity(MESSAGES);
        // The durable part (the webhook's 2xx) and the rest, to see where the time goes.
        let mut acks = Vec::with_capacity(MESSAGES);
        // Wall-clock start per lead, to compare with the outbox job's `created_at`.
        let mut walls = Vec::with_capacity(MESSAGES);
        for n in 0..MESSAGES {
            // A new lead each time, so every message gets its own reply.
            let phone = format!("7999{:07}", n);
            let started = Instant::now();
            walls.push((phone.clone(), time::OffsetDateTime::now_utc()));
            let body = json!({"event": "messages.incoming", "tenant": 1, "channel": "whatsapp",
                              "message_id": format!("pipe-{n}"), "from": phone, "text": "Здравствуйте"});
            let r = client.post(&url).json(&body).send().await.unwrap();
            assert!(r.status().is_success());
            acks.push(started.elapsed());
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let notified = arrivals.notify.notified();
                if let Some(at) = arrivals.at.lock().unwrap().get(&phone) {
                    latencies.push(at.duration_since(started));
                    break;
                }
                assert!(Instant::now() < deadline, "no reply for message {n}");
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        }
        // Webhook → outbox enqueue (the figure): the job row's creation time.
        let db = rusqlite::Connection::open(dir.path().join("avio.db")).unwrap();
        let to_enqueue: Vec<Duration> = walls
            .iter()
            .map(|(phone, wall)| {
                let created: String = db
                    .query_row("SELECT created_at FROM outbox_jobs WHERE recipient = ?1", [phone], |r| r.get(0))
                    .unwrap();
                let created =
                    time::OffsetDateTime::parse(&created, &time::format_description::well_known::Rfc3339).unwrap();
                Duration::try_from(created - *wall).unwrap_or_default()
            })
            .collect();
        let after_ack: Vec<Duration> = latencies.iter().zip(&acks).map(|(total, ack)| *total - *ack).collect();
        let pick_in = |v: &[Duration], q: f64| {
            let mut v = v.to_vec();
            v.sort();
            v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        latencies.sort();
        let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "avio pipeline benchmark: {MESSAGES} messages, webhook → inbox → bot (fake LLM, 0 ms) → outbox → channel"
        );
        println!(
            "webhook → channel send:   p50 {:.2} ms   p99 {:.2} ms",
            pick(0.50).as_secs_f64() * 1e3,
            pick(0.99).as_secs_f64() * 1e3
        );
        println!(
            "webhook → outbox enqueue: p50 {:.2} ms   p99 {:.2} ms   (target p99 <= 10 ms, debounce excluded)",
            ms(pick_in(&to_enqueue, 0.50)),
            ms(pick_in(&to_enqueue, 0.99))
        );
        println!(
            "  webhook 2xx (durable commit): p50 {:.2} ms p99 {:.2} ms; 2xx → channel send: p50 {:.2} ms p99 {:.2} ms",
            ms(pick_in(&acks, 0.50)),
            ms(pick_in(&acks, 0.99)),
            ms(pick_in(&after_ack, 0.50)),
            ms(pick_in(&after_ack, 0.99))
        );
    });
    let _ = rt;
    let _ = TenantId::new(1);
}
