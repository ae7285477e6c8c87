//! Logs: one line per event, `event=<name> key=value …`, or JSON with `LOG_FORMAT=json`.
//!
//! Call sites name the event in an `event` field
//! (`tracing::info!(event = "webhook_received", ch = "whatsapp", tenant = 1)`).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the process-wide subscriber (binaries only; tests opt in with `TEST_LOG=1`).
pub fn init(format: LogFormat) {
    // headless_chrome reports its own internals (each navigation, each drop) at info.
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info,headless_chrome=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.event_format(KeyValue).try_init(),
    };
}

/// `2026-11-25T10:00:00Z INFO event=name key=value msg="…"`.
struct KeyValue;

impl<S, N> FormatEvent<S, N> for KeyValue
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let now = time::OffsetDateTime::now_utc();
        let ts = now
            .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
            .unwrap_or(now)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        write!(writer, "{ts} {:<5}", event.metadata().level())?;
        let mut visitor = Pairs::default();
        event.record(&mut visitor);
        if let Some(name) = &visitor.event {
            write!(writer, " event={name}")?;
        }
        writer.write_str(&visitor.pairs)?;
        if let Some(message) = &visitor.message {
            write!(writer, " msg={}", quote(message))?;
        }
        writeln!(writer)
    }
}

#[derive(Default)]
struct Pairs {
    event: Option<String>,
    message: Option<String>,
    pairs: String,
}

impl Pairs {
    fn push(&mut self, field: &Field, value: String) {
        match field.name() {
            "event" => self.event = Some(value),
            "message" => self.message = Some(value),
            name => {
                let _ = write!(self.pairs, " {name}={}", quote(&value));
            }
        }
    }
}

impl Visit for Pairs {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}

/// Quotes a value only when it would break `key=value` parsing.
fn quote(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(super::quote("whatsapp"), "whatsapp");
        assert_eq!(super::quote("two words"), "\"two words\"");
        assert_eq!(super::quote(""), "\"\"");
    }
}
