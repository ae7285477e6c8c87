//! `POST /admin/backup`: consistent copies of both databases for `avioctl backup`,
//! taken while the daemon runs. The tar.zst itself is built by `avioctl` (it also
//! reads the tenant files), so the daemon never holds a whole archive in memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Admin;
use crate::store::fsutil;
use crate::store::snapshot::{compact_timestamp, ensure_backups_dir};

/// Snapshot directories start with this; `avioctl` removes its own when done.
pub const SNAPSHOT_PREFIX: &str = "snapshot-";

/// A snapshot left behind by an interrupted `avioctl backup` is removed after a day.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Writes `DATA_DIR/backups/snapshot-<time>-<random>/{avio.db,queues.redb}` (0600 files
/// in a 0700 directory) and answers its name.
pub async fn snapshot(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let name = format!("{SNAPSHOT_PREFIX}{}-{}", compact_timestamp(), crate::secrets::token(6));
    let dir = {
        let (data_dir, name) = (state.config.data_dir.clone(), name.clone());
        tokio::task::spawn_blocking(move || -> Result<PathBuf, crate::store::StoreError> {
            let backups = ensure_backups_dir(&data_dir)?;
            remove_stale_snapshots(&backups);
            let dir = backups.join(name);
            fsutil::ensure_private_dir(&dir)?;
            Ok(dir)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
    };
    state.store.backup_to(dir.join("avio.db")).await?;
    let n_records = state.queues.snapshot_to(&dir.join("queues.redb")).await?;
    let absolute = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
    tracing::info!(event = "backup_snapshot", name = %name, queue_records = n_records);
    Ok(Json(json!({
        "ok": true,
        "name": name,
        "dir": absolute,
        "files": ["avio.db", "queues.redb"],
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

fn remove_stale_snapshots(backups: &Path) {
    let Ok(entries) = std::fs::read_dir(backups) else { return };
    let now = SystemTime::now();
    let stale: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(SNAPSHOT_PREFIX))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| now.duration_since(at).unwrap_or_default() > STALE_AFTER)
        })
        .map(|e| e.path())
        .collect();
    for path in stale {
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(event = "backup_snapshot_cleanup_failed", path = %path.display(), error = %e);
        }
    }
}
