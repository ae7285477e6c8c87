//! Pure domain types: ids, channels, phone numbers, messages, the whitelist. No IO
//! happens here.

mod channel;
mod ids;
pub mod message;
pub mod phone;
mod whitelist;

pub use channel::Channel;
pub use ids::TenantId;
pub use message::{Attachment, MessageIn, Rejected, Sender, TransportMessage};
pub use whitelist::Whitelist;

/// Current UTC time as RFC 3339 text, the format of every stored timestamp.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// An epoch-seconds timestamp as RFC 3339 text.
pub fn rfc3339(epoch_s: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch_s)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
