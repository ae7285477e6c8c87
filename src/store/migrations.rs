//! Numbered, forward-only schema migrations, embedded in the binary and tracked by
//! SQLite's `user_version`.

use rusqlite::Connection;

use super::StoreError;

/// `(version, name, sql)`, in order. Append only; never edit a released migration.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[(1, "init", include_str!("../../migrations/0001_init.sql"))];

/// Applies pending migrations, each in its own transaction; returns the versions applied.
pub fn apply(conn: &mut Connection) -> Result<Vec<u32>, StoreError> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let mut applied = Vec::new();
    for &(version, _name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        applied.push(version);
    }
    Ok(applied)
}

/// What `avioctl migrate` prints.
#[derive(Debug)]
pub struct SchemaReport {
    pub version: u32,
    pub applied: Vec<u32>,
    pub tables: Vec<String>,
    pub contacts_columns: Vec<String>,
}

pub fn report(conn: &Connection, applied: Vec<u32>) -> Result<SchemaReport, StoreError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let tables = stmt.query_map([], |row| row.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('contacts') ORDER BY cid")?;
    let contacts_columns = stmt.query_map([], |row| row.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(SchemaReport { version, applied, tables, contacts_columns })
}
