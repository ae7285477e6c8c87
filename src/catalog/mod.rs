//! Catalog uploads (SPEC 8): receiving a price list, the conversion job and its
//! status, the current catalog's preview. The parsing itself lives in the pure
//! `avio-catalog` crate; this module does the files, the queue and the bookkeeping.
//!
//! Layout under `tenants/<ID>/`: `uploads/<safe_name>.<ext>` (the received file),
//! `catalog_jobs/<job_id>/status.json`, `catalogs/<base_name>.csv` (the normalized
//! CSV), and `tenant.json → integrations.uploaded_catalog` pointing at the current one.

pub mod jobs;
pub mod names;
pub mod upload;
pub mod worker;

use std::path::Path;

use avio_catalog::{Conversion, SourceKind};
use serde::Serialize;

use crate::app::AppState;
use crate::domain::TenantId;
use crate::store::StoreError;

/// Called after a job wrote a tenant's new catalog CSV and recorded it in tenant.json.
/// The bot rebuilds its search index here; for now it only announces the catalog.
pub async fn on_catalog_ready(state: &AppState, tenant: TenantId, csv_path: &Path) -> anyhow::Result<()> {
    tracing::info!(event = "catalog_ready", tenant = %tenant, csv = %csv_path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    // The bot's search index is derived from the catalog: rebuild it now, and record
    // where and when in `uploaded_catalog.index`.
    state.bot.catalog_ready(state, tenant).await;
    Ok(())
}

/// Converts a local file offline (`avioctl catalog convert`), choosing the converter by
/// extension and running under the same limits as the daemon.
pub fn convert_file(path: &Path) -> anyhow::Result<Conversion> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let kind = SourceKind::from_extension(ext).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: unsupported file type {:?} (expected .pdf, .csv, .xlsx, .xls or .ods)",
            path.display(),
            if ext.is_empty() { "(none)".to_string() } else { format!(".{ext}") }
        )
    })?;
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
    avio_catalog::convert(&bytes, kind, &worker::limits()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The first rows of the tenant's current catalog CSV, for the cabinet.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub total_rows: usize,
}

/// `None` when the tenant has no converted catalog (or its CSV is gone).
pub async fn preview(state: &AppState, tenant: TenantId, limit: usize) -> Result<Option<Preview>, StoreError> {
    let doc = state.tenants.get(tenant).await?;
    let Some(csv_relative) =
        doc.integrations.get("uploaded_catalog").and_then(|c| c.get("csv_path")).and_then(|p| p.as_str())
    else {
        return Ok(None);
    };
    let Some(csv_path) = jobs::resolve_inside(&state.files, tenant, jobs::CATALOGS_DIR, csv_relative) else {
        return Ok(None);
    };
    jobs::blocking(move || {
        let file = match std::fs::File::open(&csv_path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(std::io::BufReader::new(file));
        let header = reader.headers().map_err(csv_error)?.iter().map(str::to_string).collect();
        let mut rows = Vec::new();
        let mut total_rows = 0;
        for record in reader.records() {
            let record = record.map_err(csv_error)?;
            if rows.len() < limit {
                rows.push(record.iter().map(str::to_string).collect());
            }
            total_rows += 1;
        }
        Ok(Some(Preview { header, rows, total_rows }))
    })
    .await
}

fn csv_error(e: csv::Error) -> StoreError {
    StoreError::Io(std::io::Error::other(e.to_string()))
}
