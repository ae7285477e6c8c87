//! Durability under `kill -9`: every webhook that got a 2xx is stored exactly once
//! after the daemon is killed mid-load and restarted.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::daemon::{Daemon, serve_command};
use common::*;
use serde_json::{Value, json};

const TOTAL: usize = 4000;
const CONCURRENCY: usize = 64;
/// Kill once this many messages were acknowledged, well before the load ends.
const KILL_AFTER: usize = 1200;

async fn admin(
    client: &reqwest::Client,
    d: &Daemon,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = client.request(method, d.url(path)).header("X-Admin-Token", ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_webhook_survives_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [("ADMIN_TOKEN", ADMIN_TOKEN), ("PUBLIC_KEY", PUBLIC_KEY)];
    let mut daemon = Daemon::start(&mut serve_command(dir.path(), &envs, &[]));
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    admin(&client, &daemon, reqwest::Method::POST, "/admin/tenants", Some(json!({"id": 1, "name": "Crash"}))).await;
    let token = admin(&client, &daemon, reqwest::Method::GET, "/admin/provider-token/1", None).await["provider_token"]
        .as_str()
        .unwrap()
        .to_string();

    let url = Arc::new(daemon.url(&format!("/webhook?token={token}")));
    let next = Arc::new(AtomicUsize::new(0));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, next, acked_count) = (client.clone(), url.clone(), next.clone(), acked_count.clone());
        workers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= TOTAL {
                    break;
                }
                let id = format!("crash-{n}");
                // A few ids are sent twice: still stored once.
                for _ in 0..if n % 50 == 0 { 2 } else { 1 } {
                    let body = json!({"event": "messages.incoming", "tenant": 1, "channel": "whatsapp",
                                      "message_id": id, "from": format!("7999{:07}", n % 500), "text": format!("сообщение {n}")});
                    match client.post(url.as_str()).json(&body).timeout(Duration::from_secs(20)).send().await {
                        Ok(r) if r.status().is_success() => {
                            acked.push(id.clone());
                            acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
            }
            acked
        }));
    }
    while acked_count.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = daemon.kill9();
        (status, daemon)
    })
    .await
    .unwrap();
    assert!(!status.0.success(), "killed, not exited");
    drop(status.1);
    let mut acked = HashSet::new();
    for worker in workers {
        acked.extend(worker.await.unwrap());
    }
    assert!(acked.len() >= KILL_AFTER / 2, "acked {}", acked.len());
    assert!(acked.len() < TOTAL, "the kill must land mid-load (acked all {TOTAL})");

    let daemon = Daemon::start(&mut serve_command(dir.path(), &envs, &[]));
    // Wait until the inbox is drained.
    eventually(Duration::from_secs(120), || {
        let (client, daemon) = (&client, &daemon);
        async move {
            let queues = admin(client, daemon, reqwest::Method::GET, "/admin/queues", None).await;
            let inbox = queues["queues"].as_array()?.iter().find(|q| q["queue"] == "inbox:message_in")?.clone();
            (inbox["depth"] == 0).then_some(())
        }
    })
    .await;
    let conn = db(dir.path());
    let mut stmt =
        conn.prepare("SELECT provider_message_id, COUNT(*) FROM messages GROUP BY provider_message_id").unwrap();
    let stored: std::collections::HashMap<String, i64> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains_key(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged messages lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    assert!(stored.values().all(|n| *n == 1), "a message was stored twice");
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM webhook_events"), stored.len() as i64);
    eprintln!("acked {} of {TOTAL} before kill -9; stored {} after restart", acked.len(), stored.len());
}
