//! What the page adapter reports through the `avioBridge` binding, parsed, and the pure
//! mappings around it: page messages to [`MessageIn`], acks to delivery statuses,
//! recipients to JIDs (SPEC 5.4), QR strings to SVG. No IO here.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::phone::normalize_phone;
use crate::domain::{Attachment, Channel, MessageIn, Sender, TenantId};

/// One event from the page (`{"type": …, …}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BridgeEvent {
    /// `window.Debug.VERSION` appeared: the page's bundle loaded.
    Loading {
        version: String,
    },
    /// A new QR string (`ref,noiseKey,identityKey,advSecret,platform`).
    Qr {
        qr: String,
    },
    /// `hasSynced`: the account is linked; `me` is its own wid.
    Ready {
        me: Option<String>,
        #[serde(default)]
        pushname: Option<String>,
    },
    SocketState {
        state: String,
    },
    /// The socket left the accepted states (unpaired, conflict, blocked…).
    Disconnected {
        state: String,
    },
    Logout {
        reason: String,
    },
    // Boxed: a message is far larger than the other events.
    Message {
        message: Box<PageMessage>,
    },
    Ack {
        id: String,
        ack: i64,
    },
    /// The adapter could not attach (missing module, no bundle).
    Failed {
        error: String,
    },
}

impl BridgeEvent {
    pub fn parse(payload: &str) -> Option<BridgeEvent> {
        serde_json::from_str(payload).ok()
    }
}

/// A message as the adapter serialises it (whatsapp-web.js `Message` fields).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PageMessage {
    pub id: String,
    pub from_me: bool,
    pub remote: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub body: Option<String>,
    pub caption: Option<String>,
    pub t: Option<i64>,
    pub notify_name: Option<String>,
    pub has_media: bool,
    pub mimetype: Option<String>,
    pub filename: Option<String>,
    /// Avio sent it: the page's echo of our own send.
    pub avio: bool,
}

/// Message types that carry a file.
pub const MEDIA_TYPES: [&str; 6] = ["image", "video", "audio", "ptt", "document", "sticker"];

/// Why a page message does not become a `MessageIn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Our own send, echoed by the page.
    Echo,
    Group,
    Broadcast,
    /// The peer is not a phone JID (`@lid` without a mapping, newsletters).
    NoPhone,
    /// System notices, reactions, revokes…
    Unsupported,
    NoContent,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Skip::Echo => "own_echo",
            Skip::Group => "group",
            Skip::Broadcast => "broadcast",
            Skip::NoPhone => "no_phone",
            Skip::Unsupported => "unsupported_type",
            Skip::NoContent => "no_text_or_media",
        }
    }
}

impl PageMessage {
    pub fn is_media(&self) -> bool {
        self.has_media && MEDIA_TYPES.contains(&self.kind.as_str())
    }

    /// The other side of the chat: the sender, or the recipient of the account's own
    /// messages.
    pub fn peer_jid(&self) -> Option<&str> {
        let peer = if self.from_me { self.to.as_deref() } else { self.from.as_deref() };
        peer.or(self.remote.as_deref())
    }

    /// What the message becomes before its media is downloaded: the attachment (if
    /// any) has no `path` yet.
    pub fn to_message_in(&self, tenant: TenantId, now: i64) -> Result<MessageIn, Skip> {
        if self.avio {
            return Err(Skip::Echo);
        }
        let jid = self.peer_jid().ok_or(Skip::NoPhone)?;
        if jid.ends_with("@g.us") {
            return Err(Skip::Group);
        }
        if jid.ends_with("@broadcast") {
            return Err(Skip::Broadcast);
        }
        if !crate::domain::phone::is_user_jid(jid) {
            return Err(Skip::NoPhone);
        }
        let phone = normalize_phone(jid).ok_or(Skip::NoPhone)?;
        let (text, attachments) = if self.kind == "chat" {
            (self.body.clone(), Vec::new())
        } else if self.is_media() {
            let attachment = Attachment {
                kind: attachment_kind(&self.kind).to_string(),
                name: self.filename.clone(),
                mime: self.mimetype.clone(),
                caption: self.caption.clone().filter(|c| !c.is_empty()),
                ..Attachment::default()
            };
            (self.caption.clone(), vec![attachment])
        } else {
            return Err(Skip::Unsupported);
        };
        let message = MessageIn {
            tenant,
            channel: Channel::Whatsapp,
            provider: "whatsapp".into(),
            message_id: self.id.clone(),
            peer: phone.clone(),
            sender: Sender {
                whatsapp_phone: Some(phone),
                // The push name is the lead's only when the lead wrote.
                name: if self.from_me { None } else { self.notify_name.clone() },
                ..Sender::default()
            },
            text: text.filter(|t| !t.trim().is_empty()),
            attachments,
            ts: self.t.filter(|t| *t > 0).unwrap_or(now),
            from_me: self.from_me,
            reply_to: None,
            meta: json!({"from_jid": jid, "wa_type": self.kind}),
        };
        if !message.has_content() {
            return Err(Skip::NoContent);
        }
        Ok(message)
    }
}

/// The attachment `type` Avio stores for a WhatsApp message type.
pub fn attachment_kind(wa_type: &str) -> &'static str {
    match wa_type {
        "image" | "sticker" => "image",
        "video" => "video",
        "audio" | "ptt" => "audio",
        _ => "file",
    }
}

/// A delivery ack (whatsapp-web.js `ACK_*`) as a message status; `None` for acks
/// that say nothing new (pending, server).
pub fn ack_status(ack: i64) -> Option<&'static str> {
    match ack {
        -1 => Some("failed"),
        2 => Some("delivered"),
        3 | 4 => Some("read"),
        _ => None,
    }
}

/// SPEC 5.4: `+E164`, 10–15 digits or a user JID → `digits@c.us`; groups and
/// anything else are refused.
pub fn recipient_jid(to: &str) -> Option<String> {
    let to = to.trim();
    if to.contains('@') && !crate::domain::phone::is_user_jid(to) {
        return None;
    }
    normalize_phone(to).map(|digits| format!("{digits}@c.us"))
}

/// The account's own number from its wid (`79990001122@c.us` → `79990001122`).
pub fn me_number(wid: &str) -> String {
    normalize_phone(wid).unwrap_or_else(|| wid.split('@').next().unwrap_or(wid).to_string())
}

/// A short stable id for a QR string (FNV-1a), used as `qr_id`.
pub fn qr_id(qr: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in qr.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The QR string as an SVG image for `/pub/wa/qr.svg`.
pub fn qr_svg(qr: &str) -> Option<String> {
    let code = qrcode::QrCode::new(qr.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(264, 264)
            .quiet_zone(true)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

/// A file name for downloaded media: the message id made safe, plus an extension.
pub fn media_file_name(message_id: &str, mime: Option<&str>, original: Option<&str>) -> String {
    let stem: String = message_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    let stem = if stem.is_empty() { "media".to_string() } else { stem };
    let from_name = original
        .and_then(|n| n.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()))
        .filter(|ext| !ext.is_empty() && ext.len() <= 5 && ext.chars().all(|c| c.is_ascii_alphanumeric()));
    let from_mime = mime.map(|m| m.split(';').next().unwrap_or(m).trim()).and_then(|m| match m {
        "image/jpeg" => Some("jpg"),
        "image/png" => Some("png"),
        "image/webp" => Some("webp"),
        "image/gif" => Some("gif"),
        "video/mp4" => Some("mp4"),
        "audio/ogg" | "audio/ogg; codecs=opus" => Some("ogg"),
        "audio/mpeg" => Some("mp3"),
        "application/pdf" => Some("pdf"),
        _ => None,
    });
    match from_name.as_deref().or(from_mime) {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem,
    }
}

/// JSON as a JavaScript literal for `Runtime.evaluate` (JSON is a subset of JS).
pub fn js(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::new(3).unwrap()
    }

    fn page(kind: &str, from_me: bool) -> PageMessage {
        PageMessage {
            id: "false_79991234567@c.us_3A1".into(),
            from_me,
            from: Some(if from_me { "79990001122@c.us" } else { "79991234567@c.us" }.into()),
            to: Some(if from_me { "79991234567@c.us" } else { "79990001122@c.us" }.into()),
            kind: kind.into(),
            body: Some("Добрый день".into()),
            t: Some(1_715_683_200),
            notify_name: Some("Иван".into()),
            ..PageMessage::default()
        }
    }

    #[test]
    fn bridge_events_parse_from_the_adapter_json() {
        let event = BridgeEvent::parse(r#"{"type":"ready","me":"79990001122@c.us","pushname":"Shop"}"#).unwrap();
        assert_eq!(event, BridgeEvent::Ready { me: Some("79990001122@c.us".into()), pushname: Some("Shop".into()) });
        let event = BridgeEvent::parse(
            r#"{"type":"message","message":{"id":"x","fromMe":false,"from":"1@c.us","type":"chat","hasMedia":false,"avio":false}}"#,
        )
        .unwrap();
        assert!(matches!(event, BridgeEvent::Message { message } if message.id == "x"));
        assert_eq!(
            BridgeEvent::parse(r#"{"type":"ack","id":"x","ack":3}"#),
            Some(BridgeEvent::Ack { id: "x".into(), ack: 3 })
        );
        assert_eq!(BridgeEvent::parse("not json"), None);
        assert_eq!(BridgeEvent::parse(r#"{"type":"unknown"}"#), None);
    }

    #[test]
    fn a_lead_message_becomes_message_in_with_the_sender_phone() {
        let message = page("chat", false).to_message_in(tenant(), 5).unwrap();
        assert_eq!(message.peer, "79991234567");
        assert_eq!(message.sender.whatsapp_phone.as_deref(), Some("79991234567"));
        assert_eq!(message.sender.name.as_deref(), Some("Иван"));
        assert_eq!(message.text.as_deref(), Some("Добрый день"));
        assert_eq!(message.ts, 1_715_683_200);
        assert!(!message.from_me);
        assert_eq!(message.meta["from_jid"], "79991234567@c.us");
    }

    #[test]
    fn a_phone_sent_message_is_keyed_by_the_recipient() {
        let message = page("chat", true).to_message_in(tenant(), 5).unwrap();
        assert!(message.from_me);
        assert_eq!(message.peer, "79991234567");
        assert_eq!(message.sender.name, None);
    }

    #[test]
    fn echoes_groups_and_system_messages_are_skipped() {
        let mut echo = page("chat", true);
        echo.avio = true;
        assert_eq!(echo.to_message_in(tenant(), 1).unwrap_err(), Skip::Echo);
        let mut group = page("chat", false);
        group.from = Some("120363025@g.us".into());
        assert_eq!(group.to_message_in(tenant(), 1).unwrap_err(), Skip::Group);
        let mut status = page("chat", false);
        status.from = Some("status@broadcast".into());
        assert_eq!(status.to_message_in(tenant(), 1).unwrap_err(), Skip::Broadcast);
        let mut lid = page("chat", false);
        lid.from = Some("123456789012345@lid".into());
        assert_eq!(lid.to_message_in(tenant(), 1).unwrap_err(), Skip::NoPhone);
        assert_eq!(page("e2e_notification", false).to_message_in(tenant(), 1).unwrap_err(), Skip::Unsupported);
        let mut empty = page("chat", false);
        empty.body = Some("  ".into());
        assert_eq!(empty.to_message_in(tenant(), 1).unwrap_err(), Skip::NoContent);
    }

    #[test]
    fn media_messages_use_the_caption_and_carry_an_attachment() {
        let mut image = page("image", false);
        image.has_media = true;
        image.body = None;
        image.caption = Some("Вот фото".into());
        image.mimetype = Some("image/jpeg".into());
        let message = image.to_message_in(tenant(), 1).unwrap();
        assert_eq!(message.text.as_deref(), Some("Вот фото"));
        assert_eq!(message.attachments[0].kind, "image");
        assert_eq!(message.attachments[0].mime.as_deref(), Some("image/jpeg"));
        image.caption = None;
        assert!(image.to_message_in(tenant(), 1).is_ok(), "media without text is valid");
    }

    #[test]
    fn recipients_normalize_as_spec_5_4() {
        for (to, want) in [
            ("+79991234567", Some("79991234567@c.us")),
            ("89991234567", Some("79991234567@c.us")),
            ("79991234567", Some("79991234567@c.us")),
            ("79991234567@c.us", Some("79991234567@c.us")),
            ("79991234567@s.whatsapp.net", Some("79991234567@c.us")),
            ("120363025@g.us", None),
            ("12345", None),
            ("me", None),
        ] {
            assert_eq!(recipient_jid(to).as_deref(), want, "{to}");
        }
    }

    #[test]
    fn acks_map_to_delivery_statuses() {
        assert_eq!(ack_status(1), None);
        assert_eq!(ack_status(2), Some("delivered"));
        assert_eq!(ack_status(3), Some("read"));
        assert_eq!(ack_status(-1), Some("failed"));
    }

    #[test]
    fn media_file_names_are_safe() {
        assert_eq!(media_file_name("false_7999@c.us_3A/../x", Some("image/jpeg"), None), "false_7999cus_3Ax.jpg");
        assert_eq!(media_file_name("id1", Some("application/octet-stream"), Some("Прайс.PDF")), "id1.pdf");
        assert_eq!(media_file_name("id2", None, Some("evil.sh/../..")), "id2");
    }

    #[test]
    fn qr_strings_render_to_svg_with_stable_ids() {
        let svg = qr_svg("2@abc,def,ghi,jkl,CHROME").unwrap();
        assert!(svg.contains("<svg"));
        assert_eq!(qr_id("a"), qr_id("a"));
        assert_ne!(qr_id("a"), qr_id("b"));
    }
}
