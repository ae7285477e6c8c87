//! The redb store (`queues.redb`): durable FIFO queues with leases, retries and a
//! dead-letter list; a key-value cache with TTL; dialog state; dedupe keys.
//!
//! This is the only module that opens redb tables. Reads run on the blocking pool.
//! Writes go to one writer thread that applies every write waiting in its channel in
//! one transaction and commits once (group commit): concurrent webhooks share one
//! fsync, and each caller hears back only after the commit that holds its write.

pub mod snapshot;
mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::domain::now_ms;
use tables::{COUNTERS, DEAD, DEDUPE, ITEMS, KV, SCHEDULE, STATE};
use writer::Writer;

/// The inbound queue (SPEC 5.1).
pub const INBOX: &str = "inbox:message_in";
/// Outbound deliveries (SPEC 5.4).
pub const OUTBOX: &str = "outbox:send";
/// Catalog conversion jobs (SPEC 8).
pub const CATALOG: &str = "catalog:jobs";
/// Bot replies waiting for a lead's burst to end (debounce).
pub const BOT: &str = "bot:reply";
/// Every queue Avio runs, for depth reports.
pub const ALL_QUEUES: &[&str] = &[INBOX, OUTBOX, CATALOG, BOT];

/// How long a dedupe key is remembered: providers redeliver within hours, not weeks.
pub const DEDUPE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    #[error("io: {0}")]
    Io(std::io::Error),
    #[error("the queue writer has stopped")]
    WriterGone,
    #[error("blocking task failed: {0}")]
    Join(String),
    #[error("corrupt queue record: {0}")]
    Corrupt(String),
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(impl From<$t> for QueueError {
        fn from(e: $t) -> Self { QueueError::Redb(e.into()) }
    })*};
}
redb_from!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// A queued item as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    attempts: u32,
    visible_at: u64,
    enqueued_at: u64,
    #[serde(default)]
    last_error: Option<String>,
    /// Hidden by a consumer's lease (not by a retry delay): a restart makes it
    /// visible at once, since the consumer that held it is gone.
    #[serde(default)]
    leased: bool,
    payload: serde_json::Value,
}

/// An item handed to a consumer until its lease ends.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: u64,
    /// Deliveries so far, this one included.
    pub attempts: u32,
    pub payload: serde_json::Value,
    pub enqueued_at_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadItem {
    pub id: u64,
    pub queue: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub payload: serde_json::Value,
    pub enqueued_at_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueDepth {
    pub queue: String,
    /// Items waiting, including leased and delayed ones.
    pub depth: u64,
    pub dead: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued(u64),
    /// The dedupe key was seen before: acknowledged, not queued again.
    Duplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    RetryAt(u64),
    Dead,
}

/// Backoff for failed items: exponential from `base`, capped at `max`, with jitter
/// so a burst of failures does not retry in lockstep.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay before attempt `attempts + 1`: uniform in [d/2, d].
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let ceiling = exp.min(self.max);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(2);
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

/// Options of one enqueue.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Skip the item when this key was seen in the last [`DEDUPE_TTL`].
    pub dedupe_key: Option<String>,
    /// Invisible to consumers until then.
    pub delay: Duration,
    /// Fsync before answering. Off for items that can be recomputed.
    pub durable: bool,
}

/// A cheap handle to the redb store.
#[derive(Clone)]
pub struct Queues {
    db: Arc<Database>,
    writer: Writer,
}

impl Queues {
    /// Opens (creating if needed) the store and starts its writer thread.
    pub fn open(path: &Path) -> Result<Queues, QueueError> {
        crate::store::fsutil::ensure_private_file(path).map_err(QueueError::Io)?;
        let db = Arc::new(Database::builder().set_cache_size(16 * 1024 * 1024).create(path)?);
        tables::create_all(&db)?;
        recover_leases(&db)?;
        let writer = Writer::start(db.clone());
        Ok(Queues { db, writer })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            f(&txn)
        })
        .await
        .map_err(|e| QueueError::Join(e.to_string()))?
    }

    /// Adds an item; with a dedupe key, the check and the insert share one transaction.
    pub async fn enqueue<P: Serialize>(
        &self,
        queue: &str,
        payload: &P,
        options: EnqueueOptions,
    ) -> Result<Enqueued, QueueError> {
        let payload = serde_json::to_value(payload).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        let queue = queue.to_string();
        self.writer
            .write(options.durable, move |txn| {
                let now = now_ms();
                if let Some(key) = &options.dedupe_key {
                    let mut dedupe = txn.open_table(DEDUPE)?;
                    let seen = dedupe.get(key.as_str())?.is_some_and(|expires| expires.value() > now);
                    if seen {
                        return Ok(Enqueued::Duplicate);
                    }
                    dedupe.insert(key.as_str(), now + DEDUPE_TTL.as_millis() as u64)?;
                }
                let id = next_id(txn)?;
                let visible_at = now + options.delay.as_millis() as u64;
                let item = Item { attempts: 0, visible_at, enqueued_at: now, last_error: None, leased: false, payload };
                put_item(txn, &queue, id, &item)?;
                Ok(Enqueued::Queued(id))
            })
            .await
    }

    /// Leases up to `max` visible items, oldest first, hiding them for `lease`.
    /// An item whose consumer dies becomes visible again when the lease ends.
    pub async fn lease(&self, queue: &str, max: usize, lease: Duration) -> Result<Vec<Leased>, QueueError> {
        let queue = queue.to_string();
        self.writer
            .write(false, move |txn| {
                let now = now_ms();
                let due: Vec<(u64, u64)> = {
                    let schedule = txn.open_table(SCHEDULE)?;
                    schedule
                        .range((queue.as_str(), 0u64, 0u64)..=(queue.as_str(), now, u64::MAX))?
                        .take(max)
                        .map(|entry| entry.map(|(k, _)| (k.value().1, k.value().2)))
                        .collect::<Result<_, _>>()?
                };
                let mut leased = Vec::with_capacity(due.len());
                for (_, id) in due {
                    let Some(mut item) = get_item(txn, &queue, id)? else { continue };
                    item.attempts += 1;
                    item.leased = true;
                    item.visible_at = now + lease.as_millis() as u64;
                    put_item(txn, &queue, id, &item)?;
                    leased.push(Leased {
                        id,
                        attempts: item.attempts,
                        payload: item.payload,
                        enqueued_at_ms: item.enqueued_at,
                    });
                }
                Ok(leased)
            })
            .await
    }

    /// Removes a finished item. Not fsynced: a crash before the next durable commit
    /// redelivers it, and consumers are idempotent.
    pub async fn ack(&self, queue: &str, id: u64) -> Result<bool, QueueError> {
        let queue = queue.to_string();
        self.writer
            .write(false, move |txn| {
                let Some(item) = get_item(txn, &queue, id)? else { return Ok(false) };
                txn.open_table(SCHEDULE)?.remove((queue.as_str(), item.visible_at, id))?;
                txn.open_table(ITEMS)?.remove((queue.as_str(), id))?;
                Ok(true)
            })
            .await
    }

    /// Records a failed attempt: retry after a backoff, or dead-letter after
    /// `policy.max_attempts`.
    pub async fn fail(
        &self,
        queue: &str,
        id: u64,
        error: &str,
        policy: RetryPolicy,
    ) -> Result<FailOutcome, QueueError> {
        let queue = queue.to_string();
        let error = error.to_string();
        self.writer
            .write(true, move |txn| {
                let Some(mut item) = get_item(txn, &queue, id)? else { return Ok(FailOutcome::Dead) };
                item.last_error = Some(error);
                item.leased = false;
                if item.attempts >= policy.max_attempts {
                    txn.open_table(SCHEDULE)?.remove((queue.as_str(), item.visible_at, id))?;
                    txn.open_table(ITEMS)?.remove((queue.as_str(), id))?;
                    let bytes = encode(&item)?;
                    txn.open_table(DEAD)?.insert((queue.as_str(), id), bytes.as_slice())?;
                    return Ok(FailOutcome::Dead);
                }
                let at = now_ms() + policy.backoff(item.attempts).as_millis() as u64;
                item.visible_at = at;
                put_item(txn, &queue, id, &item)?;
                Ok(FailOutcome::RetryAt(at))
            })
            .await
    }

    /// Puts a leased item back after `delay` without counting the attempt (a rate
    /// limit such as FLOOD_WAIT is not a failure).
    pub async fn postpone(&self, queue: &str, id: u64, delay: Duration) -> Result<bool, QueueError> {
        let queue = queue.to_string();
        self.writer
            .write(true, move |txn| {
                let Some(mut item) = get_item(txn, &queue, id)? else { return Ok(false) };
                item.attempts = item.attempts.saturating_sub(1);
                item.leased = false;
                item.visible_at = now_ms() + delay.as_millis() as u64;
                put_item(txn, &queue, id, &item)?;
                Ok(true)
            })
            .await
    }

    /// Dead letters of every queue, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadItem>, QueueError> {
        self.read(|txn| {
            let dead = txn.open_table(DEAD)?;
            let mut out = Vec::new();
            for entry in dead.iter()? {
                let (key, value) = entry?;
                let (queue, id) = key.value();
                let item: Item = decode(value.value())?;
                out.push(DeadItem {
                    id,
                    queue: queue.to_string(),
                    attempts: item.attempts,
                    last_error: item.last_error,
                    payload: item.payload,
                    enqueued_at_ms: item.enqueued_at,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Moves a dead letter back to its queue with a fresh attempt count.
    pub async fn retry_dead(&self, id: u64) -> Result<bool, QueueError> {
        self.writer
            .write(true, move |txn| {
                let found = {
                    let dead = txn.open_table(DEAD)?;
                    let mut found = None;
                    for entry in dead.iter()? {
                        let (key, value) = entry?;
                        if key.value().1 == id {
                            found = Some((key.value().0.to_string(), decode::<Item>(value.value())?));
                            break;
                        }
                    }
                    found
                };
                let Some((queue, mut item)) = found else { return Ok(false) };
                txn.open_table(DEAD)?.remove((queue.as_str(), id))?;
                item.attempts = 0;
                item.leased = false;
                item.visible_at = now_ms();
                put_item(txn, &queue, id, &item)?;
                Ok(true)
            })
            .await
    }

    pub async fn depths(&self) -> Result<Vec<QueueDepth>, QueueError> {
        self.read(|txn| {
            let items = txn.open_table(ITEMS)?;
            let dead = txn.open_table(DEAD)?;
            let mut out = Vec::new();
            for queue in ALL_QUEUES {
                let range = (*queue, 0u64)..=(*queue, u64::MAX);
                out.push(QueueDepth {
                    queue: queue.to_string(),
                    depth: items.range(range.clone())?.count() as u64,
                    dead: dead.range(range)?.count() as u64,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Items currently stored in `queue` (test and diagnostics helper).
    pub async fn depth(&self, queue: &str) -> Result<u64, QueueError> {
        let queue = queue.to_string();
        self.read(move |txn| {
            let items = txn.open_table(ITEMS)?;
            Ok(items.range((queue.as_str(), 0u64)..=(queue.as_str(), u64::MAX))?.count() as u64)
        })
        .await
    }

    /// Stores a cache value; `ttl: None` keeps it until deleted.
    pub async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), QueueError> {
        let key = key.to_string();
        let value = value.to_vec();
        self.writer
            .write(false, move |txn| {
                let expires = ttl.map_or(0, |ttl| now_ms() + ttl.as_millis() as u64);
                txn.open_table(KV)?.insert(key.as_str(), (expires, value.as_slice()))?;
                Ok(())
            })
            .await
    }

    /// A live cache value; expired values read as absent.
    pub async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, QueueError> {
        let key = key.to_string();
        self.read(move |txn| {
            let kv = txn.open_table(KV)?;
            let Some(guard) = kv.get(key.as_str())? else { return Ok(None) };
            let (expires, value) = guard.value();
            Ok((expires == 0 || expires > now_ms()).then(|| value.to_vec()))
        })
        .await
    }

    /// Reads and removes a live cache value in one write transaction, so a value
    /// (an OAuth `state`) can be used once even when two requests race for it.
    pub async fn kv_take(&self, key: &str) -> Result<Option<Vec<u8>>, QueueError> {
        let key = key.to_string();
        self.writer
            .write(false, move |txn| {
                let mut kv = txn.open_table(KV)?;
                let Some(guard) = kv.remove(key.as_str())? else { return Ok(None) };
                let (expires, value) = guard.value();
                Ok((expires == 0 || expires > now_ms()).then(|| value.to_vec()))
            })
            .await
    }

    pub async fn kv_delete(&self, key: &str) -> Result<(), QueueError> {
        let key = key.to_string();
        self.writer
            .write(false, move |txn| {
                txn.open_table(KV)?.remove(key.as_str())?;
                Ok(())
            })
            .await
    }

    /// Dialog state (SPEC 5.3) under `sales_state:<tenant>:<contact>`.
    pub async fn state_get(&self, key: &str) -> Result<Option<serde_json::Value>, QueueError> {
        let key = key.to_string();
        self.read(move |txn| {
            let state = txn.open_table(STATE)?;
            match state.get(key.as_str())? {
                Some(guard) => Ok(Some(decode(guard.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn state_put(&self, key: &str, value: &serde_json::Value) -> Result<(), QueueError> {
        let key = key.to_string();
        let bytes = encode(value)?;
        self.writer
            .write(true, move |txn| {
                txn.open_table(STATE)?.insert(key.as_str(), bytes.as_slice())?;
                Ok(())
            })
            .await
    }

    /// Read-modify-write of a state value inside one write transaction, so concurrent
    /// updates never lose each other's changes. Returns the stored value.
    pub async fn state_update<F>(&self, key: &str, f: F) -> Result<Option<serde_json::Value>, QueueError>
    where
        F: FnOnce(Option<serde_json::Value>) -> Option<serde_json::Value> + Send + 'static,
    {
        let key = key.to_string();
        self.writer
            .write(true, move |txn| {
                let mut table = txn.open_table(STATE)?;
                let current = match table.get(key.as_str())? {
                    Some(guard) => Some(decode::<serde_json::Value>(guard.value())?),
                    None => None,
                };
                let next = f(current);
                match &next {
                    Some(value) => {
                        let bytes = encode(value)?;
                        table.insert(key.as_str(), bytes.as_slice())?;
                    }
                    None => {
                        table.remove(key.as_str())?;
                    }
                }
                Ok(next)
            })
            .await
    }

    /// Removes a dialog's state; `false` when there was none.
    pub async fn state_delete(&self, key: &str) -> Result<bool, QueueError> {
        let key = key.to_string();
        self.writer.write(true, move |txn| Ok(txn.open_table(STATE)?.remove(key.as_str())?.is_some())).await
    }

    /// Proves the store accepts writes (`GET /health`), without an fsync.
    pub async fn probe_write(&self) -> Result<(), QueueError> {
        self.kv_set("health:probe", &now_ms().to_be_bytes(), Some(Duration::from_secs(60))).await
    }

    /// Makes every earlier non-durable commit durable.
    pub async fn flush(&self) -> Result<(), QueueError> {
        self.writer.write(true, |_| Ok(())).await
    }

    /// Drops expired cache values and dedupe keys.
    pub async fn sweep(&self) -> Result<(), QueueError> {
        self.writer
            .write(false, |txn| {
                let now = now_ms();
                txn.open_table(KV)?.retain(|_, (expires, _)| expires == 0 || expires > now)?;
                txn.open_table(DEDUPE)?.retain(|_, expires| expires > now)?;
                Ok(())
            })
            .await
    }
}

/// Makes items leased by a previous process visible again: that consumer is gone,
/// and waiting out its lease would only delay redelivery.
fn recover_leases(db: &Database) -> Result<(), QueueError> {
    let txn = db.begin_write()?;
    let now = now_ms();
    let stale: Vec<(String, u64, Item)> = {
        let items = txn.open_table(ITEMS)?;
        let mut stale = Vec::new();
        for entry in items.iter()? {
            let (key, value) = entry?;
            let item: Item = decode(value.value())?;
            if item.leased {
                let (queue, id) = key.value();
                stale.push((queue.to_string(), id, item));
            }
        }
        stale
    };
    for (queue, id, mut item) in stale {
        item.leased = false;
        item.visible_at = now;
        put_item(&txn, &queue, id, &item)?;
    }
    txn.commit()?;
    Ok(())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, QueueError> {
    serde_json::to_vec(value).map_err(|e| QueueError::Corrupt(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, QueueError> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Corrupt(e.to_string()))
}

fn next_id(txn: &redb::WriteTransaction) -> Result<u64, QueueError> {
    let mut counters = txn.open_table(COUNTERS)?;
    let next = counters.get("item_id")?.map_or(1, |v| v.value() + 1);
    counters.insert("item_id", next)?;
    Ok(next)
}

fn get_item(txn: &redb::WriteTransaction, queue: &str, id: u64) -> Result<Option<Item>, QueueError> {
    let items = txn.open_table(ITEMS)?;
    let found = items.get((queue, id))?;
    found.map(|guard| decode(guard.value())).transpose()
}

/// Writes an item and keeps its schedule entry in step with `visible_at`.
fn put_item(txn: &redb::WriteTransaction, queue: &str, id: u64, item: &Item) -> Result<(), QueueError> {
    let mut items = txn.open_table(ITEMS)?;
    let mut schedule = txn.open_table(SCHEDULE)?;
    if let Some(old) = items.get((queue, id))? {
        let old: Item = decode(old.value())?;
        schedule.remove((queue, old.visible_at, id))?;
    }
    let bytes = encode(item)?;
    items.insert((queue, id), bytes.as_slice())?;
    schedule.insert((queue, item.visible_at, id), ())?;
    Ok(())
}

#[cfg(test)]
mod tests;
