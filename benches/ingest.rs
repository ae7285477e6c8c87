//! Durable webhook ingest against the same daemon's `GET /health`, measured in one run
//! on loopback with 64 connections, plus the idle RSS with 100 tenants.
//!
//! `cargo bench --bench ingest` (release build of the real `avio` binary). Prints the
//! figures; asserts nothing.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

const CONNECTIONS: usize = 64;
const REQUESTS: usize = 20_000;
const ADMIN: &str = "bench-admin-token-0123456789";

struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

async fn load(client: &reqwest::Client, make: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>) -> Figures {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (next, errors, make) = (next.clone(), errors.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= REQUESTS {
                    return latencies;
                }
                let t = Instant::now();
                match make(n).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut all = Vec::with_capacity(REQUESTS);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    let _ = client;
    Figures {
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        errors: errors.load(Ordering::Relaxed),
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_avio"))
        .env_clear()
        .env("DATA_DIR", dir.path())
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("ADMIN_TOKEN", ADMIN)
        .env("PUBLIC_KEY", "bench-public-key-0123456789")
        .env("RUST_LOG", "warn")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start avio");
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(format!("{base}/health")).send().await.is_err() {
            assert!(Instant::now() < deadline, "daemon did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let admin = |method: reqwest::Method, path: String| client.request(method, format!("{base}{path}")).header("X-Admin-Token", ADMIN);
        for id in 1..=100 {
            admin(reqwest::Method::POST, "/admin/tenants".into()).json(&json!({"id": id, "name": format!("T{id}")})).send().await.unwrap();
            admin(reqwest::Method::GET, format!("/admin/key/get?tenant={id}")).send().await.unwrap();
        }
        let token: String = admin(reqwest::Method::GET, "/admin/provider-token/1".into())
            .send().await.unwrap().json::<serde_json::Value>().await.unwrap()["provider_token"].as_str().unwrap().into();
        for id in 2..=100 {
            admin(reqwest::Method::GET, format!("/admin/provider-token/{id}")).send().await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_rss = rss_kib(child.id());

        let health_url = format!("{base}/health");
        let c = client.clone();
        let health = load(&client, Arc::new(move |_| c.get(&health_url))).await;
        let hook_url = format!("{base}/webhook?token={token}");
        let c = client.clone();
        let ingest = load(&client, Arc::new(move |n| {
            c.post(&hook_url).json(&json!({"event": "messages.incoming", "tenant": 1, "channel": "whatsapp",
                "message_id": format!("bench-{n}"), "from": format!("7999{:07}", n % 1000), "text": "Сколько стоит диван?"}))
        })).await;

        println!("avio ingest benchmark: {REQUESTS} requests per route, {CONNECTIONS} connections, loopback, same daemon");
        println!("{:<28} {:>10} {:>10} {:>10} {:>7}", "route", "req/s", "p50 ms", "p99 ms", "errors");
        for (name, f) in [("GET /health", &health), ("POST /webhook (durable)", &ingest)] {
            println!("{:<28} {:>10.0} {:>10.2} {:>10.2} {:>7}", name, f.rate, f.p50.as_secs_f64() * 1e3, f.p99.as_secs_f64() * 1e3, f.errors);
        }
        println!("ingest / health rate: {:.0} % (target >= 30 %); ingest p99 {:.2} ms (target <= 20 ms)",
            100.0 * ingest.rate / health.rate, ingest.p99.as_secs_f64() * 1e3);
        println!("idle RSS with 100 tenants: {:.1} MiB (target <= 60 MiB)", idle_rss as f64 / 1024.0);
    });
    let _ = child.kill();
    let _ = child.wait();
}
