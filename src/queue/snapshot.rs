//! Consistent copies of `queues.redb` for backups.
//!
//! redb locks its file against a second process, so a backup cannot simply open the
//! daemon's file. Online, [`Queues::snapshot_to`] copies every table inside one read
//! transaction of the running store (an MVCC snapshot: writers go on meanwhile) into a
//! fresh file. Offline, [`snapshot_file`] does the same from the file on disk.

use std::path::Path;

use redb::{Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, TableHandle};

use super::tables::{COUNTERS, DEAD, DEDUPE, ITEMS, KV, SCHEDULE, STATE};
use super::{QueueError, Queues};

impl Queues {
    /// Writes a consistent copy of the whole store to `dest` (a new file, mode 0600).
    pub async fn snapshot_to(&self, dest: &Path) -> Result<u64, QueueError> {
        let db = self.db.clone();
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            copy_into(&txn, &dest)
        })
        .await
        .map_err(|e| QueueError::Join(e.to_string()))?
    }
}

/// Whether a running process (the daemon) holds the store at `path` open.
pub fn in_use(path: &Path) -> bool {
    matches!(ReadOnlyDatabase::open(path), Err(redb::DatabaseError::DatabaseAlreadyOpen))
}

/// A consistent copy of the store at `src`, which no process may hold open, into
/// `dest`. The source is only read; a file a killed daemon left needing repair is
/// copied and repaired on the side. Returns the number of records copied.
pub fn snapshot_file(src: &Path, dest: &Path) -> Result<u64, QueueError> {
    match ReadOnlyDatabase::open(src) {
        Ok(db) => copy_into(&db.begin_read()?, dest),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(QueueError::Io(std::io::Error::new(
            std::io::ErrorKind::ResourceBusy,
            format!("{} is in use: the daemon is running", src.display()),
        ))),
        Err(redb::DatabaseError::RepairAborted) => {
            let scratch = dest.with_extension("repair");
            crate::store::fsutil::ensure_private_file(&scratch).map_err(QueueError::Io)?;
            std::fs::copy(src, &scratch).map_err(QueueError::Io)?;
            let result = Database::open(&scratch).map_err(QueueError::from).and_then(|db| {
                let txn = db.begin_read()?;
                copy_into(&txn, dest)
            });
            let _ = std::fs::remove_file(&scratch);
            result
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens a store restored from a backup and reads every table once, so a damaged
/// file is refused before it replaces the live one.
pub fn check_file(path: &Path) -> Result<u64, QueueError> {
    let db = ReadOnlyDatabase::open(path)?;
    let txn = db.begin_read()?;
    let mut n_records = 0u64;
    macro_rules! count_table {
        ($definition:expr) => {{
            for entry in txn.open_table($definition)?.iter()? {
                entry?;
                n_records += 1;
            }
        }};
    }
    count_table!(ITEMS);
    count_table!(SCHEDULE);
    count_table!(DEAD);
    count_table!(COUNTERS);
    count_table!(DEDUPE);
    count_table!(KV);
    count_table!(STATE);
    Ok(n_records)
}

/// Copies every table of `tables.rs` visible in `txn` into a new store at `dest`, in
/// one durable transaction.
fn copy_into(txn: &ReadTransaction, dest: &Path) -> Result<u64, QueueError> {
    if dest.exists() {
        return Err(QueueError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", dest.display()),
        )));
    }
    crate::store::fsutil::ensure_private_file(dest).map_err(QueueError::Io)?;
    let target = Database::create(dest)?;
    let write = target.begin_write()?;
    let mut n_records = 0u64;
    // One block per table: redb's typed tables need their key and value types spelled
    // out, and `tables.rs` is the list of every table there is.
    macro_rules! copy_table {
        ($definition:expr) => {{
            let source = txn.open_table($definition)?;
            let mut copy = write.open_table($definition)?;
            for entry in source.iter()? {
                let (key, value) = entry?;
                copy.insert(key.value(), value.value())?;
                n_records += 1;
            }
        }};
    }
    copy_table!(ITEMS);
    copy_table!(SCHEDULE);
    copy_table!(DEAD);
    copy_table!(COUNTERS);
    copy_table!(DEDUPE);
    copy_table!(KV);
    copy_table!(STATE);
    // A table added to `tables.rs` but not above would silently miss from backups.
    const COPIED: [&str; 7] =
        ["queue_items", "queue_schedule", "queue_dead", "counters", "dedupe", "kv", "dialog_state"];
    if let Some(unknown) = txn.list_tables()?.map(|t| t.name().to_string()).find(|n| !COPIED.contains(&n.as_str())) {
        return Err(QueueError::Corrupt(format!("table {unknown} is not copied by queue::snapshot")));
    }
    write.commit()?;
    Ok(n_records)
}
