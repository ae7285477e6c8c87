//! `OUTBOX_WHITELIST`: who may receive messages (SPEC 5.4). Empty blocks every send;
//! `*` allows all. Entries and recipients are compared after normalization.

use super::Channel;
use super::phone::normalize_phone;

#[derive(Debug, Clone, Default)]
pub struct Whitelist {
    all: bool,
    entries: Vec<String>,
}

/// Canonical form of a recipient or entry: phone digits when it is a phone or JID,
/// otherwise a Telegram id or lowercased username without `@`.
fn canonical(raw: &str) -> String {
    let raw = raw.trim();
    if let Some(phone) = normalize_phone(raw) {
        return phone;
    }
    raw.trim_start_matches('@').to_ascii_lowercase()
}

impl Whitelist {
    pub fn new(entries: &[String]) -> Self {
        Self {
            all: entries.iter().any(|e| e.trim() == "*"),
            entries: entries.iter().filter(|e| e.trim() != "*").map(|e| canonical(e)).collect(),
        }
    }

    pub fn allows(&self, channel: Channel, to: &str) -> bool {
        if self.all || channel == Channel::Simulator {
            return true;
        }
        let to = match channel {
            // WhatsApp recipients must be phones or JIDs.
            Channel::Whatsapp => match normalize_phone(to) {
                Some(phone) => phone,
                None => return false,
            },
            _ => canonical(to),
        };
        self.entries.contains(&to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wl(s: &str) -> Whitelist {
        Whitelist::new(&s.split([',', ' ']).filter(|p| !p.is_empty()).map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn empty_blocks_everything_and_star_allows_everything() {
        assert!(!wl("").allows(Channel::Telegram, "me"));
        assert!(wl("*").allows(Channel::Whatsapp, "79991234567"));
    }

    #[test]
    fn entries_match_after_normalization() {
        let list = wl("+79991234567, @Bob_Shop 1564614169 me");
        for to in ["79991234567", "+79991234567", "89991234567", "79991234567@c.us"] {
            assert!(list.allows(Channel::Whatsapp, to), "{to}");
        }
        assert!(list.allows(Channel::Telegram, "bob_shop"));
        assert!(list.allows(Channel::Telegram, "@bob_shop"));
        assert!(list.allows(Channel::Telegram, "1564614169"));
        assert!(list.allows(Channel::Telegram, "me"));
        assert!(!list.allows(Channel::Telegram, "alice"));
        assert!(!list.allows(Channel::Whatsapp, "79990000000"));
        assert!(!list.allows(Channel::Whatsapp, "bob_shop"));
        assert!(wl("79991234567@c.us").allows(Channel::Whatsapp, "+7 999 123-45-67"));
    }
}
