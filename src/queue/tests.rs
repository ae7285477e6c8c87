use super::*;
use serde_json::json;

fn open() -> (tempfile::TempDir, Queues) {
    let dir = tempfile::tempdir().unwrap();
    let queues = Queues::open(&dir.path().join("queues.redb")).unwrap();
    (dir, queues)
}

const DURABLE: EnqueueOptions = EnqueueOptions { dedupe_key: None, delay: Duration::ZERO, durable: true };

const POLICY: RetryPolicy =
    RetryPolicy { max_attempts: 2, base: Duration::from_millis(1), max: Duration::from_millis(2) };

#[tokio::test]
async fn items_are_leased_in_fifo_order_and_hidden_while_leased() {
    let (_dir, q) = open();
    for n in 0..5 {
        q.enqueue(INBOX, &json!({ "n": n }), DURABLE.clone()).await.unwrap();
    }
    let first = q.lease(INBOX, 3, Duration::from_secs(60)).await.unwrap();
    assert_eq!(first.iter().map(|l| l.payload["n"].as_i64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    let rest = q.lease(INBOX, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(rest.len(), 2, "leased items stay hidden");
    assert!(q.lease(INBOX, 10, Duration::from_secs(60)).await.unwrap().is_empty());
    for item in first.iter().chain(&rest) {
        assert!(q.ack(INBOX, item.id).await.unwrap());
    }
    assert_eq!(q.depth(INBOX).await.unwrap(), 0);
}

#[tokio::test]
async fn an_expired_lease_redelivers_the_item() {
    let (_dir, q) = open();
    q.enqueue(OUTBOX, &json!("x"), DURABLE.clone()).await.unwrap();
    let a = q.lease(OUTBOX, 1, Duration::from_millis(0)).await.unwrap();
    let b = q.lease(OUTBOX, 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(a[0].id, b[0].id);
    assert_eq!(b[0].attempts, 2);
}

#[tokio::test]
async fn failures_retry_then_dead_letter_and_can_be_retried() {
    let (_dir, q) = open();
    q.enqueue(OUTBOX, &json!("y"), DURABLE.clone()).await.unwrap();
    let item = q.lease(OUTBOX, 1, Duration::from_secs(60)).await.unwrap().remove(0);
    assert!(matches!(q.fail(OUTBOX, item.id, "boom", POLICY).await.unwrap(), FailOutcome::RetryAt(_)));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = q.lease(OUTBOX, 1, Duration::from_secs(60)).await.unwrap().remove(0);
    assert_eq!(again.attempts, 2);
    assert_eq!(q.fail(OUTBOX, again.id, "boom twice", POLICY).await.unwrap(), FailOutcome::Dead);
    let dead = q.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("boom twice"));
    assert_eq!(q.depths().await.unwrap().iter().find(|d| d.queue == OUTBOX).unwrap().dead, 1);
    assert!(q.retry_dead(item.id).await.unwrap());
    let revived = q.lease(OUTBOX, 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(revived[0].attempts, 1);
    assert!(q.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn postpone_does_not_count_an_attempt() {
    let (_dir, q) = open();
    q.enqueue(OUTBOX, &json!(1), DURABLE.clone()).await.unwrap();
    let item = q.lease(OUTBOX, 1, Duration::from_secs(60)).await.unwrap().remove(0);
    q.postpone(OUTBOX, item.id, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(q.lease(OUTBOX, 1, Duration::from_secs(60)).await.unwrap()[0].attempts, 1);
}

#[tokio::test]
async fn a_dedupe_key_is_queued_once() {
    let (_dir, q) = open();
    let opts = EnqueueOptions { dedupe_key: Some("1:whatsapp:wamid.1".into()), ..DURABLE.clone() };
    assert!(matches!(q.enqueue(INBOX, &json!(1), opts.clone()).await.unwrap(), Enqueued::Queued(_)));
    assert_eq!(q.enqueue(INBOX, &json!(1), opts).await.unwrap(), Enqueued::Duplicate);
    assert_eq!(q.depth(INBOX).await.unwrap(), 1);
}

#[tokio::test]
async fn concurrent_enqueues_with_one_key_share_a_batch_and_queue_once() {
    let (_dir, q) = open();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let opts = EnqueueOptions { dedupe_key: Some("same".into()), ..DURABLE.clone() };
            q.enqueue(INBOX, &json!("m"), opts).await.unwrap()
        }));
    }
    let mut queued = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Enqueued::Queued(_)) {
            queued += 1;
        }
    }
    assert_eq!(queued, 1);
}

#[tokio::test]
async fn kv_values_expire() {
    let (_dir, q) = open();
    q.kv_set("a", b"1", Some(Duration::from_millis(1))).await.unwrap();
    q.kv_set("b", b"2", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(q.kv_get("a").await.unwrap(), None);
    assert_eq!(q.kv_get("b").await.unwrap().as_deref(), Some(&b"2"[..]));
    q.sweep().await.unwrap();
    q.kv_delete("b").await.unwrap();
    assert_eq!(q.kv_get("b").await.unwrap(), None);
}

#[tokio::test]
async fn state_and_items_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.redb");
    {
        let q = Queues::open(&path).unwrap();
        q.enqueue(INBOX, &json!({"keep": true}), DURABLE.clone()).await.unwrap();
        q.state_put("sales_state:1:2", &json!({"stage": "offering"})).await.unwrap();
    }
    // The writer thread lets go of the file when the last handle is dropped.
    let q = reopen(&path).await;
    assert_eq!(q.depth(INBOX).await.unwrap(), 1);
    assert_eq!(q.state_get("sales_state:1:2").await.unwrap().unwrap()["stage"], "offering");
    assert!(q.state_delete("sales_state:1:2").await.unwrap());
    assert!(q.state_get("sales_state:1:2").await.unwrap().is_none());
}

async fn reopen(path: &std::path::Path) -> Queues {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Queues::open(path) {
            Ok(q) => return q,
            Err(e) if std::time::Instant::now() > deadline => panic!("reopen: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

#[tokio::test]
async fn a_restart_releases_leases_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.redb");
    {
        let q = Queues::open(&path).unwrap();
        q.enqueue(INBOX, &json!(1), DURABLE.clone()).await.unwrap();
        q.enqueue(INBOX, &json!(2), EnqueueOptions { delay: Duration::from_secs(3600), ..DURABLE.clone() })
            .await
            .unwrap();
        assert_eq!(q.lease(INBOX, 10, Duration::from_secs(3600)).await.unwrap().len(), 1);
        q.flush().await.unwrap();
    }
    let q = reopen(&path).await;
    let again = q.lease(INBOX, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.len(), 1, "the leased item is back, the delayed one still waits");
    assert_eq!(again[0].payload, json!(1));
}

#[test]
fn backoff_grows_and_is_capped() {
    let policy = RetryPolicy { max_attempts: 10, base: Duration::from_millis(100), max: Duration::from_secs(1) };
    let first = policy.backoff(1);
    assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
    let late = policy.backoff(9);
    assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1));
}
