//! The WhatsApp QR cache of SPEC 5.1 (`wa:qr:{tenant}:{qr_id}:svg` and
//! `wa:qr:last:{tenant}`, at least 180 s), shared by the `qr` webhook and the
//! in-process WhatsApp sessions; `/pub/wa/qr.svg` reads it. Also an external
//! provider's last `ready` event, which a new QR or a logout forgets.

use std::time::Duration;

use serde_json::{Value, json};

use crate::domain::{TenantId, now_s};
use crate::queue::{QueueError, Queues};

/// SPEC 5.1: the QR is cached for at least 180 s.
pub const QR_TTL: Duration = Duration::from_secs(180);

pub fn qr_key(tenant: TenantId, qr_id: &str) -> String {
    format!("wa:qr:{tenant}:{qr_id}:svg")
}

pub fn qr_last_key(tenant: TenantId) -> String {
    format!("wa:qr:last:{tenant}")
}

/// Stores a QR under its id and as the tenant's latest.
pub async fn cache(queues: &Queues, tenant: TenantId, qr_id: &str, svg: &str) -> Result<(), QueueError> {
    queues.kv_set(&qr_key(tenant, qr_id), svg.as_bytes(), Some(QR_TTL)).await?;
    let last = json!({"qr_id": qr_id, "svg": svg, "ts": now_s()});
    queues.kv_set(&qr_last_key(tenant), last.to_string().as_bytes(), Some(QR_TTL)).await
}

/// Forgets the tenant's latest QR (the session is ready or gone).
pub async fn clear(queues: &Queues, tenant: TenantId) -> Result<(), QueueError> {
    queues.kv_delete(&qr_last_key(tenant)).await
}

/// An external provider's last `ready` event for the tenant (SPEC 5.1).
fn ready_key(tenant: TenantId) -> String {
    format!("wa:ready:{tenant}")
}

pub async fn remember_ready(queues: &Queues, tenant: TenantId, ready: &Value) -> Result<(), QueueError> {
    queues.kv_set(&ready_key(tenant), ready.to_string().as_bytes(), None).await
}

pub async fn forget_ready(queues: &Queues, tenant: TenantId) -> Result<(), QueueError> {
    queues.kv_delete(&ready_key(tenant)).await
}

/// That `ready` event while it still says `ready`.
pub async fn external_ready(queues: &Queues, tenant: TenantId) -> Result<Option<Value>, QueueError> {
    let Some(bytes) = queues.kv_get(&ready_key(tenant)).await? else { return Ok(None) };
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((value.get("state").and_then(Value::as_str) == Some("ready")).then_some(value))
}
