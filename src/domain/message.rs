//! `MessageIn` (inbound, SPEC 5.1) and `TransportMessage` (outbound, SPEC 5.4), parsed
//! and validated from provider JSON. Pure: no IO.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::phone::normalize_phone;
use super::{Channel, TenantId};

/// A file attached to a message: by URL (webhooks, outbox) or a local file the
/// channel downloaded (in-process sessions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Path relative to the tenant folder, for media saved by a channel session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Who wrote an inbound message, as every channel identifies people.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    pub whatsapp_phone: Option<String>,
    pub telegram_user_id: Option<String>,
    pub telegram_username: Option<String>,
    pub avito_user_id: Option<String>,
    pub avito_login: Option<String>,
    pub name: Option<String>,
}

/// A message that reached Avio, from a webhook or an in-process session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageIn {
    pub tenant: TenantId,
    pub channel: Channel,
    pub provider: String,
    pub message_id: String,
    /// How the channel addresses the lead (`lead_contacts.peer`): phone digits on
    /// WhatsApp, the user id (or username) on Telegram, the chat id on Avito.
    pub peer: String,
    pub sender: Sender,
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// UTC epoch seconds.
    pub ts: i64,
    /// Sent by the account itself (from the phone or another app), not by the lead.
    #[serde(default)]
    pub from_me: bool,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Channel-specific extras kept for later (e.g. Avito `item_id`).
    #[serde(default)]
    pub meta: Value,
}

impl MessageIn {
    /// The dedupe key of SPEC 5.1: `(tenant, channel, message_id)`.
    pub fn dedupe_key(&self) -> String {
        format!("in:{}:{}:{}", self.tenant, self.channel, self.message_id)
    }

    pub fn has_content(&self) -> bool {
        self.text.as_deref().is_some_and(|t| !t.trim().is_empty()) || !self.attachments.is_empty()
    }
}

/// Why a provider event was refused; becomes the 422 `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub &'static str);

fn str_field<'a>(body: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| body.get(*k).and_then(Value::as_str)).map(str::trim).filter(|s| !s.is_empty())
}

/// A string or integer field as text (`"123"` or `123`).
fn id_field(body: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match body.get(*k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    })
}

/// `ts` as epoch seconds (number or numeric string) or ISO-8601 (UTC when no offset).
pub fn parse_ts(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).filter(|s| *s > 0),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<f64>() {
                return (n > 0.0).then_some(n as i64);
            }
            use time::format_description::well_known::{Iso8601, Rfc3339};
            if let Ok(dt) = time::OffsetDateTime::parse(s, &Rfc3339) {
                return Some(dt.unix_timestamp());
            }
            if let Ok(dt) = time::OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
                return Some(dt.unix_timestamp());
            }
            time::PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).ok().map(|dt| dt.assume_utc().unix_timestamp())
        }
        _ => None,
    }
}

fn attachments(body: &Value) -> Result<Vec<Attachment>, Rejected> {
    let mut out = Vec::new();
    for key in ["media", "attachments"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let mut a: Attachment =
                        serde_json::from_value(item.clone()).map_err(|_| Rejected("invalid_attachment"))?;
                    if a.mime.is_none() {
                        a.mime = str_field(item, &["mime_type", "mimetype"]).map(str::to_string);
                    }
                    if a.kind.is_empty() {
                        a.kind = "file".into();
                    }
                    out.push(a);
                }
            }
            Some(_) => return Err(Rejected("invalid_attachment")),
        }
    }
    Ok(out)
}

fn text(body: &Value) -> Result<Option<String>, Rejected> {
    match body.get("text") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Rejected("invalid_text")),
    }
}

/// A stable id for a message that came without one, so a redelivery still dedupes.
fn derived_id(parts: &[&str]) -> String {
    // FNV-1a: stable across builds, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("auto-{hash:016x}")
}

impl MessageIn {
    /// `POST /webhook` `messages.incoming` (WhatsApp).
    pub fn from_whatsapp_event(tenant: TenantId, body: &Value, now: i64) -> Result<MessageIn, Rejected> {
        match str_field(body, &["channel"]) {
            Some("whatsapp") => {}
            Some(_) => return Err(Rejected("invalid_channel")),
            None => return Err(Rejected("missing_channel")),
        }
        let from_me = body.get("from_me").or_else(|| body.get("fromMe")).and_then(Value::as_bool).unwrap_or(false);
        // For the account's own messages the lead is the other side of the chat.
        let candidates: &[&str] =
            if from_me { &["to", "to_jid", "chat_id", "from", "from_jid"] } else { &["from", "from_jid"] };
        let mut present = false;
        let mut phone = None;
        for key in candidates {
            if let Some(raw) = id_field(body, &[key]) {
                present = true;
                if let Some(p) = normalize_phone(&raw) {
                    phone = Some(p);
                    break;
                }
            }
        }
        let phone = phone.ok_or(if present { Rejected("invalid_from") } else { Rejected("missing_from") })?;
        let text = text(body)?;
        let attachments = attachments(body)?;
        let ts = match body.get("ts") {
            None | Some(Value::Null) => now,
            Some(v) => parse_ts(v).ok_or(Rejected("invalid_ts"))?,
        };
        let message_id = id_field(body, &["message_id", "id"])
            .unwrap_or_else(|| derived_id(&[&phone, &ts.to_string(), text.as_deref().unwrap_or("")]));
        let msg = MessageIn {
            tenant,
            channel: Channel::Whatsapp,
            provider: str_field(body, &["provider"]).unwrap_or("whatsapp").to_string(),
            message_id,
            peer: phone.clone(),
            sender: Sender {
                whatsapp_phone: Some(phone),
                name: str_field(body, &["name", "push_name", "pushname", "notify"]).map(str::to_string),
                ..Sender::default()
            },
            text,
            attachments,
            ts,
            from_me,
            reply_to: None,
            meta: body.get("meta").cloned().unwrap_or(Value::Null),
        };
        if !msg.has_content() {
            return Err(Rejected("no_text_or_media"));
        }
        Ok(msg)
    }

    /// `POST /webhook/telegram`.
    pub fn from_telegram_event(tenant: TenantId, body: &Value) -> Result<MessageIn, Rejected> {
        match str_field(body, &["channel"]) {
            Some("telegram") => {}
            Some(_) => return Err(Rejected("invalid_channel")),
            None => return Err(Rejected("missing_channel")),
        }
        let message_id = id_field(body, &["message_id"]).ok_or(Rejected("missing_message_id"))?;
        let ts = parse_ts(body.get("ts").unwrap_or(&Value::Null)).ok_or(Rejected("invalid_ts"))?;
        let user_id = id_field(body, &["telegram_user_id", "user_id"]);
        let username = str_field(body, &["username"]).map(|u| u.trim_start_matches('@').to_string());
        let peer = id_field(body, &["peer", "peer_id"])
            .or_else(|| user_id.clone())
            .or_else(|| username.clone())
            .ok_or(Rejected("missing_peer"))?;
        let phone = str_field(body, &["phone"]).and_then(normalize_phone);
        let reply_to =
            body.get("meta").and_then(|m| id_field(m, &["reply_to"])).or_else(|| id_field(body, &["reply_to"]));
        let msg = MessageIn {
            tenant,
            channel: Channel::Telegram,
            provider: str_field(body, &["provider"]).unwrap_or("telegram").to_string(),
            message_id,
            peer,
            sender: Sender {
                whatsapp_phone: phone,
                telegram_user_id: user_id,
                telegram_username: username,
                name: str_field(body, &["name", "first_name"]).map(str::to_string),
                ..Sender::default()
            },
            text: text(body)?,
            attachments: attachments(body)?,
            ts,
            from_me: body.get("outgoing").or_else(|| body.get("from_me")).and_then(Value::as_bool).unwrap_or(false),
            reply_to,
            meta: body.get("meta").cloned().unwrap_or(Value::Null),
        };
        if !msg.has_content() {
            return Err(Rejected("no_text_or_media"));
        }
        Ok(msg)
    }
}

/// An outbound message (`POST /send`, bot replies, operator replies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransportMessage {
    pub tenant: TenantId,
    pub channel: Channel,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// The parts of a `/send` body the guards need before the whole body is validated.
pub fn peek_recipient(body: &Value) -> Result<(Channel, String), Rejected> {
    let channel = match str_field(body, &["channel"]).map(Channel::parse) {
        Some(Some(c)) if c != Channel::Simulator => c,
        Some(_) => return Err(Rejected("invalid_channel")),
        None => return Err(Rejected("missing_channel")),
    };
    let to = id_field(body, &["to"]).ok_or(Rejected("missing_to"))?;
    Ok((channel, to))
}

impl TransportMessage {
    pub fn parse(body: &Value) -> Result<TransportMessage, Rejected> {
        let tenant = body.get("tenant").and_then(TenantId::from_json).ok_or(Rejected("invalid_tenant"))?;
        let (channel, to) = peek_recipient(body)?;
        let text = text(body)?.filter(|t| !t.trim().is_empty());
        let attachments = attachments(body)?;
        if attachments
            .iter()
            .any(|a| a.url.as_deref().is_none_or(|u| !(u.starts_with("http://") || u.starts_with("https://"))))
        {
            return Err(Rejected("attachment_url_required"));
        }
        if text.is_none() && attachments.is_empty() {
            return Err(Rejected("text_or_attachments_required"));
        }
        let reply_to = body.get("meta").and_then(|m| id_field(m, &["reply_to"]));
        Ok(TransportMessage { tenant, channel, to, text, attachments, reply_to })
    }

    /// The text to send: `text`, else the first attachment caption (SPEC 5.4).
    pub fn effective_text(&self) -> Option<String> {
        self.text.clone().or_else(|| self.attachments.iter().find_map(|a| a.caption.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t() -> TenantId {
        TenantId::new(1).unwrap()
    }

    #[test]
    fn timestamps_accept_epoch_seconds_and_iso_8601() {
        assert_eq!(parse_ts(&json!(1715683200)), Some(1715683200));
        assert_eq!(parse_ts(&json!("1715683200")), Some(1715683200));
        assert_eq!(parse_ts(&json!(1715683200.5)), Some(1715683200));
        assert_eq!(parse_ts(&json!("2024-05-14T10:40:00Z")), Some(1715683200));
        assert_eq!(parse_ts(&json!("2024-05-14T13:40:00+03:00")), Some(1715683200));
        assert_eq!(parse_ts(&json!("2024-05-14T10:40:00")), Some(1715683200));
        assert_eq!(parse_ts(&json!("yesterday")), None);
        assert_eq!(parse_ts(&json!(-5)), None);
    }

    #[test]
    fn whatsapp_senders_normalize_from_number_or_jid() {
        let body = json!({"event": "messages.incoming", "channel": "whatsapp", "message_id": "w1",
                          "from": "89991234567", "text": "Привет", "ts": 1715683200});
        let msg = MessageIn::from_whatsapp_event(t(), &body, 0).unwrap();
        assert_eq!(msg.peer, "79991234567");
        assert_eq!(msg.sender.whatsapp_phone.as_deref(), Some("79991234567"));
        let body = json!({"channel": "whatsapp", "message_id": "w2", "from_jid": "79991234567@c.us", "text": "x"});
        assert_eq!(MessageIn::from_whatsapp_event(t(), &body, 5).unwrap().peer, "79991234567");
    }

    #[test]
    fn whatsapp_media_only_messages_are_valid() {
        let body = json!({"channel": "whatsapp", "message_id": "w3", "from": "79991234567",
                          "media": [{"type": "image", "mime_type": "image/jpeg", "url": "https://e.org/1"}]});
        let msg = MessageIn::from_whatsapp_event(t(), &body, 1).unwrap();
        assert_eq!(msg.attachments[0].mime.as_deref(), Some("image/jpeg"));
        assert_eq!(msg.text, None);
    }

    #[test]
    fn whatsapp_schema_errors_have_reasons() {
        let cases = [
            (json!({"channel": "telegram", "from": "79991234567", "text": "x"}), "invalid_channel"),
            (json!({"from": "79991234567", "text": "x"}), "missing_channel"),
            (json!({"channel": "whatsapp", "text": "x"}), "missing_from"),
            (json!({"channel": "whatsapp", "from": "12", "text": "x"}), "invalid_from"),
            (json!({"channel": "whatsapp", "from": "79991234567"}), "no_text_or_media"),
            (json!({"channel": "whatsapp", "from": "79991234567", "text": "x", "ts": "soon"}), "invalid_ts"),
            (json!({"channel": "whatsapp", "from": "79991234567", "text": 5}), "invalid_text"),
        ];
        for (body, reason) in cases {
            assert_eq!(MessageIn::from_whatsapp_event(t(), &body, 1).unwrap_err(), Rejected(reason), "{body}");
        }
    }

    #[test]
    fn a_whatsapp_message_without_an_id_gets_a_stable_one() {
        let body = json!({"channel": "whatsapp", "from": "79991234567", "text": "x", "ts": 100});
        let a = MessageIn::from_whatsapp_event(t(), &body, 1).unwrap();
        let b = MessageIn::from_whatsapp_event(t(), &body, 2).unwrap();
        assert_eq!(a.message_id, b.message_id);
    }

    #[test]
    fn telegram_peer_falls_back_to_the_user_id() {
        let body = json!({"channel": "telegram", "message_id": 55, "ts": "2024-05-14T10:40:00Z",
                          "telegram_user_id": 1564614169, "username": "@bob", "text": "hi",
                          "meta": {"reply_to": 12345}});
        let msg = MessageIn::from_telegram_event(t(), &body).unwrap();
        assert_eq!(msg.peer, "1564614169");
        assert_eq!(msg.message_id, "55");
        assert_eq!(msg.sender.telegram_username.as_deref(), Some("bob"));
        assert_eq!(msg.reply_to.as_deref(), Some("12345"));
        let no_sender = json!({"channel": "telegram", "message_id": 1, "ts": 1, "text": "x"});
        assert_eq!(MessageIn::from_telegram_event(t(), &no_sender).unwrap_err(), Rejected("missing_peer"));
        let no_ts = json!({"channel": "telegram", "message_id": 1, "peer": 5, "text": "x"});
        assert_eq!(MessageIn::from_telegram_event(t(), &no_ts).unwrap_err(), Rejected("invalid_ts"));
    }

    #[test]
    fn transport_messages_need_a_recipient_and_content() {
        let ok = json!({"tenant": 1, "channel": "telegram", "to": "me", "text": "Привет!",
                        "attachments": [{"type": "file", "url": "https://e.org/f.pdf", "name": "f.pdf", "caption": "cap"}],
                        "meta": {"reply_to": "12345"}});
        let msg = TransportMessage::parse(&ok).unwrap();
        assert_eq!(msg.reply_to.as_deref(), Some("12345"));
        assert_eq!(msg.effective_text().as_deref(), Some("Привет!"));
        let caption_only = json!({"tenant": 1, "channel": "whatsapp", "to": 79991234567_i64,
                                  "attachments": [{"type": "image", "url": "https://e.org/a.jpg", "caption": "Фото"}]});
        let msg = TransportMessage::parse(&caption_only).unwrap();
        assert_eq!(msg.to, "79991234567");
        assert_eq!(msg.effective_text().as_deref(), Some("Фото"));
        for (body, reason) in [
            (json!({"channel": "telegram", "to": "me", "text": "x"}), "invalid_tenant"),
            (json!({"tenant": 1, "channel": "fax", "to": "me", "text": "x"}), "invalid_channel"),
            (json!({"tenant": 1, "channel": "telegram", "text": "x"}), "missing_to"),
            (json!({"tenant": 1, "channel": "telegram", "to": "me"}), "text_or_attachments_required"),
            (
                json!({"tenant": 1, "channel": "telegram", "to": "me", "attachments": [{"type": "file"}]}),
                "attachment_url_required",
            ),
        ] {
            assert_eq!(TransportMessage::parse(&body).unwrap_err(), Rejected(reason), "{body}");
        }
    }
}
