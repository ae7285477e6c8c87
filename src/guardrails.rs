//! Guardrails (SPEC 10): ratios over sliding windows, kept in memory.
//!
//! Each counter is a ring of 10-second buckets; a window's total is the sum of the
//! buckets younger than the window.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

const BUCKET_S: u64 = 10;

#[derive(Default)]
struct Window {
    buckets: Vec<(u64, u64, u64)>, // (bucket start, numerator, denominator)
}

impl Window {
    fn record(&mut self, now_s: u64, hit: bool, keep: Duration) {
        let start = now_s - now_s % BUCKET_S;
        match self.buckets.last_mut() {
            Some(last) if last.0 == start => {
                last.1 += u64::from(hit);
                last.2 += 1;
            }
            _ => self.buckets.push((start, u64::from(hit), 1)),
        }
        let oldest = now_s.saturating_sub(keep.as_secs() + BUCKET_S);
        self.buckets.retain(|b| b.0 >= oldest);
    }

    fn totals(&self, now_s: u64, window: Duration) -> (u64, u64) {
        let from = now_s.saturating_sub(window.as_secs());
        self.buckets.iter().filter(|b| b.0 + BUCKET_S > from).fold((0, 0), |acc, b| (acc.0 + b.1, acc.1 + b.2))
    }
}

/// One guardrail as `/admin/guardrails` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GuardrailReport {
    pub name: &'static str,
    pub channel: Option<&'static str>,
    pub window_s: u64,
    pub hits: u64,
    pub total: u64,
    pub ratio: f64,
    /// Broken when the ratio exceeds this.
    pub max_ratio: f64,
    pub ok: bool,
}

struct Rule {
    name: &'static str,
    channel: Option<&'static str>,
    window: Duration,
    max_ratio: f64,
    counts: Window,
}

pub struct Guardrails {
    rules: Mutex<Vec<Rule>>,
}

impl Default for Guardrails {
    fn default() -> Self {
        Self::new()
    }
}

const SKIP_NO_TEXT: &str = "skip_no_text";
const WEBHOOK_NON_2XX: &str = "webhook_non_2xx";
const TG_NO_PEER: &str = "telegram_no_peer";
const WA_INVALID_FROM: &str = "whatsapp_invalid_from";

impl Guardrails {
    pub fn new() -> Self {
        let rule = |name, channel, minutes: u64, max_ratio| Rule {
            name,
            channel,
            window: Duration::from_secs(minutes * 60),
            max_ratio,
            counts: Window::default(),
        };
        Self {
            rules: Mutex::new(vec![
                rule(SKIP_NO_TEXT, Some("whatsapp"), 15, 0.05),
                rule(SKIP_NO_TEXT, Some("telegram"), 15, 0.05),
                rule(WEBHOOK_NON_2XX, None, 5, 0.01),
                // "≈ 0 %": any such event in the window breaks it.
                rule(TG_NO_PEER, Some("telegram"), 15, 0.0),
                rule(WA_INVALID_FROM, Some("whatsapp"), 15, 0.01),
            ]),
        }
    }

    fn record(&self, name: &str, channel: Option<&str>, hit: bool) {
        let now = crate::domain::now_s().max(0) as u64;
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        for rule in rules.iter_mut().filter(|r| r.name == name && (r.channel.is_none() || r.channel == channel)) {
            let keep = rule.window;
            rule.counts.record(now, hit, keep);
        }
    }

    /// Every webhook answer, by channel.
    pub fn webhook_answered(&self, channel: &str, status: u16) {
        self.record(WEBHOOK_NON_2XX, Some(channel), !(200..300).contains(&status));
    }

    /// Every inbound message event; `skipped_no_text` when it had neither text nor media.
    pub fn message_event(&self, channel: &str, skipped_no_text: bool) {
        self.record(SKIP_NO_TEXT, Some(channel), skipped_no_text);
    }

    /// Every Telegram event; `missing` when it had neither `peer` nor `telegram_user_id`.
    pub fn telegram_sender(&self, missing: bool) {
        self.record(TG_NO_PEER, Some("telegram"), missing);
    }

    /// Every WhatsApp message event; `invalid` without a valid `from`/`from_jid`.
    pub fn whatsapp_sender(&self, invalid: bool) {
        self.record(WA_INVALID_FROM, Some("whatsapp"), invalid);
    }

    pub fn report(&self) -> Vec<GuardrailReport> {
        let now = crate::domain::now_s().max(0) as u64;
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules
            .iter()
            .map(|r| {
                let (hits, total) = r.counts.totals(now, r.window);
                let ratio = if total == 0 { 0.0 } else { hits as f64 / total as f64 };
                GuardrailReport {
                    name: r.name,
                    channel: r.channel,
                    window_s: r.window.as_secs(),
                    hits,
                    total,
                    ratio,
                    max_ratio: r.max_ratio,
                    ok: ratio <= r.max_ratio,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_forgets_old_buckets() {
        let mut w = Window::default();
        w.record(1000, true, Duration::from_secs(60));
        w.record(1005, false, Duration::from_secs(60));
        assert_eq!(w.totals(1005, Duration::from_secs(60)), (1, 2));
        w.record(1200, false, Duration::from_secs(60));
        assert_eq!(w.totals(1200, Duration::from_secs(60)), (0, 1));
    }

    #[test]
    fn ratios_break_their_thresholds() {
        let g = Guardrails::new();
        for _ in 0..99 {
            g.webhook_answered("whatsapp", 200);
        }
        g.webhook_answered("telegram", 401);
        let report = g.report();
        let webhook = report.iter().find(|r| r.name == WEBHOOK_NON_2XX).unwrap();
        assert_eq!((webhook.hits, webhook.total), (1, 100));
        assert!(webhook.ok, "1 % is at the limit");
        g.webhook_answered("telegram", 500);
        assert!(!g.report().iter().find(|r| r.name == WEBHOOK_NON_2XX).unwrap().ok);

        g.telegram_sender(true);
        assert!(!g.report().iter().find(|r| r.name == TG_NO_PEER).unwrap().ok);
        g.message_event("whatsapp", false);
        let skip = g.report().into_iter().find(|r| r.name == SKIP_NO_TEXT && r.channel == Some("whatsapp")).unwrap();
        assert!(skip.ok);
    }
}
