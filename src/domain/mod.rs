//! Pure domain types: ids, phone numbers, messages. No IO happens here.

mod ids;

pub use ids::TenantId;

/// Current UTC time as RFC 3339 text, the format of every stored timestamp.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}
