//! Typed ids, so a contact id is never passed where a tenant id belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A tenant (an agency's client). Positive integers, as in the original system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(i64);

impl TenantId {
    /// Accepts positive ids only; `None` otherwise.
    pub fn new(raw: i64) -> Option<Self> {
        (raw > 0).then_some(Self(raw))
    }
    pub fn get(self) -> i64 {
        self.0
    }
    /// Parses a query-string value such as `?tenant=7`.
    pub fn parse(text: &str) -> Option<Self> {
        text.trim().parse::<i64>().ok().and_then(Self::new)
    }
    /// Reads a tenant from a JSON value that is an integer or an integer string.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::Number(n) => n.as_i64().and_then(Self::new),
            serde_json::Value::String(s) => Self::parse(s),
            _ => None,
        }
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_positive_integers() {
        assert_eq!(TenantId::parse("7").map(TenantId::get), Some(7));
        assert_eq!(TenantId::parse(" 12 ").map(TenantId::get), Some(12));
        for bad in ["", "0", "-1", "abc", "1.5", "7x"] {
            assert!(TenantId::parse(bad).is_none(), "{bad}");
        }
        assert!(TenantId::from_json(&serde_json::json!(3)).is_some());
        assert!(TenantId::from_json(&serde_json::json!("3")).is_some());
        assert!(TenantId::from_json(&serde_json::json!(1.5)).is_none());
        assert!(TenantId::from_json(&serde_json::json!(null)).is_none());
    }
}
