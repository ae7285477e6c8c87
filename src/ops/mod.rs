//! Operations for `avioctl`: backup archives and their restore ([`backup`]) and the
//! health report of an installation ([`diag`]).
//!
//! These run in the operator's process, next to (not inside) the daemon: they read
//! `DATA_DIR` directly and talk to the daemon through [`crate::client::AdminClient`].
//! SQL and redb stay in `store/` and `queue/`, which offer the snapshot functions used
//! here.

pub mod backup;
pub mod diag;

use std::path::PathBuf;

/// Where an installation keeps its state, as `avioctl` sees it (env file + environment).
#[derive(Debug, Clone)]
pub struct Layout {
    pub data_dir: PathBuf,
    /// `TG_SESSIONS_DIR`; `DATA_DIR/tg_sessions` unless configured elsewhere.
    pub tg_sessions_dir: PathBuf,
}

impl Layout {
    /// From variables as `Config` reads them (empty counts as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Layout {
        let set = |key: &str| get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let data_dir = PathBuf::from(set("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let tg_sessions_dir = set("TG_SESSIONS_DIR").map(PathBuf::from).unwrap_or_else(|| data_dir.join("tg_sessions"));
        Layout { data_dir, tg_sessions_dir }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("avio.db")
    }

    pub fn queues_path(&self) -> PathBuf {
        self.data_dir.join("queues.redb")
    }
}
