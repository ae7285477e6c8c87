//! Consistent copies of `avio.db`: the automatic snapshot before migrations run, and
//! the offline copy `avioctl backup` takes while the daemon is stopped.
//!
//! Every copy is made with `VACUUM INTO` (a transactionally consistent, compacted single
//! file) into a file created empty with mode 0600 first: the database holds tenant
//! keys and provider tokens, and SQLite would create a new file world-readable.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{StoreError, fsutil, migrations};

/// Where pre-migration snapshots go, next to the database: `DATA_DIR/backups/`.
pub const BACKUPS_DIR: &str = "backups";

/// Copies `avio.db` to `backups/avio.db.pre-v{N}.{timestamp}` when migrations up to
/// version N are about to run on a database that already holds data. A fresh (empty)
/// database and an up-to-date one are left alone. Returns the snapshot's path.
pub fn before_migrations(conn: &Connection, db_path: &Path) -> Result<Option<PathBuf>, StoreError> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let latest = latest_version();
    if current >= latest {
        return Ok(None);
    }
    let n_objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
    if n_objects == 0 {
        return Ok(None);
    }
    let dir = ensure_backups_dir(db_path.parent().unwrap_or(Path::new(".")))?;
    let name = db_path.file_name().and_then(|n| n.to_str()).unwrap_or("avio.db");
    let dest = dir.join(format!("{name}.pre-v{latest}.{}", compact_timestamp()));
    vacuum_into(conn, &dest)?;
    same_owner_as(&dir, &dest)?;
    tracing::info!(event = "pre_migration_snapshot", from_version = current, to_version = latest, path = %dest.display());
    Ok(Some(dest))
}

/// `DATA_DIR/backups` (0700), owned like `DATA_DIR`: root running `avioctl` must not
/// leave a directory the daemon's user cannot write its next snapshot into.
pub fn ensure_backups_dir(data_dir: &Path) -> Result<PathBuf, StoreError> {
    let dir = data_dir.join(BACKUPS_DIR);
    fsutil::ensure_private_dir(&dir)?;
    same_owner_as(data_dir, &dir)?;
    Ok(dir)
}

/// Gives `path` the owner of `reference` when they differ (only root can, and only
/// root creates them differently).
fn same_owner_as(reference: &Path, path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let (want, have) = (std::fs::metadata(reference)?, std::fs::metadata(path)?);
    if (want.uid(), want.gid()) != (have.uid(), have.gid()) {
        std::os::unix::fs::chown(path, Some(want.uid()), Some(want.gid()))?;
    }
    Ok(())
}

/// The schema version this binary migrates to.
pub fn latest_version() -> u32 {
    migrations::MIGRATIONS.iter().map(|(version, _, _)| *version).max().unwrap_or(0)
}

/// A consistent copy of the database at `src` into `dest`, for a database no process
/// has open (the daemon is stopped). The live files are only read: they are copied
/// (with the write-ahead log, which may hold the last commits of a killed daemon) into
/// a scratch directory next to `dest`, and the copy is vacuumed into `dest`. Returns
/// the copy's schema version.
pub fn snapshot_file(src: &Path, dest: &Path) -> Result<u32, StoreError> {
    let scratch = dest.with_extension(format!("scratch-{}", crate::secrets::token(8)));
    fsutil::ensure_private_dir(&scratch)?;
    let result = (|| {
        let copy = scratch.join("avio.db");
        copy_private(src, &copy)?;
        let wal = append_to_name(src, "-wal");
        if wal.exists() {
            copy_private(&wal, &append_to_name(&copy, "-wal"))?;
        }
        let conn = Connection::open(&copy)?;
        let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        vacuum_into(&conn, dest)?;
        Ok(version)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The schema version (`user_version`) of a database file, read without changing it.
pub fn schema_version(path: &Path) -> Result<u32, StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// Checks a database file restored from a backup (`PRAGMA quick_check`) and returns
/// its schema version.
pub fn check_file(path: &Path) -> Result<u32, StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if verdict != "ok" {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {verdict}", path.display()),
        )));
    }
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// `VACUUM INTO` a file created empty with mode 0600 (SQLite accepts an empty target).
pub(super) fn vacuum_into(conn: &Connection, dest: &Path) -> Result<(), StoreError> {
    if dest.exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", dest.display()),
        )));
    }
    fsutil::ensure_private_file(dest)?;
    conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()])?;
    Ok(())
}

fn copy_private(src: &Path, dest: &Path) -> Result<(), StoreError> {
    fsutil::ensure_private_file(dest)?;
    std::fs::copy(src, dest)?;
    Ok(())
}

fn append_to_name(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `20250131T235959Z`: sorts by time and is safe in a file name.
pub fn compact_timestamp() -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_else(|_| "0".into())
}
