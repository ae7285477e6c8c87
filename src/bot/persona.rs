//! Personas (SPEC 7.1): the embedded default or the tenant's `persona.md`, rendered with
//! the brand passport's placeholders. Read from disk on every use, so a save takes
//! effect on the next message without a restart.

use std::path::PathBuf;

use serde_json::Value;

use crate::domain::{Channel, TenantId};
use crate::store::{StoreError, TenantDoc, TenantFiles, fsutil};

pub const DEFAULT_PERSONA: &str = include_str!("../../assets/persona_default_ru.md");

/// Every placeholder a persona may use.
pub const PLACEHOLDERS: &[&str] =
    &["{AGENT_NAME}", "{BRAND}", "{CITY}", "{CHANNEL}", "{WHATSAPP_LINK}", "{CATALOG_URL}", "{CURRENCY}"];

/// Longest persona accepted (characters); a system prompt beyond this costs more
/// than it helps.
pub const MAX_PERSONA_CHARS: usize = 20_000;

pub fn persona_path(files: &TenantFiles, tenant: TenantId) -> PathBuf {
    files.dir(tenant).join("persona.md")
}

/// The tenant's persona text and whether it is the default.
pub async fn load(files: &TenantFiles, tenant: TenantId) -> Result<(String, bool), StoreError> {
    let path = persona_path(files, tenant);
    match tokio::fs::read_to_string(&path).await {
        Ok(text) if !text.trim().is_empty() => Ok((text, false)),
        Ok(_) => Ok((DEFAULT_PERSONA.to_string(), true)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((DEFAULT_PERSONA.to_string(), true)),
        Err(e) => Err(e.into()),
    }
}

/// Saves the tenant's override (0600); `None` goes back to the default.
pub async fn save(files: &TenantFiles, tenant: TenantId, text: Option<String>) -> Result<(), StoreError> {
    let path = persona_path(files, tenant);
    tokio::task::spawn_blocking(move || match text {
        Some(text) => fsutil::write_private(&path, text.as_bytes()),
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    })
    .await
    .map_err(|e| StoreError::Join(e.to_string()))??;
    Ok(())
}

fn field<'a>(map: &'a serde_json::Map<String, Value>, keys: &[&str]) -> &'a str {
    keys.iter().find_map(|k| map.get(*k).and_then(Value::as_str)).unwrap_or("")
}

/// Fills the placeholders: passport (`{AGENT_NAME}`, `{BRAND}`, `{CITY}`), the
/// dialog's channel (`{CHANNEL}`, WhatsApp when unknown), settings links (empty when
/// unset), and `{CURRENCY}` = ₽.
pub fn render(template: &str, doc: &TenantDoc, channel: Option<Channel>) -> String {
    let brand = match field(&doc.passport, &["brand"]) {
        "" => doc.name.as_str(),
        brand => brand,
    };
    let agent = match field(&doc.passport, &["agent_name"]) {
        "" => "Анна",
        agent => agent,
    };
    template
        .replace("{AGENT_NAME}", agent)
        .replace("{BRAND}", brand)
        .replace("{CITY}", field(&doc.passport, &["city"]))
        .replace("{CHANNEL}", channel.map_or("WhatsApp", Channel::display_name))
        .replace("{WHATSAPP_LINK}", field(&doc.settings, &["whatsapp_link"]))
        .replace("{CATALOG_URL}", field(&doc.settings, &["catalog_url"]))
        .replace("{CURRENCY}", "₽")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> TenantDoc {
        serde_json::from_value(json!({"id": 1, "name": "Shop",
            "passport": {"brand": "Уютный дом", "agent_name": "Мария", "city": "Казань"},
            "settings": {"whatsapp_link": "https://wa.me/79990001122"}}))
        .unwrap()
    }

    #[test]
    fn the_default_persona_uses_every_placeholder() {
        for placeholder in PLACEHOLDERS {
            assert!(DEFAULT_PERSONA.contains(placeholder), "{placeholder} missing from the default persona");
        }
    }

    #[test]
    fn rendering_leaves_no_placeholder() {
        let text = render(DEFAULT_PERSONA, &doc(), Some(Channel::Telegram));
        assert!(!text.contains('{'), "{text}");
        assert!(text.contains("Мария") && text.contains("«Уютный дом»") && text.contains("Казань"));
        assert!(text.contains("в Telegram"));
        assert!(text.contains("https://wa.me/79990001122"));
        assert!(text.contains("в ₽"));
    }

    #[test]
    fn unset_links_are_empty_and_the_channel_falls_back_to_whatsapp() {
        let text = render("{CHANNEL}|{CATALOG_URL}|{CURRENCY}", &doc(), None);
        assert_eq!(text, "WhatsApp||₽");
    }
}
