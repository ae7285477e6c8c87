//! Recent outbox jobs by status, newest first: the admin panel's "send failures" list.
//! Read-only; the outbox worker owns every write to `outbox_jobs`.

use rusqlite::params_from_iter;
use serde::Serialize;
use serde_json::Value;

use super::{Store, StoreError};
use crate::domain::TenantId;

/// One job as the admin panel lists it; the payload is reduced to its text.
#[derive(Debug, Clone, Serialize)]
pub struct RecentOutboxJob {
    pub job_id: String,
    pub tenant: i64,
    pub channel: String,
    pub recipient: String,
    pub status: String,
    pub error: Option<String>,
    pub attempts: i64,
    /// The message text, cut to [`TEXT_PREVIEW_CHARS`].
    pub text: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Enough of a message to recognise it in a list.
pub const TEXT_PREVIEW_CHARS: usize = 160;

impl Store {
    /// Jobs whose status is one of `statuses` (all when empty), optionally of one
    /// tenant, most recently updated first.
    pub async fn recent_outbox_jobs(
        &self,
        statuses: Vec<String>,
        tenant: Option<TenantId>,
        limit: usize,
    ) -> Result<Vec<RecentOutboxJob>, StoreError> {
        self.run(move |conn| {
            let mut sql = String::from(
                "SELECT job_id, tenant, channel, recipient, payload, status, error, attempts, created_at, updated_at
                 FROM outbox_jobs WHERE 1 = 1",
            );
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if !statuses.is_empty() {
                let marks = vec!["?"; statuses.len()].join(", ");
                sql.push_str(&format!(" AND status IN ({marks})"));
                args.extend(statuses.into_iter().map(rusqlite::types::Value::Text));
            }
            if let Some(tenant) = tenant {
                sql.push_str(" AND tenant = ?");
                args.push(rusqlite::types::Value::Integer(tenant.get()));
            }
            sql.push_str(" ORDER BY updated_at DESC, rowid DESC LIMIT ?");
            args.push(rusqlite::types::Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), |r| {
                let payload: String = r.get(4)?;
                Ok(RecentOutboxJob {
                    job_id: r.get(0)?,
                    tenant: r.get(1)?,
                    channel: r.get(2)?,
                    recipient: r.get(3)?,
                    status: r.get(5)?,
                    error: r.get(6)?,
                    attempts: r.get(7)?,
                    text: payload_text(&payload),
                    created_at: r.get(8)?,
                    updated_at: r.get(9)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// The text of a stored outbox payload (`{message: {text}}` or `{text}`), shortened.
fn payload_text(payload: &str) -> Option<String> {
    let value: Value = serde_json::from_str(payload).ok()?;
    let text = value.pointer("/message/text").or_else(|| value.get("text")).and_then(Value::as_str)?;
    let mut short: String = text.chars().take(TEXT_PREVIEW_CHARS).collect();
    if text.chars().count() > TEXT_PREVIEW_CHARS {
        short.push('…');
    }
    Some(short)
}
