//! The outbox: the only way anything is sent (SPEC 5.4). `submit` applies the guards
//! and queues a durable job; the worker resolves the lead, downloads attachments,
//! calls the channel driver and records the result, retrying with backoff and jitter
//! before dead-lettering.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::attachments;
use crate::app::AppState;
use crate::channels::{Disposition, OutboundMessage, SendError};
use crate::domain::{Channel, TransportMessage, now_rfc3339};
use crate::queue::{EnqueueOptions, Enqueued, FailOutcome, Leased, OUTBOX, QueueError, RetryPolicy};
use crate::store::{LeadRef, OutboundRecord, OutboxJobRow, StoreError};

/// Retries from `OUTBOX_MAX_ATTEMPTS` and `OUTBOX_RETRY_BASE_MS`, capped at 5 minutes.
fn policy(state: &AppState) -> RetryPolicy {
    RetryPolicy {
        max_attempts: state.config.outbox_max_attempts,
        base: state.config.outbox_retry_base,
        max: Duration::from_secs(300),
    }
}
const LEASE: Duration = Duration::from_secs(120);
const BATCH: usize = 16;

/// Who asked for the send; becomes the message's author in the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `POST /send` (an operator or a script).
    Api,
    Bot,
    /// An operator's reply from the cabinet.
    Operator,
}

impl Origin {
    fn author(self) -> &'static str {
        match self {
            Origin::Bot => "bot",
            Origin::Api | Origin::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutboxItem {
    job_id: String,
    origin: Origin,
    message: TransportMessage,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("outbox_disabled")]
    Disabled,
    #[error("not_whitelisted")]
    NotWhitelisted,
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub job_id: String,
    /// The idempotency key was seen before; nothing new was queued.
    pub duplicate: bool,
}

/// The final result of a job, as `?wait=true` and `GET /send/{id}` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobResult {
    pub status: String,
    pub error: Option<String>,
}

impl JobResult {
    pub fn to_json(&self) -> Value {
        match &self.error {
            None if self.status == "sent" => json!({"ok": true}),
            _ => json!({"ok": false, "error": self.error.clone().unwrap_or_else(|| self.status.clone())}),
        }
    }
}

/// Callers waiting for a job's result (`POST /send?wait=true`).
#[derive(Default)]
pub struct JobWaiters {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<JobResult>>>>,
}

impl JobWaiters {
    /// Registers before the job is queued, so a fast result is never missed.
    pub fn register(&self, job_id: &str) -> oneshot::Receiver<JobResult> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).entry(job_id.to_string()).or_default().push(tx);
        rx
    }

    fn complete(&self, job_id: &str, result: &JobResult) {
        let waiters = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(job_id);
        for tx in waiters.into_iter().flatten() {
            let _ = tx.send(result.clone());
        }
    }

    pub fn forget(&self, job_id: &str) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(job_id);
    }
}

fn log_result(state: &AppState, channel: Channel, status: &str, reason: &str, job_id: &str, tenant: &str) {
    tracing::info!(event = "send_result", status, reason, channel = %channel, tenant, job_id);
    state.metrics.send_result(channel.as_str(), status, reason);
}

/// The guards of SPEC 5.4, in order. The simulator never leaves Avio, so it is exempt.
pub fn check_guards(state: &AppState, channel: Channel, to: &str) -> Result<(), SubmitError> {
    if channel == Channel::Simulator {
        return Ok(());
    }
    if !state.config.outbox_enabled {
        return Err(SubmitError::Disabled);
    }
    if !state.whitelist.allows(channel, to) {
        return Err(SubmitError::NotWhitelisted);
    }
    Ok(())
}

/// Queues a send after the guards. `idempotency_key` makes a repeat (e.g. the bot
/// replying to a redelivered message) a no-op. `job_id` may be chosen by the caller
/// so it can register a waiter first.
pub async fn submit(
    state: &AppState,
    message: TransportMessage,
    origin: Origin,
    idempotency_key: Option<String>,
    job_id: Option<String>,
) -> Result<Submitted, SubmitError> {
    if let Err(e) = check_guards(state, message.channel, &message.to) {
        let reason = match e {
            SubmitError::Disabled => "outbox_disabled",
            _ => "whitelist_miss",
        };
        log_result(state, message.channel, "skipped", reason, "-", &message.tenant.to_string());
        return Err(e);
    }
    // A keyed submit gets a job id derived from its key, so a resubmit after a crash
    // lands on the same rows instead of leaving an orphan behind.
    let job_id = job_id
        .or_else(|| {
            idempotency_key.as_deref().map(|k| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, k.as_bytes()).to_string())
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let item = OutboxItem { job_id: job_id.clone(), origin, message: message.clone() };
    let options = EnqueueOptions {
        dedupe_key: Some(format!("out:{}", idempotency_key.as_deref().unwrap_or(&job_id))),
        // A bot reply needs no fsync of its own: its job's ack commits after this one,
        // so a crash that loses this commit redelivers the job (same key, same job id).
        // API and operator sends are acknowledged to a person and must be durable now.
        durable: origin != Origin::Bot,
        ..Default::default()
    };
    if state.queues.enqueue(OUTBOX, &item, options).await? == Enqueued::Duplicate {
        return Ok(Submitted { job_id, duplicate: true });
    }
    let now = now_rfc3339();
    let row = OutboxJobRow {
        job_id: job_id.clone(),
        tenant: message.tenant,
        channel: message.channel.as_str().into(),
        recipient: message.to.clone(),
        payload: serde_json::to_value(&item).unwrap_or(Value::Null),
        status: "queued".into(),
        error: None,
        attempts: 0,
        created_at: now.clone(),
        updated_at: now,
    };
    state
        .store
        .record_submitted(row, message.channel, move |lead| outbound_record(&item, lead, "queued", None, None))
        .await?;
    state.wake.outbox.notify_one();
    Ok(Submitted { job_id, duplicate: false })
}

fn outbound_record(
    item: &OutboxItem,
    lead: Option<LeadRef>,
    status: &str,
    error: Option<String>,
    provider_message_id: Option<String>,
) -> OutboundRecord {
    OutboundRecord {
        tenant: item.message.tenant,
        job_id: item.job_id.clone(),
        lead,
        channel: item.message.channel,
        text: item.message.effective_text(),
        attachments: serde_json::to_value(&item.message.attachments).unwrap_or(Value::Null),
        author: item.origin.author(),
        status: status.into(),
        error,
        provider_message_id,
    }
}

/// Processes one batch concurrently; returns how many items it took.
pub async fn step(state: &AppState) -> Result<usize, QueueError> {
    let items = state.queues.lease(OUTBOX, BATCH, LEASE).await?;
    let n = items.len();
    futures_util::future::join_all(items.iter().map(|item| deliver(state, item))).await;
    Ok(n)
}

async fn deliver(state: &AppState, leased: &Leased) {
    let item: OutboxItem = match serde_json::from_value(leased.payload.clone()) {
        Ok(item) => item,
        Err(e) => {
            tracing::error!(event = "outbox_corrupt_item", item = leased.id, error = %e);
            let _ = state
                .queues
                .fail(
                    OUTBOX,
                    leased.id,
                    &format!("corrupt item: {e}"),
                    RetryPolicy { max_attempts: 0, ..policy(state) },
                )
                .await;
            return;
        }
    };
    // A job whose result is already recorded was redelivered after a crash that lost
    // its (unfsynced) ack: sending again would message the lead twice. A failed job
    // comes back only when an operator retries its dead letter, and then it must go.
    if let Ok(Some(row)) = state.store.outbox_job(item.job_id.clone()).await
        && matches!(row.status.as_str(), "sent" | "skipped")
    {
        tracing::info!(event = "outbox_already_done", job_id = %item.job_id, status = %row.status);
        if let Err(e) = state.queues.ack(OUTBOX, leased.id).await {
            tracing::error!(event = "outbox_ack_failed", error = %e);
        }
        return;
    }
    let message = &item.message;
    let lead = match state.store.find_lead(message.tenant, message.channel, message.to.clone()).await {
        Ok(lead) => lead,
        Err(e) => return retry(state, leased, &item, &format!("store: {e}")).await,
    };
    // The worker never creates a lead on the way (SPEC 5.4); "me" is the account itself.
    if lead.is_none() && message.to != "me" {
        return finish(state, leased, &item, None, "skipped", Some("err:no_lead".into()), None).await;
    }
    let mut files = Vec::with_capacity(message.attachments.len());
    for attachment in &message.attachments {
        match attachments::download(&state.http_client, attachment).await {
            Ok(file) => files.push(file),
            Err(e) => return handle_error(state, leased, &item, lead, e).await,
        }
    }
    let Some(driver) = state.channels.driver(message.tenant, message.channel) else {
        let e = SendError::NotConnected;
        return handle_error(state, leased, &item, lead, e).await;
    };
    let outbound = OutboundMessage {
        tenant: message.tenant,
        job_id: item.job_id.clone(),
        to: lead.as_ref().map_or_else(|| message.to.clone(), |l| l.peer.clone()),
        text: message.effective_text(),
        files,
        reply_to: message.reply_to.clone(),
    };
    match driver.send(&outbound).await {
        Ok(receipt) => {
            tracing::info!(event = "message_out", channel = %message.channel, tenant = %message.tenant,
                job_id = %item.job_id, result = "success");
            finish(state, leased, &item, lead, "sent", None, receipt.provider_message_id).await;
        }
        Err(e) => handle_error(state, leased, &item, lead, e).await,
    }
}

async fn handle_error(state: &AppState, leased: &Leased, item: &OutboxItem, lead: Option<LeadRef>, e: SendError) {
    match e.disposition() {
        Disposition::Retry => retry(state, leased, item, &format!("{}: {e}", e.result_code())).await,
        Disposition::Postpone(delay) => {
            tracing::warn!(event = "send_postponed", channel = %item.message.channel, job_id = %item.job_id,
                delay_s = delay.as_secs(), reason = e.result_code());
            if let Err(err) = state.queues.postpone(OUTBOX, leased.id, delay).await {
                tracing::error!(event = "outbox_postpone_failed", error = %err);
            }
        }
        Disposition::Skip => finish(state, leased, item, lead, "skipped", Some(e.result_code().into()), None).await,
        Disposition::Fail => finish(state, leased, item, lead, "failed", Some(e.result_code().into()), None).await,
    }
}

async fn retry(state: &AppState, leased: &Leased, item: &OutboxItem, reason: &str) {
    match state.queues.fail(OUTBOX, leased.id, reason, policy(state)).await {
        Ok(FailOutcome::RetryAt(_)) => {
            tracing::warn!(event = "send_retry", channel = %item.message.channel, job_id = %item.job_id,
                attempt = leased.attempts, reason);
            let _ = state
                .store
                .update_outbox_job(item.job_id.clone(), "retrying", Some(reason.into()), leased.attempts)
                .await;
        }
        Ok(FailOutcome::Dead) => {
            let code = reason.split(':').next().unwrap_or(reason).to_string();
            let result = JobResult { status: "failed".into(), error: Some(code.clone()) };
            record(state, item, None, &result, leased.attempts, None).await;
            log_result(state, item.message.channel, "failed", &code, &item.job_id, &item.message.tenant.to_string());
            state.waiters.complete(&item.job_id, &result);
        }
        Err(e) => tracing::error!(event = "outbox_fail_failed", error = %e),
    }
}

async fn record(
    state: &AppState,
    item: &OutboxItem,
    lead: Option<LeadRef>,
    result: &JobResult,
    attempts: u32,
    provider_id: Option<String>,
) {
    let status: &'static str = match result.status.as_str() {
        "sent" => "sent",
        "skipped" => "skipped",
        _ => "failed",
    };
    if let Err(e) = state.store.update_outbox_job(item.job_id.clone(), status, result.error.clone(), attempts).await {
        tracing::error!(event = "outbox_record_failed", job_id = %item.job_id, error = %e);
    }
    if let Err(e) =
        state.store.record_outbound(outbound_record(item, lead, status, result.error.clone(), provider_id)).await
    {
        tracing::error!(event = "outbox_record_failed", job_id = %item.job_id, error = %e);
    }
}

async fn finish(
    state: &AppState,
    leased: &Leased,
    item: &OutboxItem,
    lead: Option<LeadRef>,
    status: &str,
    error: Option<String>,
    provider_id: Option<String>,
) {
    let result = JobResult { status: status.into(), error: error.clone() };
    record(state, item, lead, &result, leased.attempts, provider_id).await;
    let reason = error.as_deref().unwrap_or("ok");
    log_result(state, item.message.channel, status, reason, &item.job_id, &item.message.tenant.to_string());
    if let Err(e) = state.queues.ack(OUTBOX, leased.id).await {
        tracing::error!(event = "outbox_ack_failed", error = %e);
    }
    state.waiters.complete(&item.job_id, &result);
}

/// Runs until shutdown, woken by new jobs; polls for retries coming due.
pub async fn run(state: AppState) {
    loop {
        let woken = state.wake.outbox.notified();
        match step(&state).await {
            Ok(0) => {
                let _ = tokio::time::timeout(Duration::from_millis(500), woken).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(event = "outbox_step_failed", error = %e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
