//! Every redb table, declared in one place.

use redb::{Database, TableDefinition};

use super::QueueError;

/// `(queue, item id)` → item JSON (attempts, visible_at, payload).
pub const ITEMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue_items");
/// `(queue, visible_at ms, item id)`: the order consumers lease in.
pub const SCHEDULE: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("queue_schedule");
/// `(queue, item id)` → item JSON with its last error.
pub const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue_dead");
/// Monotonic counters (item ids).
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// Dedupe key → expiry (ms).
pub const DEDUPE: TableDefinition<&str, u64> = TableDefinition::new("dedupe");
/// Cache key → (expiry ms, 0 = never; value).
pub const KV: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("kv");
/// Dialog state key → JSON.
pub const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("dialog_state");

/// Creates every table so read transactions never meet a missing one.
pub fn create_all(db: &Database) -> Result<(), QueueError> {
    let txn = db.begin_write()?;
    txn.open_table(ITEMS)?;
    txn.open_table(SCHEDULE)?;
    txn.open_table(DEAD)?;
    txn.open_table(COUNTERS)?;
    txn.open_table(DEDUPE)?;
    txn.open_table(KV)?;
    txn.open_table(STATE)?;
    txn.commit()?;
    Ok(())
}
