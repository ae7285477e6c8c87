//! The catalog worker: leases one job at a time from `queue::CATALOG`, converts the
//! upload on the blocking pool under a deadline, writes `catalogs/<base_name>.csv`,
//! records it in `tenant.json → integrations.uploaded_catalog` and moves status.json
//! to `done` or `failed`.
//!
//! A bad file is the file's problem, not the worker's: every conversion error, a panic
//! inside a parser and an overrun deadline fail that job with a reason and the worker
//! moves on. Only infrastructure errors (disk, queue) retry with backoff.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use avio_catalog::{Limits, SourceKind};
use serde_json::{Value, json};

use super::jobs::{self, CATALOGS_DIR, CatalogJob, JobState, JobStatus};
use crate::app::AppState;
use crate::domain::now_rfc3339;
use crate::metrics::StatusLabels;
use crate::queue::{CATALOG, FailOutcome, Leased, QueueError, RetryPolicy};
use crate::store::{StoreError, fsutil};

/// How long one conversion may run before the converter gives up (SPEC 8: a hostile
/// file must not hang the daemon).
pub const CONVERT_DEADLINE: Duration = Duration::from_secs(60);
/// Extra time after the deadline before the worker stops waiting for a parser that
/// ignores it; the job fails and the worker continues.
const DEADLINE_GRACE: Duration = Duration::from_secs(30);
/// Covers the deadline, the grace and the writes, so a live job is never redelivered.
const LEASE: Duration = Duration::from_secs(300);
pub const POLICY: RetryPolicy =
    RetryPolicy { max_attempts: 3, base: Duration::from_secs(2), max: Duration::from_secs(60) };

/// The bounds every daemon conversion runs under.
pub fn limits() -> Limits {
    Limits { deadline: Some(Instant::now() + CONVERT_DEADLINE), ..Limits::default() }
}

/// How one job ended, when it ended for good.
enum Outcome {
    Done,
    Failed,
}

/// Processes at most one job; returns how many it took (0 or 1).
pub async fn step(state: &AppState) -> Result<usize, QueueError> {
    // One at a time: a conversion can use a core and hundreds of MiB for a minute.
    let items = state.queues.lease(CATALOG, 1, LEASE).await?;
    for item in &items {
        match process(state, item).await {
            Ok(outcome) => {
                state.queues.ack(CATALOG, item.id).await?;
                let status = match outcome {
                    Outcome::Done => "done",
                    Outcome::Failed => "failed",
                };
                state.metrics.catalog_jobs.get_or_create(&StatusLabels { status: status.into() }).inc();
            }
            Err(e) => {
                let reason = format!("{e:#}");
                match state.queues.fail(CATALOG, item.id, &reason, POLICY).await? {
                    FailOutcome::RetryAt(_) => {
                        tracing::warn!(event = "catalog_job_retry", item = item.id, attempt = item.attempts, error = %reason);
                    }
                    FailOutcome::Dead => {
                        if let Ok(job) = serde_json::from_value::<CatalogJob>(item.payload.clone()) {
                            fail_job(state, &job, "the job could not be completed: a storage error".into()).await;
                        }
                        state.metrics.catalog_jobs.get_or_create(&StatusLabels { status: "failed".into() }).inc();
                        tracing::error!(event = "catalog_job_dead_letter", item = item.id, error = %reason);
                    }
                }
            }
        }
    }
    Ok(items.len())
}

/// `Ok` means the job is finished (done or failed for good); `Err` is worth a retry.
async fn process(state: &AppState, item: &Leased) -> anyhow::Result<Outcome> {
    let job: CatalogJob = match serde_json::from_value(item.payload.clone()) {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(event = "catalog_job_failed", item = item.id, reason = %format!("unreadable job: {e}"));
            return Ok(Outcome::Failed);
        }
    };
    // More deliveries than the retry policy allows means earlier runs never came back:
    // the process died inside this job. Do not feed it the same file forever.
    if item.attempts > POLICY.max_attempts {
        fail_job(state, &job, "the conversion was interrupted repeatedly and was stopped".into()).await;
        return Ok(Outcome::Failed);
    }

    let mut status =
        jobs::read_status(&state.files, job.tenant, &job.job_id).await?.unwrap_or_else(|| JobStatus::queued(&job));
    status.state = JobState::Running;
    status.started_at = Some(now_rfc3339());
    status.error = None;
    let status = jobs::write_status(&state.files, status).await?;
    tracing::info!(event = "catalog_job_started", tenant = %job.tenant, job_id = %job.job_id, r#type = %job.kind,
        size = job.size, attempt = item.attempts);

    let converted = match convert(state, &job).await {
        Ok(converted) => converted,
        Err(reason) => {
            fail_job(state, &job, reason).await;
            return Ok(Outcome::Failed);
        }
    };

    let csv_relative = format!("{CATALOGS_DIR}/{}.csv", job.base_name);
    let csv_path = state.files.dir(job.tenant).join(&csv_relative);
    let csv_for_write = csv_path.clone();
    jobs::blocking(move || Ok(fsutil::write_private(&csv_for_write, &converted.csv)?))
        .await
        .context("write the catalog csv")?;

    let record = uploaded_catalog(&job, &csv_relative, converted.pipeline, converted.rows);
    match state
        .files
        .update(job.tenant, move |doc| {
            doc.integrations.insert("uploaded_catalog".into(), record);
        })
        .await
    {
        Ok(_) => {}
        Err(StoreError::TenantNotFound) => {
            fail_job(state, &job, "the tenant no longer exists".into()).await;
            return Ok(Outcome::Failed);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("record uploaded_catalog in tenant.json")),
    }

    let mut done = status;
    done.state = JobState::Done;
    done.rows = Some(converted.rows);
    done.warnings = converted.warnings;
    done.pipeline = Some(converted.pipeline.to_string());
    done.csv_path = Some(csv_relative);
    done.finished_at = Some(now_rfc3339());
    jobs::write_status(&state.files, done).await?;
    tracing::info!(event = "catalog_job_done", tenant = %job.tenant, job_id = %job.job_id, rows = converted.rows,
        pipeline = converted.pipeline);

    if let Err(e) = super::on_catalog_ready(state, job.tenant, &csv_path).await {
        // The CSV is in place and recorded; a failing index rebuild must not undo that.
        tracing::warn!(event = "catalog_ready_hook_failed", tenant = %job.tenant, error = format!("{e:#}"));
    }
    Ok(Outcome::Done)
}

struct Converted {
    csv: Vec<u8>,
    rows: usize,
    warnings: Vec<String>,
    pipeline: &'static str,
}

/// Reads and converts the upload on the blocking pool. `Err` is a reason for the person
/// who uploaded the file; none of these failures is worth a retry.
async fn convert(state: &AppState, job: &CatalogJob) -> Result<Converted, String> {
    let kind = SourceKind::from_extension(&job.kind).ok_or_else(|| format!("unsupported file type: {}", job.kind))?;
    let source: PathBuf = jobs::resolve_inside(&state.files, job.tenant, jobs::UPLOADS_DIR, &job.path)
        .ok_or_else(|| "the uploaded file path is invalid".to_string())?;
    let limits = limits();
    let task = tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&source).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "the uploaded file is missing".to_string(),
            _ => format!("the uploaded file could not be read: {e}"),
        })?;
        let conversion = avio_catalog::convert(&bytes, kind, &limits).map_err(|e| e.to_string())?;
        drop(bytes);
        let mut csv = Vec::new();
        avio_catalog::write_csv(&conversion.rows, &mut csv)
            .map_err(|e| format!("the CSV could not be written: {e}"))?;
        Ok::<_, String>(Converted {
            csv,
            rows: conversion.rows.len(),
            warnings: conversion.warnings,
            pipeline: conversion.pipeline,
        })
    });
    match tokio::time::timeout(CONVERT_DEADLINE + DEADLINE_GRACE, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) if join.is_panic() => Err("the converter hit an internal error on this file".into()),
        Ok(Err(_)) => Err("the conversion was cancelled".into()),
        Err(_) => {
            // The thread keeps running until the parser returns; the worker does not wait.
            tracing::error!(event = "catalog_convert_overran", tenant = %job.tenant, job_id = %job.job_id);
            Err(avio_catalog::CatalogError::Timeout.to_string())
        }
    }
}

/// `integrations.uploaded_catalog` (SPEC 8). `index` is filled by whoever builds the
/// search index from the CSV; until then it says the index is pending.
fn uploaded_catalog(job: &CatalogJob, csv_relative: &str, pipeline: &str, rows: usize) -> Value {
    json!({
        "path": job.path,
        "original": job.original,
        "uploaded_at": job.uploaded_at,
        "type": job.kind,
        "size": job.size,
        "mime": job.mime,
        "csv_path": csv_relative,
        "pipeline": pipeline,
        "index": {"state": "pending"},
        "rows": rows,
        "job_id": job.job_id,
        "converted_at": now_rfc3339(),
    })
}

/// Marks a job failed with a reason; a failure to write the status is logged, since
/// the job is over either way.
async fn fail_job(state: &AppState, job: &CatalogJob, reason: String) {
    tracing::warn!(event = "catalog_job_failed", tenant = %job.tenant, job_id = %job.job_id, reason = %reason);
    let current = jobs::read_status(&state.files, job.tenant, &job.job_id).await.ok().flatten();
    let mut status = current.unwrap_or_else(|| JobStatus::queued(job));
    status.state = JobState::Failed;
    status.error = Some(reason);
    status.finished_at = Some(now_rfc3339());
    if let Err(e) = jobs::write_status(&state.files, status).await {
        tracing::error!(event = "catalog_status_write_failed", job_id = %job.job_id, error = %e);
    }
}

/// Runs until shutdown: a job whenever there is one, woken by uploads.
pub async fn run(state: AppState) {
    loop {
        let woken = state.wake.catalog.notified();
        match step(&state).await {
            Ok(0) => {
                let _ = tokio::time::timeout(Duration::from_millis(500), woken).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(event = "catalog_step_failed", error = %e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
