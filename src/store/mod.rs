//! Storage: the SQLite database (`avio.db`) and the per-tenant files.
//!
//! This is the only module that issues SQL. rusqlite is synchronous, so every call
//! runs on the blocking pool through [`Store::run`].

mod dialogs;
pub mod fsutil;
mod messages;
mod migrations;
mod outbox_recent;
pub mod snapshot;
pub mod tenant_files;
mod tenants;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

pub use dialogs::{ContactRow, DialogRow, StoredMessage};
pub use messages::{DeliveryUpdate, IngestOutcome, LeadRef, OutboundRecord, OutboxJobRow, resolve_or_create_contact};
pub use migrations::{MIGRATIONS, SchemaReport};
pub use outbox_recent::RecentOutboxJob;
pub use tenant_files::{TenantDoc, TenantFiles};
pub use tenants::{ProviderTokenRow, TenantKeyRow, TenantRow};

/// Outcomes a caller branches on; everything else is `Sqlite`/`Io`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tenant already exists")]
    TenantExists,
    #[error("tenant not found")]
    TenantNotFound,
    #[error("the tenant already has a key")]
    KeyAlreadyExists,
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("blocking task failed: {0}")]
    Join(String),
}

/// A cheap handle to the SQLite database.
#[derive(Clone)]
pub struct Store {
    // One connection: SQLite serializes writers anyway, and WAL keeps each commit
    // cheap. A mutex poisoned by a panicking closure is recovered, not propagated.
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        fsutil::ensure_private_file(path)?;
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        // An upgrade's migrations run on a copy kept in DATA_DIR/backups first.
        snapshot::before_migrations(&conn, path)?;
        migrations::apply(&mut conn)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), path: Arc::new(path.to_path_buf()) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Proves the database accepts writes (used by `GET /health`).
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        self.run(|conn| {
            conn.execute(
                "INSERT INTO health_probe (id, at) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET at = excluded.at",
                [crate::domain::now_rfc3339()],
            )?;
            Ok(())
        })
        .await
    }

    /// A consistent copy of the live database at `dest` (SQLite's online backup API).
    /// It reads through a connection of its own, so the daemon's connection stays free;
    /// one step over every page is one WAL read snapshot, which writers do not block
    /// and cannot restart.
    pub async fn backup_to(&self, dest: PathBuf) -> Result<(), StoreError> {
        use rusqlite::backup::{Backup, StepResult};
        let source = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let from = Connection::open_with_flags(&*source, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            fsutil::ensure_private_file(&dest)?;
            let mut to = Connection::open(&dest)?;
            let backup = Backup::new(&from, &mut to)?;
            let mut pause = std::time::Duration::from_millis(5);
            for _ in 0..120 {
                if let StepResult::Done = backup.step(-1)? {
                    return Ok(());
                }
                // Busy or locked (a checkpoint holding the lock for a moment): again shortly.
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(500));
            }
            Err(StoreError::Io(std::io::Error::other("the database stayed locked during the backup")))
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }
}

/// WAL with `synchronous=NORMAL`: commits are atomic and survive a process crash;
/// the inbox's durability promise is kept by redb, not by SQLite.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Opens the database for `avioctl migrate`: applies migrations and reports the schema.
pub fn migrate_and_report(path: &Path) -> Result<SchemaReport, StoreError> {
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    snapshot::before_migrations(&conn, path)?;
    let applied = migrations::apply(&mut conn)?;
    migrations::report(&conn, applied)
}
