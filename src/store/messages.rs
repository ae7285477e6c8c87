//! SQL for the message pipeline: contacts, leads, lead_contacts, messages,
//! webhook_events and outbox jobs.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::Value;

use super::{Store, StoreError};
use crate::domain::phone::normalize_phone;
use crate::domain::{Channel, MessageIn, Sender, TenantId, now_rfc3339, rfc3339};

/// What storing an inbound message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    pub contact_id: i64,
    pub lead_id: i64,
    /// The `messages` row; `None` when the message was stored before (a redelivery).
    pub message_row: Option<i64>,
    pub new_contact: bool,
}

/// Where an outbound message goes, resolved to the lead it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadRef {
    pub lead_id: i64,
    pub contact_id: i64,
    pub peer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxJobRow {
    pub job_id: String,
    pub tenant: TenantId,
    pub channel: String,
    pub recipient: String,
    pub payload: Value,
    pub status: String,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// An outbound message as the dialog shows it.
#[derive(Debug, Clone)]
pub struct OutboundRecord {
    pub tenant: TenantId,
    pub job_id: String,
    pub lead: Option<LeadRef>,
    pub channel: Channel,
    pub text: Option<String>,
    pub attachments: Value,
    /// `bot` or `operator`.
    pub author: &'static str,
    pub status: String,
    pub error: Option<String>,
    pub provider_message_id: Option<String>,
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// Identity columns in SPEC 5.2's match order.
fn identities(sender: &Sender) -> [(&'static str, Option<&str>); 4] {
    [
        ("whatsapp_phone", sender.whatsapp_phone.as_deref()),
        ("avito_user_id", sender.avito_user_id.as_deref()),
        ("avito_login", sender.avito_login.as_deref()),
        ("telegram_user_id", sender.telegram_user_id.as_deref()),
    ]
}

/// Finds the tenant's contact by the first identity that matches (SPEC 5.2 order), or
/// creates one; links identifiers the contact lacks. An identifier owned by another
/// contact is left there: merging people silently is worse than a duplicate.
///
/// A sender with no identity column (an Avito chat without a user id, the simulator)
/// is found by the channel peer it wrote from before.
pub fn resolve_or_create_contact(
    tx: &Transaction<'_>,
    tenant: TenantId,
    sender: &Sender,
    channel: Channel,
    peer: &str,
) -> Result<(i64, bool), StoreError> {
    let mut found = None;
    for (column, value) in identities(sender) {
        let Some(value) = value else { continue };
        let sql = format!("SELECT id FROM contacts WHERE tenant = ?1 AND {column} = ?2 ORDER BY id LIMIT 1");
        if let Some(id) = tx.query_row(&sql, params![tenant.get(), value], |r| r.get::<_, i64>(0)).optional()? {
            found = Some(id);
            break;
        }
    }
    if found.is_none() {
        found = tx
            .query_row(
                "SELECT l.contact_id FROM lead_contacts lc JOIN leads l ON l.id = lc.lead_id
                 WHERE lc.tenant = ?1 AND lc.channel = ?2 AND lc.peer = ?3",
                params![tenant.get(), channel.as_str(), peer],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
    }
    let now = now_rfc3339();
    let extra = [("telegram_username", sender.telegram_username.as_deref()), ("name", sender.name.as_deref())];
    match found {
        Some(id) => {
            for (column, value) in identities(sender).into_iter().chain(extra) {
                let Some(value) = value else { continue };
                let sql =
                    format!("UPDATE contacts SET {column} = ?2, updated_at = ?3 WHERE id = ?1 AND {column} IS NULL");
                match tx.execute(&sql, params![id, value, now]) {
                    Err(e) if is_unique_violation(&e) => {
                        tracing::warn!(event = "contact_link_skipped", tenant = %tenant, contact = id, field = column,
                            reason = "owned_by_another_contact");
                    }
                    other => {
                        other?;
                    }
                }
            }
            Ok((id, false))
        }
        None => {
            tx.execute(
                "INSERT INTO contacts (tenant, name, whatsapp_phone, avito_user_id, avito_login, telegram_user_id,
                                       telegram_username, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    tenant.get(),
                    sender.name,
                    sender.whatsapp_phone,
                    sender.avito_user_id,
                    sender.avito_login,
                    sender.telegram_user_id,
                    sender.telegram_username,
                    now
                ],
            )?;
            Ok((tx.last_insert_rowid(), true))
        }
    }
}

fn upsert_lead(
    tx: &Transaction<'_>,
    tenant: TenantId,
    contact_id: i64,
    channel: Channel,
    at: &str,
) -> Result<i64, StoreError> {
    Ok(tx.query_row(
        "INSERT INTO leads (tenant, contact_id, channel, created_at, updated_at, last_message_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?4)
         ON CONFLICT(tenant, contact_id) DO UPDATE SET updated_at = excluded.updated_at,
             last_message_at = excluded.last_message_at
         RETURNING id",
        params![tenant.get(), contact_id, channel.as_str(), at],
        |r| r.get(0),
    )?)
}

fn upsert_lead_contact(
    tx: &Transaction<'_>,
    tenant: TenantId,
    lead_id: i64,
    channel: Channel,
    peer: &str,
    at: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO lead_contacts (lead_id, tenant, channel, peer, created_at, last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT(tenant, channel, peer) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        params![lead_id, tenant.get(), channel.as_str(), peer, at],
    )?;
    Ok(())
}

impl Store {
    /// Stores an inbound message idempotently in one transaction: the webhook event,
    /// the contact (SPEC 5.2), the lead and its channel peer, and the message.
    pub async fn ingest(&self, msg: MessageIn) -> Result<IngestOutcome, StoreError> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let now = now_rfc3339();
            let payload = serde_json::to_string(&msg)?;
            tx.execute(
                "INSERT INTO webhook_events (tenant, channel, event, message_id, payload, received_at)
                 VALUES (?1, ?2, 'messages.incoming', ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![msg.tenant.get(), msg.channel.as_str(), msg.message_id, payload, now],
            )?;
            let (contact_id, new_contact) =
                resolve_or_create_contact(&tx, msg.tenant, &msg.sender, msg.channel, &msg.peer)?;
            let lead_id = upsert_lead(&tx, msg.tenant, contact_id, msg.channel, &now)?;
            upsert_lead_contact(&tx, msg.tenant, lead_id, msg.channel, &msg.peer, &now)?;
            let (direction, author) = if msg.from_me { ("out", "operator") } else { ("in", "lead") };
            let inserted = tx.execute(
                "INSERT INTO messages (tenant, contact_id, lead_id, direction, author, channel, peer, text, attachments,
                                       provider_message_id, status, ts, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
                params![
                    msg.tenant.get(),
                    contact_id,
                    lead_id,
                    direction,
                    author,
                    msg.channel.as_str(),
                    msg.peer,
                    msg.text,
                    serde_json::to_string(&msg.attachments)?,
                    msg.message_id,
                    if msg.from_me { "sent" } else { "received" },
                    rfc3339(msg.ts),
                    now
                ],
            )?;
            let message_row = (inserted > 0).then(|| tx.last_insert_rowid());
            tx.commit()?;
            Ok(IngestOutcome { contact_id, lead_id, message_row, new_contact })
        })
        .await
    }

    /// The lead an outbound recipient belongs to, if Avio has heard from it before.
    pub async fn find_lead(
        &self,
        tenant: TenantId,
        channel: Channel,
        to: String,
    ) -> Result<Option<LeadRef>, StoreError> {
        self.run(move |conn| find_lead_in(conn, tenant, channel, &to)).await
    }

    /// The peer a contact is reached at on `channel` (most recently seen).
    pub async fn contact_peer(
        &self,
        tenant: TenantId,
        contact_id: i64,
        channel: Channel,
    ) -> Result<Option<String>, StoreError> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT lc.peer FROM lead_contacts lc JOIN leads l ON l.id = lc.lead_id
                     WHERE l.tenant = ?1 AND l.contact_id = ?2 AND lc.channel = ?3 ORDER BY lc.last_seen_at DESC LIMIT 1",
                    params![tenant.get(), contact_id, channel.as_str()],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    /// A submitted send in one transaction: its job row, and its message row in the
    /// dialog of the lead `to` belongs to (`record` builds it from that lead).
    pub async fn record_submitted<F>(&self, job: OutboxJobRow, channel: Channel, record: F) -> Result<(), StoreError>
    where
        F: FnOnce(Option<LeadRef>) -> OutboundRecord + Send + 'static,
    {
        self.run(move |conn| {
            let txn = conn.transaction()?;
            insert_outbox_job_in(&txn, &job)?;
            let lead = find_lead_in(&txn, job.tenant, channel, &job.recipient)?;
            record_outbound_in(&txn, record(lead))?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn update_outbox_job(
        &self,
        job_id: String,
        status: &'static str,
        error: Option<String>,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE outbox_jobs SET status = ?2, error = ?3, attempts = ?4, updated_at = ?5 WHERE job_id = ?1",
                params![job_id, status, error, attempts, now_rfc3339()],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn outbox_job(&self, job_id: String) -> Result<Option<OutboxJobRow>, StoreError> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT job_id, tenant, channel, recipient, payload, status, error, attempts, created_at, updated_at
                     FROM outbox_jobs WHERE job_id = ?1",
                    [job_id],
                    |r| {
                        Ok(OutboxJobRow {
                            job_id: r.get(0)?,
                            tenant: TenantId::new(r.get(1)?).unwrap_or(TenantId::new(1).expect("1 is a valid id")),
                            channel: r.get(2)?,
                            recipient: r.get(3)?,
                            payload: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or(Value::Null),
                            status: r.get(5)?,
                            error: r.get(6)?,
                            attempts: r.get(7)?,
                            created_at: r.get(8)?,
                            updated_at: r.get(9)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }

    /// Inserts or updates the dialog's copy of an outbound message (keyed by job).
    pub async fn record_outbound(&self, rec: OutboundRecord) -> Result<(), StoreError> {
        self.run(move |conn| record_outbound_in(conn, rec)).await
    }

    /// A delivery ack (`delivered`, `read`, `failed`) for a message Avio sent.
    /// `Unknown` when no sent message carries that provider id (yet).
    pub async fn set_delivery_status(
        &self,
        tenant: TenantId,
        channel: Channel,
        provider_id: String,
        status: String,
    ) -> Result<DeliveryUpdate, StoreError> {
        self.run(move |conn| {
            // Acks can arrive out of order: "delivered" never overwrites "read".
            let changed = conn.execute(
                "UPDATE messages SET status = ?4 WHERE tenant = ?1 AND channel = ?2 AND provider_message_id = ?3
                 AND direction = 'out' AND NOT (status = 'read' AND ?4 IN ('sent', 'delivered'))
                 AND NOT (status = 'delivered' AND ?4 = 'sent')",
                params![tenant.get(), channel.as_str(), provider_id, status],
            )?;
            if changed > 0 {
                return Ok(DeliveryUpdate::Applied);
            }
            // Nothing changed: a stale ack for a known message, or one not recorded yet.
            let known = conn
                .query_row(
                    "SELECT 1 FROM messages WHERE tenant = ?1 AND channel = ?2 AND provider_message_id = ?3
                     AND direction = 'out'",
                    params![tenant.get(), channel.as_str(), provider_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            Ok(if known { DeliveryUpdate::Applied } else { DeliveryUpdate::Unknown })
        })
        .await
    }

    /// Whether a message the account wrote is an echo of what Avio sent: its provider id
    /// is one of ours, or (the echo can beat the send's result) Avio sent the same text
    /// to the same peer in the last ten minutes. Otherwise a person wrote it elsewhere.
    pub async fn is_own_echo(
        &self,
        tenant: TenantId,
        channel: Channel,
        provider_id: String,
        peer: String,
        text: Option<String>,
    ) -> Result<bool, StoreError> {
        let since = rfc3339(time::OffsetDateTime::now_utc().unix_timestamp() - 600);
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM messages WHERE tenant = ?1 AND channel = ?2 AND outbox_job_id IS NOT NULL
                     AND (provider_message_id = ?3
                          OR (peer = ?4 AND created_at >= ?5 AND ?6 IS NOT NULL AND ?6 <> ''
                              AND instr(text, ?6) > 0))
                     LIMIT 1",
                    params![tenant.get(), channel.as_str(), provider_id, peer, since, text],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    /// Counts stored inbound messages with this provider id (tests and diagnostics).
    pub async fn count_messages(
        &self,
        tenant: TenantId,
        channel: Channel,
        provider_id: String,
    ) -> Result<i64, StoreError> {
        self.run(move |conn| {
            Ok(conn.query_row(
                "SELECT COUNT(*) FROM messages WHERE tenant = ?1 AND channel = ?2 AND provider_message_id = ?3",
                params![tenant.get(), channel.as_str(), provider_id],
                |r| r.get(0),
            )?)
        })
        .await
    }
}

fn find_lead_in(
    conn: &Connection,
    tenant: TenantId,
    channel: Channel,
    to: &str,
) -> Result<Option<LeadRef>, StoreError> {
    let mut candidates = vec![to.trim().trim_start_matches('@').to_string()];
    if let Some(phone) = normalize_phone(to) {
        candidates.insert(0, phone);
    }
    for peer in &candidates {
        let found = conn
            .query_row(
                "SELECT lc.lead_id, l.contact_id, lc.peer FROM lead_contacts lc JOIN leads l ON l.id = lc.lead_id
                 WHERE lc.tenant = ?1 AND lc.channel = ?2 AND lc.peer = ?3",
                params![tenant.get(), channel.as_str(), peer],
                |r| Ok(LeadRef { lead_id: r.get(0)?, contact_id: r.get(1)?, peer: r.get(2)? }),
            )
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    // Telegram: a username the contact is known by.
    if channel == Channel::Telegram {
        let username = to.trim().trim_start_matches('@').to_string();
        let found = conn
            .query_row(
                "SELECT l.id, c.id, COALESCE(c.telegram_user_id, c.telegram_username) FROM contacts c
                 JOIN leads l ON l.contact_id = c.id
                 WHERE c.tenant = ?1 AND lower(c.telegram_username) = lower(?2)",
                params![tenant.get(), username],
                |r| Ok(LeadRef { lead_id: r.get(0)?, contact_id: r.get(1)?, peer: r.get(2)? }),
            )
            .optional()?;
        return Ok(found);
    }
    Ok(None)
}

fn insert_outbox_job_in(conn: &Connection, job: &OutboxJobRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO outbox_jobs (job_id, tenant, channel, recipient, payload, status, error, attempts,
                                  created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT(job_id) DO NOTHING",
        params![
            job.job_id,
            job.tenant.get(),
            job.channel,
            job.recipient,
            job.payload.to_string(),
            job.status,
            job.error,
            job.attempts,
            job.created_at
        ],
    )?;
    Ok(())
}

fn record_outbound_in(conn: &Connection, rec: OutboundRecord) -> Result<(), StoreError> {
    let now = now_rfc3339();
    let updated = conn.execute(
        "UPDATE messages SET status = ?2, error = ?3, provider_message_id = COALESCE(?4, provider_message_id)
         WHERE outbox_job_id = ?1",
        params![rec.job_id, rec.status, rec.error, rec.provider_message_id],
    )?;
    if updated > 0 {
        return Ok(());
    }
    let (contact_id, lead_id, peer) = match &rec.lead {
        Some(l) => (Some(l.contact_id), Some(l.lead_id), Some(l.peer.clone())),
        None => (None, None, None),
    };
    let insert = conn.execute(
        "INSERT INTO messages (tenant, contact_id, lead_id, direction, author, channel, peer, text, attachments,
                               provider_message_id, status, error, outbox_job_id, ts, created_at)
         VALUES (?1, ?2, ?3, 'out', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
        params![
            rec.tenant.get(),
            contact_id,
            lead_id,
            rec.author,
            rec.channel.as_str(),
            peer,
            rec.text,
            rec.attachments.to_string(),
            rec.provider_message_id,
            rec.status,
            rec.error,
            rec.job_id,
            now
        ],
    );
    match insert {
        // The provider id is known from an echo stored first; keep that row.
        Err(e) if is_unique_violation(&e) => Ok(()),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// What a delivery ack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryUpdate {
    Applied,
    Unknown,
}
