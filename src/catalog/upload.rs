//! Receiving an upload: the bytes stream into a private temp file under `uploads/`
//! with the size limit enforced per chunk, then the file is renamed into place and a
//! job is queued. Nothing here buffers a whole body in memory.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use super::jobs::{self, CatalogJob, JobStatus, UPLOADS_DIR};
use super::names::{UploadName, mime_for};
use crate::app::AppState;
use crate::domain::{TenantId, now_rfc3339};
use crate::queue::{CATALOG, EnqueueOptions};
use crate::store::{TenantFiles, fsutil};

/// Why an upload was refused; the HTTP layer maps each to SPEC 8's error body.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("no file field in the form")]
    MissingFile,
    #[error("the file is empty")]
    EmptyFile,
    #[error("the file type is not accepted")]
    UnsupportedType,
    #[error("the file is larger than {max_size_bytes} bytes")]
    TooLarge { max_size_bytes: u64 },
    #[error("the form could not be read: {0}")]
    Malformed(String),
    #[error("storing the upload failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A temp file receiving one upload. Dropping it unfinished (an error, or the client
/// went away mid-body) removes the partial file.
pub struct UploadSink {
    dir: PathBuf,
    part: Option<PathBuf>,
    file: tokio::fs::File,
    size: u64,
    max_size_bytes: u64,
}

impl UploadSink {
    pub async fn create(files: &TenantFiles, tenant: TenantId, max_size_bytes: u64) -> Result<UploadSink, UploadError> {
        let dir = files.dir(tenant).join(UPLOADS_DIR);
        let dir_for_create = dir.clone();
        tokio::task::spawn_blocking(move || fsutil::ensure_private_dir(&dir_for_create))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        // A dot name so a half-received file never looks like an upload.
        let part = dir.join(format!(".upload-{}.part", uuid::Uuid::new_v4()));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&part).await?;
        Ok(UploadSink { dir, part: Some(part), file, size: 0, max_size_bytes })
    }

    /// Appends a chunk; refuses it (without writing) once the total would pass the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        let size = self.size.saturating_add(chunk.len() as u64);
        if size > self.max_size_bytes {
            return Err(UploadError::TooLarge { max_size_bytes: self.max_size_bytes });
        }
        self.file.write_all(chunk).await?;
        self.size = size;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the file durable and renames it to `uploads/<safe_name>.<ext>`, replacing
    /// an earlier upload of the same name (the newest price list wins). Returns the
    /// path relative to the tenant folder.
    pub async fn finish(mut self, name: &UploadName) -> Result<String, UploadError> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        let file_name = name.file_name();
        let target = self.dir.join(&file_name);
        if let Some(part) = self.part.take() {
            tokio::fs::rename(&part, &target).await?;
        }
        Ok(format!("{UPLOADS_DIR}/{file_name}"))
    }
}

impl UploadSink {
    /// Removes the partial file now (the error paths), rather than soon after (drop).
    pub async fn discard(mut self) {
        if let Some(part) = self.part.take() {
            let _ = tokio::fs::remove_file(part).await;
        }
    }
}

impl Drop for UploadSink {
    fn drop(&mut self) {
        if let Some(part) = self.part.take() {
            // Unlinking is quick, but still file IO: keep it off the async workers.
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn_blocking(move || {
                        let _ = std::fs::remove_file(part);
                    });
                }
                Err(_) => {
                    let _ = std::fs::remove_file(part);
                }
            }
        }
    }
}

/// Records a received upload as a job: status.json first (so a poll never misses the
/// job), then one durable queue item. Returns the job id.
pub async fn accept(
    state: &AppState,
    tenant: TenantId,
    name: &UploadName,
    path: String,
    size: u64,
) -> anyhow::Result<String> {
    let kind = name.kind().ok_or(UploadError::UnsupportedType)?;
    let job = CatalogJob {
        job_id: uuid::Uuid::new_v4().to_string(),
        tenant,
        path,
        original: name.original.clone(),
        base_name: name.stem.clone(),
        kind: kind.as_str().to_string(),
        size,
        mime: mime_for(kind).to_string(),
        uploaded_at: now_rfc3339(),
    };
    jobs::write_status(&state.files, JobStatus::queued(&job)).await?;
    let options = EnqueueOptions { durable: true, ..Default::default() };
    if let Err(e) = state.queues.enqueue(CATALOG, &job, options).await {
        // Leave no job that claims to be queued but never will run.
        let mut status = JobStatus::queued(&job);
        status.state = jobs::JobState::Failed;
        status.error = Some("the job could not be queued".into());
        let _ = jobs::write_status(&state.files, status).await;
        return Err(e.into());
    }
    state.metrics.catalog_jobs.get_or_create(&crate::metrics::StatusLabels { status: "queued".into() }).inc();
    tracing::info!(event = "catalog_upload_queued", tenant = %tenant, job_id = %job.job_id, r#type = %job.kind,
        size = job.size, path = %job.path);
    state.wake.catalog.notify_one();
    Ok(job.job_id)
}
