//! Phone numbers and WhatsApp JIDs, normalized to E.164 digits without `+`.

/// `+7 (999) 123-45-67`, `89991234567`, `79991234567@c.us` → `79991234567`.
/// `None` unless the result has 10–15 digits.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let local = raw.split('@').next().unwrap_or("");
    // A JID may carry a device suffix: `79991234567:12@s.whatsapp.net`.
    let local = local.split(':').next().unwrap_or("");
    if local.chars().any(|c| !(c.is_ascii_digit() || " +-().".contains(c))) {
        return None;
    }
    let mut digits: String = local.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 11 && digits.starts_with('8') {
        digits.replace_range(0..1, "7");
    }
    (10..=15).contains(&digits.len()).then_some(digits)
}

/// Whether `raw` is a WhatsApp user JID (`digits@c.us` or `digits@s.whatsapp.net`).
pub fn is_user_jid(raw: &str) -> bool {
    raw.ends_with("@c.us") || raw.ends_with("@s.whatsapp.net")
}

#[cfg(test)]
mod tests {
    use super::normalize_phone;

    #[test]
    fn phones_normalize_to_e164_digits() {
        for (raw, want) in [
            ("+79991234567", Some("79991234567")),
            ("89991234567", Some("79991234567")),
            ("8 (999) 123-45-67", Some("79991234567")),
            ("79991234567@c.us", Some("79991234567")),
            ("79991234567:3@s.whatsapp.net", Some("79991234567")),
            ("+44 20 7946 0958", Some("442079460958")),
            ("9991234567", Some("9991234567")),
            ("12345", None),
            ("1234567890123456", None),
            ("abc", None),
            ("", None),
            ("7999123456x", None),
        ] {
            assert_eq!(normalize_phone(raw).as_deref(), want, "{raw}");
        }
    }
}
