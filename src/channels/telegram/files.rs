//! Session files in `TG_SESSIONS_DIR`: `<ID>.session` (0600) guarded by `<ID>.lock`, so
//! two processes never drive one Telegram key (that ends in `AUTH_KEY_DUPLICATED`).
//! A dead session is archived (renamed), never silently deleted; only logout removes it.
//! `<ID>.alerts.json` (0600) keeps what the operator must still see after a restart:
//! the session-gone failure and the last `PEER_FLOOD`.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::TenantId;
use crate::store::fsutil;

pub fn session_path(dir: &Path, tenant: TenantId) -> PathBuf {
    dir.join(format!("{tenant}.session"))
}

pub fn lock_path(dir: &Path, tenant: TenantId) -> PathBuf {
    dir.join(format!("{tenant}.lock"))
}

pub fn alerts_path(dir: &Path, tenant: TenantId) -> PathBuf {
    dir.join(format!("{tenant}.alerts.json"))
}

/// The session died at Telegram (`session_revoked`…): kept until a new login or logout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub reason: String,
    /// Epoch seconds.
    pub at: i64,
}

/// The contents of `<ID>.alerts.json`; no file when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alerts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Failure>,
    /// Epoch seconds of the last `PEER_FLOOD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_flood_at: Option<i64>,
}

impl Alerts {
    pub fn is_empty(&self) -> bool {
        self.failed.is_none() && self.peer_flood_at.is_none()
    }
}

/// Reads the tenant's alerts; none when the file is missing. A file that does not
/// parse is an `InvalidData` error.
pub fn read_alerts(dir: &Path, tenant: TenantId) -> io::Result<Alerts> {
    match fs::read(alerts_path(dir, tenant)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Alerts::default()),
        Err(e) => Err(e),
    }
}

/// Writes the alerts atomically (0600), or removes the file when there are none.
pub fn write_alerts(dir: &Path, tenant: TenantId, alerts: &Alerts) -> io::Result<()> {
    let path = alerts_path(dir, tenant);
    if alerts.is_empty() {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let bytes = serde_json::to_vec_pretty(alerts).map_err(io::Error::other)?;
    fsutil::write_private(&path, &bytes)
}

/// An exclusive `flock` on `<ID>.lock`, held while the tenant's account is open and
/// released on drop (or by the kernel when the process dies, so a crash never leaves
/// a stale lock behind).
#[derive(Debug)]
pub struct SessionLock {
    // Holding the descriptor holds the lock.
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the session is in use by another process")]
    Busy,
    #[error("lock file: {0}")]
    Io(#[from] io::Error),
}

impl SessionLock {
    pub fn acquire(dir: &Path, tenant: TenantId) -> Result<SessionLock, LockError> {
        fsutil::ensure_private_dir(dir)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(lock_path(dir, tenant))?;
        match file.try_lock() {
            Ok(()) => Ok(SessionLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy),
            Err(TryLockError::Error(e)) => Err(LockError::Io(e)),
        }
    }
}

/// Renames `<ID>.session` to `<ID>.session.<reason>-<epoch>`; `None` when there was none.
pub fn archive(dir: &Path, tenant: TenantId, reason: &str, now_s: i64) -> io::Result<Option<PathBuf>> {
    let from = session_path(dir, tenant);
    if !from.exists() {
        return Ok(None);
    }
    let reason: String = reason
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    let mut to = dir.join(format!("{tenant}.session.{reason}-{now_s}"));
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("{tenant}.session.{reason}-{now_s}.{n}"));
        n += 1;
    }
    fs::rename(&from, &to)?;
    Ok(Some(to))
}

/// Deletes the session file (explicit logout only).
pub fn remove(dir: &Path, tenant: TenantId) -> io::Result<()> {
    match fs::remove_file(session_path(dir, tenant)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Tenants with a session file, for the restore at start.
pub fn list_tenants(dir: &Path) -> io::Result<Vec<TenantId>> {
    list_with_suffix(dir, ".session")
}

/// Tenants with an alerts file, for the restore at start.
pub fn list_alerts(dir: &Path) -> io::Result<Vec<TenantId>> {
    list_with_suffix(dir, ".alerts.json")
}

fn list_with_suffix(dir: &Path, suffix: &str) -> io::Result<Vec<TenantId>> {
    let mut tenants = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(tenants),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        if let Some(tenant) = name.to_str().and_then(|n| n.strip_suffix(suffix)).and_then(TenantId::parse) {
            tenants.push(tenant);
        }
    }
    tenants.sort();
    Ok(tenants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(n: i64) -> TenantId {
        TenantId::new(n).unwrap()
    }

    #[test]
    fn a_second_lock_on_one_session_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = SessionLock::acquire(dir.path(), tenant(3)).unwrap();
        assert!(matches!(SessionLock::acquire(dir.path(), tenant(3)), Err(LockError::Busy)));
        assert!(SessionLock::acquire(dir.path(), tenant(4)).is_ok(), "other tenants are independent");
        drop(first);
        assert!(SessionLock::acquire(dir.path(), tenant(3)).is_ok());
        assert_eq!(fsutil::mode(&lock_path(dir.path(), tenant(3))).unwrap(), 0o600);
    }

    #[test]
    fn archiving_renames_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(archive(dir.path(), tenant(5), "x", 1).unwrap(), None);
        fsutil::write_private(&session_path(dir.path(), tenant(5)), b"one").unwrap();
        let first = archive(dir.path(), tenant(5), "SESSION_REVOKED", 100).unwrap().unwrap();
        assert!(first.ends_with("5.session.session_revoked-100"));
        fsutil::write_private(&session_path(dir.path(), tenant(5)), b"two").unwrap();
        let second = archive(dir.path(), tenant(5), "session_revoked", 100).unwrap().unwrap();
        assert_ne!(first, second);
        assert_eq!(fs::read(&first).unwrap(), b"one");
        assert_eq!(fs::read(&second).unwrap(), b"two");
        assert!(!session_path(dir.path(), tenant(5)).exists());
        assert_eq!(list_tenants(dir.path()).unwrap(), Vec::<TenantId>::new(), "archives are not restored");
    }

    #[test]
    fn restore_lists_only_live_session_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["7.session", "12.session", "7.lock", "x.session", "3.session.session_revoked-1"] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(list_tenants(dir.path()).unwrap(), vec![tenant(7), tenant(12)]);
    }

    #[test]
    fn alerts_round_trip_as_a_private_file_and_vanish_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_alerts(dir.path(), tenant(7)).unwrap(), Alerts::default());
        let alerts = Alerts {
            failed: Some(Failure { reason: "session_revoked".into(), at: 1_700_000_000 }),
            peer_flood_at: Some(1_700_000_100),
        };
        write_alerts(dir.path(), tenant(7), &alerts).unwrap();
        assert_eq!(read_alerts(dir.path(), tenant(7)).unwrap(), alerts);
        assert_eq!(fsutil::mode(&alerts_path(dir.path(), tenant(7))).unwrap(), 0o600);
        assert_eq!(list_alerts(dir.path()).unwrap(), vec![tenant(7)]);
        assert_eq!(list_tenants(dir.path()).unwrap(), Vec::<TenantId>::new(), "alerts are not sessions");

        write_alerts(dir.path(), tenant(7), &Alerts::default()).unwrap();
        assert!(!alerts_path(dir.path(), tenant(7)).exists());
        write_alerts(dir.path(), tenant(7), &Alerts::default()).unwrap();

        fs::write(alerts_path(dir.path(), tenant(8)), b"{not json").unwrap();
        assert_eq!(read_alerts(dir.path(), tenant(8)).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
