//! SQL for reading dialogs: a contact's messages across channels, the cabinet's inbox.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use super::{Store, StoreError};
use crate::domain::{Channel, TenantId};

#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    pub id: i64,
    /// `in` or `out`.
    pub direction: String,
    /// `lead`, `bot` or `operator`.
    pub author: String,
    pub channel: String,
    pub text: Option<String>,
    pub attachments: Value,
    pub status: String,
    pub ts: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactRow {
    pub id: i64,
    pub name: Option<String>,
    pub whatsapp_phone: Option<String>,
    pub telegram_user_id: Option<String>,
    pub telegram_username: Option<String>,
    pub avito_user_id: Option<String>,
    pub avito_login: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DialogRow {
    pub contact_id: i64,
    pub channel: String,
    pub peer: Option<String>,
    pub name: Option<String>,
    pub last_message: Option<String>,
    pub last_at: String,
}

impl Store {
    /// The contact's last `limit` messages on every channel, oldest first.
    pub async fn recent_messages(
        &self,
        tenant: TenantId,
        contact_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, direction, author, channel, text, attachments, status, ts FROM messages
                 WHERE tenant = ?1 AND contact_id = ?2 ORDER BY id DESC LIMIT ?3",
            )?;
            let mut rows = stmt
                .query_map(params![tenant.get(), contact_id, limit as i64], |r| {
                    Ok(StoredMessage {
                        id: r.get(0)?,
                        direction: r.get(1)?,
                        author: r.get(2)?,
                        channel: r.get(3)?,
                        text: r.get(4)?,
                        attachments: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or(Value::Array(Vec::new())),
                        status: r.get(6)?,
                        ts: r.get(7)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.reverse();
            Ok(rows)
        })
        .await
    }

    pub async fn contact(&self, tenant: TenantId, contact_id: i64) -> Result<Option<ContactRow>, StoreError> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, name, whatsapp_phone, telegram_user_id, telegram_username, avito_user_id, avito_login,
                            created_at FROM contacts WHERE tenant = ?1 AND id = ?2",
                    params![tenant.get(), contact_id],
                    |r| {
                        Ok(ContactRow {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            whatsapp_phone: r.get(2)?,
                            telegram_user_id: r.get(3)?,
                            telegram_username: r.get(4)?,
                            avito_user_id: r.get(5)?,
                            avito_login: r.get(6)?,
                            created_at: r.get(7)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }

    /// One row per contact with messages, newest conversation first.
    pub async fn dialogs(&self, tenant: TenantId, limit: usize) -> Result<Vec<DialogRow>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT m.contact_id, m.channel, m.peer, c.name, m.text, m.ts FROM messages m
                 JOIN contacts c ON c.id = m.contact_id
                 WHERE m.id IN (SELECT MAX(id) FROM messages WHERE tenant = ?1 AND contact_id IS NOT NULL GROUP BY contact_id)
                 ORDER BY m.id DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![tenant.get(), limit as i64], |r| {
                    Ok(DialogRow {
                        contact_id: r.get(0)?,
                        channel: r.get(1)?,
                        peer: r.get(2)?,
                        name: r.get(3)?,
                        last_message: r.get(4)?,
                        last_at: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// The contact that wrote from `peer` on `channel`.
    pub async fn contact_by_peer(
        &self,
        tenant: TenantId,
        channel: Channel,
        peer: String,
    ) -> Result<Option<i64>, StoreError> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT l.contact_id FROM lead_contacts lc JOIN leads l ON l.id = lc.lead_id
                     WHERE lc.tenant = ?1 AND lc.channel = ?2 AND lc.peer = ?3",
                    params![tenant.get(), channel.as_str(), peer],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    /// Where the contact last wrote from: the channel and peer an operator reply goes to.
    pub async fn last_route(&self, tenant: TenantId, contact_id: i64) -> Result<Option<(Channel, String)>, StoreError> {
        self.run(move |conn| {
            let found: Option<(String, String)> = conn
                .query_row(
                    "SELECT lc.channel, lc.peer FROM lead_contacts lc JOIN leads l ON l.id = lc.lead_id
                     WHERE l.tenant = ?1 AND l.contact_id = ?2 ORDER BY lc.last_seen_at DESC LIMIT 1",
                    params![tenant.get(), contact_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(found.and_then(|(channel, peer)| Channel::parse(&channel).map(|c| (c, peer))))
        })
        .await
    }
}
