//! Catalog jobs on disk: the queue payload and `catalog_jobs/<job_id>/status.json`, the
//! record the cabinet polls while a job moves `queued → running → done | failed`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{TenantId, now_rfc3339};
use crate::store::{StoreError, TenantFiles, fsutil};

/// Folder names under `tenants/<ID>/` (SPEC 1).
pub const UPLOADS_DIR: &str = "uploads";
pub const CATALOGS_DIR: &str = "catalogs";
pub const JOBS_DIR: &str = "catalog_jobs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
}

/// What the queue item carries: everything the worker needs, so a job survives even
/// when its status.json is lost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogJob {
    pub job_id: String,
    pub tenant: TenantId,
    /// The stored upload, relative to the tenant folder (`uploads/<safe_name>.<ext>`).
    pub path: String,
    pub original: String,
    /// The safe stem; the CSV is written as `catalogs/<base_name>.csv`.
    pub base_name: String,
    /// The extension, which decides the converter.
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub mime: String,
    pub uploaded_at: String,
}

/// `status.json`. Paths are relative to the tenant folder, so a restored backup in
/// another `DATA_DIR` still points at its files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobStatus {
    pub job_id: String,
    pub tenant: TenantId,
    pub state: JobState,
    pub original: String,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub mime: String,
    /// Product rows written; set when done.
    pub rows: Option<usize>,
    pub warnings: Vec<String>,
    /// Why the job failed, in words a person can act on.
    pub error: Option<String>,
    pub pipeline: Option<String>,
    pub csv_path: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
}

impl JobStatus {
    pub fn queued(job: &CatalogJob) -> JobStatus {
        JobStatus {
            job_id: job.job_id.clone(),
            tenant: job.tenant,
            state: JobState::Queued,
            original: job.original.clone(),
            path: job.path.clone(),
            kind: job.kind.clone(),
            size: job.size,
            mime: job.mime.clone(),
            rows: None,
            warnings: Vec::new(),
            error: None,
            pipeline: None,
            csv_path: None,
            created_at: job.uploaded_at.clone(),
            started_at: None,
            finished_at: None,
            updated_at: job.uploaded_at.clone(),
        }
    }
}

pub fn status_path(files: &TenantFiles, tenant: TenantId, job_id: &str) -> PathBuf {
    files.dir(tenant).join(JOBS_DIR).join(job_id).join("status.json")
}

/// Reads a job's status; `None` when the tenant has no such job. `job_id` must already
/// be a canonical UUID (the caller parses it), so it cannot name another folder.
pub async fn read_status(files: &TenantFiles, tenant: TenantId, job_id: &str) -> Result<Option<JobStatus>, StoreError> {
    let path = status_path(files, tenant, job_id);
    blocking(move || match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    })
    .await
}

/// Writes a status atomically (0600 in 0700 folders), stamping `updated_at`.
pub async fn write_status(files: &TenantFiles, mut status: JobStatus) -> Result<JobStatus, StoreError> {
    status.updated_at = now_rfc3339();
    let path = status_path(files, status.tenant, &status.job_id);
    let bytes = serde_json::to_vec_pretty(&status)?;
    blocking(move || Ok(fsutil::write_private(&path, &bytes)?)).await?;
    Ok(status)
}

/// A path stored relative to the tenant folder, resolved only when it stays inside
/// `subdir` (tenant.json can be edited by hand; a `..` there must not reach elsewhere).
pub fn resolve_inside(files: &TenantFiles, tenant: TenantId, subdir: &str, relative: &str) -> Option<PathBuf> {
    let relative = Path::new(relative);
    let mut parts = relative.components();
    let first = parts.next()?;
    let safe = first.as_os_str() == subdir
        && parts.clone().count() >= 1
        && parts.all(|part| matches!(part, std::path::Component::Normal(_)));
    safe.then(|| files.dir(tenant).join(relative))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Join(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_resolve_only_inside_their_folder() {
        let files = TenantFiles::new(Path::new("data"));
        let tenant = TenantId::new(3).unwrap();
        assert_eq!(
            resolve_inside(&files, tenant, CATALOGS_DIR, "catalogs/price.csv"),
            Some(PathBuf::from("data/tenants/3/catalogs/price.csv"))
        );
        for bad in ["catalogs/../tenant.json", "../4/catalogs/a.csv", "/etc/passwd", "catalogs", "uploads/a.csv", ""] {
            assert_eq!(resolve_inside(&files, tenant, CATALOGS_DIR, bad), None, "{bad}");
        }
    }
}
