//! The single writer thread and its group commit.
//!
//! Callers send closures; the thread takes every closure waiting in the channel (up
//! to [`MAX_BATCH`]), runs them in one write transaction, commits once, and only then
//! answers each caller. A batch is fsynced when any of its writes asked for
//! durability; otherwise it commits without fsync and becomes durable with the next
//! durable commit, or with the idle flush a second later.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use super::QueueError;

const MAX_BATCH: usize = 2048;
const IDLE_FLUSH: Duration = Duration::from_secs(1);

/// What a write answers once its transaction's commit is known.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&WriteTransaction) -> (Reply, bool) + Send>;

struct Request {
    durable: bool,
    job: Job,
}

#[derive(Clone)]
pub(super) struct Writer {
    sender: mpsc::Sender<Request>,
}

impl Writer {
    pub fn start(db: Arc<Database>) -> Writer {
        let (sender, receiver) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("avio-redb-writer".into())
            .spawn(move || run(&db, &receiver))
            .expect("spawn the redb writer thread");
        Writer { sender }
    }

    /// Runs `f` in the next group transaction and returns its result after commit.
    /// `f` must not write anything when it returns an error other than a storage error.
    pub async fn write<T, F>(&self, durable: bool, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, QueueError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, QueueError>>();
        let job: Job = Box::new(move |txn| {
            let result = f(txn);
            // A storage error leaves the transaction in an unknown state: abort it all.
            let poisoned = matches!(result, Err(QueueError::Redb(_)));
            let reply: Reply = Box::new(move |commit| {
                let outcome = match commit {
                    Ok(()) => result,
                    Err(reason) => Err(QueueError::Corrupt(format!("transaction aborted: {reason}"))),
                };
                let _ = tx.send(outcome);
            });
            (reply, poisoned)
        });
        self.sender.send(Request { durable, job }).map_err(|_| QueueError::WriterGone)?;
        rx.await.map_err(|_| QueueError::WriterGone)?
    }
}

fn run(db: &Database, receiver: &mpsc::Receiver<Request>) {
    let mut dirty = false;
    loop {
        let first = match receiver.recv_timeout(IDLE_FLUSH) {
            Ok(request) => request,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if dirty && commit_batch(db, Vec::new(), true).is_ok() {
                    dirty = false;
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if dirty {
                    let _ = commit_batch(db, Vec::new(), true);
                }
                return;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|r| r.durable);
        match commit_batch(db, batch, durable) {
            Ok(()) => dirty = !durable,
            Err(e) => tracing::error!(event = "queue_commit_failed", error = %e),
        }
    }
}

fn commit_batch(db: &Database, batch: Vec<Request>, durable: bool) -> Result<(), String> {
    let mut txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            let reason = e.to_string();
            for request in batch {
                // The job never ran; answer with the failure without touching a txn.
                drop(request.job);
            }
            return Err(reason);
        }
    };
    let durability = if durable { Durability::Immediate } else { Durability::None };
    if let Err(e) = txn.set_durability(durability) {
        return Err(e.to_string());
    }
    let mut replies = Vec::with_capacity(batch.len());
    let mut abort_reason = None;
    for request in batch {
        match catch_unwind(AssertUnwindSafe(|| (request.job)(&txn))) {
            Ok((reply, poisoned)) => {
                if poisoned && abort_reason.is_none() {
                    abort_reason = Some("a storage error in the batch".to_string());
                }
                replies.push(reply);
            }
            Err(_) => abort_reason = Some("a write panicked".to_string()),
        }
    }
    let outcome = match abort_reason {
        Some(reason) => {
            let _ = txn.abort();
            Err(reason)
        }
        None => txn.commit().map_err(|e| e.to_string()),
    };
    for reply in replies {
        reply(outcome.clone());
    }
    outcome
}
