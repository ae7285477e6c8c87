//! Pure mappings between Telegram's world (in Avio types) and the pipeline's:
//! a private message to `MessageIn`, an outbound `to` to the targets to try, a
//! Telegram error to the outbox's `SendError`. No IO.

use std::time::Duration;

use serde_json::json;

use super::account::{Target, TgError, TgMedia, TgMessage};
use crate::channels::{OutboundFile, SendError};
use crate::domain::{Attachment, Channel, MessageIn, Sender, TenantId};

/// The targets to try for an outbound `to`, in SPEC 5.4's order: a numeric `to` is
/// first a dialog id the session knows, then a user id, then that user's username
/// when Avio has seen it; a name is a username; `me` is Saved Messages.
pub fn targets(to: &str, known_username: Option<&str>) -> Vec<Target> {
    let to = to.trim();
    if to.eq_ignore_ascii_case("me") || to.eq_ignore_ascii_case("self") {
        return vec![Target::Me];
    }
    if let Ok(id) = to.parse::<i64>() {
        let mut out = vec![Target::PeerId(id)];
        if id > 0 {
            out.push(Target::UserId(id));
        }
        if let Some(name) = known_username.filter(|n| !n.is_empty()) {
            out.push(Target::Username(name.to_string()));
        }
        return out;
    }
    let name = to.trim_start_matches('@');
    if name.is_empty() { Vec::new() } else { vec![Target::Username(name.to_string())] }
}

/// Whether an outbound file goes as a compressed photo (images Telegram renders
/// inline) or as a document (everything else, keeping its name).
pub fn send_as_photo(file: &OutboundFile) -> bool {
    matches!(file.mime.as_str(), "image/jpeg" | "image/jpg" | "image/png" | "image/webp")
        || (file.kind == "image" && !file.mime.starts_with("image/") && looks_like_photo(&file.name))
}

fn looks_like_photo(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png", ".webp"].iter().any(|ext| lower.ends_with(ext))
}

/// A file name safe inside the tenant's media folder: `tg-<message id>-<name>`.
pub fn media_file_name(message_id: i32, media: &TgMedia) -> String {
    let base = media.file_name.as_deref().unwrap_or("");
    let mut safe: String = base
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect::<String>()
        .trim_start_matches('.')
        .chars()
        .take(80)
        .collect();
    if safe.is_empty() {
        safe = format!("{}{}", media.kind, extension_for(media.mime.as_deref()));
    }
    format!("tg-{message_id}-{safe}")
}

fn extension_for(mime: Option<&str>) -> &'static str {
    match mime {
        Some("image/jpeg") | None => ".jpg",
        Some("image/png") => ".png",
        Some("image/webp") => ".webp",
        Some("video/mp4") => ".mp4",
        Some("audio/ogg") => ".ogg",
        Some("audio/mpeg") => ".mp3",
        Some("application/pdf") => ".pdf",
        Some(_) => ".bin",
    }
}

/// A private message as the pipeline's `MessageIn`. The lead is always the other
/// side of the chat; the account's own messages (sent outside Avio) are `from_me`.
/// `None` for what the bot must never see: chats with bots.
pub fn message_in(tenant: TenantId, message: &TgMessage, attachments: Vec<Attachment>) -> Option<MessageIn> {
    if message.from_bot || message.chat_user_id <= 0 {
        return None;
    }
    let user_id = message.chat_user_id.to_string();
    let text = (!message.text.is_empty()).then(|| message.text.clone());
    let msg = MessageIn {
        tenant,
        channel: Channel::Telegram,
        provider: "telegram".into(),
        message_id: message.id.to_string(),
        peer: user_id.clone(),
        sender: Sender {
            telegram_user_id: Some(user_id),
            telegram_username: message.username.clone(),
            name: message.first_name.clone(),
            ..Sender::default()
        },
        text,
        attachments,
        ts: message.date,
        from_me: message.outgoing,
        reply_to: message.reply_to.map(|id| id.to_string()),
        meta: match message.reply_to {
            Some(id) => json!({"reply_to": id.to_string(), "source": "tg_session"}),
            None => json!({"source": "tg_session"}),
        },
    };
    msg.has_content().then_some(msg)
}

/// The attachment describing downloaded (or too large to download) media.
pub fn attachment(media: &TgMedia, relative_path: Option<String>) -> Attachment {
    Attachment {
        kind: media.kind.clone(),
        url: None,
        name: media.file_name.clone(),
        mime: media.mime.clone(),
        caption: None,
        path: relative_path,
    }
}

/// How the outbox treats a Telegram error. Side effects (alerts, failing the
/// session) are the manager's; this is only the classification.
pub fn send_error(error: &TgError) -> SendError {
    match error {
        TgError::FloodWait(secs) => SendError::RateLimited(Duration::from_secs(u64::from(*secs).max(1))),
        TgError::PeerFlood => SendError::Permanent("peer_flood".into()),
        TgError::SessionGone(code) => SendError::SessionGone(code.to_ascii_lowercase()),
        TgError::PasswordNeeded | TgError::SessionLocked => SendError::NotConnected,
        TgError::PeerInvalid(what) => SendError::RecipientNotFound(what.clone()),
        TgError::Network(e) => SendError::Transient(e.clone()),
        TgError::Rpc { code, name } if *code >= 500 || *code == -503 => SendError::Transient(name.clone()),
        TgError::Rpc { name, .. } => SendError::Permanent(name.clone()),
        TgError::PasswordInvalid => SendError::NotConnected,
        TgError::Other(e) => SendError::Transient(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::Disposition;

    fn tenant() -> TenantId {
        TenantId::new(4).unwrap()
    }

    #[test]
    fn targets_follow_the_spec_order() {
        assert_eq!(targets("me", None), vec![Target::Me]);
        assert_eq!(targets("123", None), vec![Target::PeerId(123), Target::UserId(123)]);
        assert_eq!(
            targets("123", Some("lead")),
            vec![Target::PeerId(123), Target::UserId(123), Target::Username("lead".into())]
        );
        assert_eq!(targets("-1001234", None), vec![Target::PeerId(-1001234)]);
        assert_eq!(targets("@Lead_1", None), vec![Target::Username("Lead_1".into())]);
        assert_eq!(targets("lead", None), vec![Target::Username("lead".into())]);
        assert!(targets("@", None).is_empty());
    }

    #[test]
    fn a_private_message_becomes_message_in() {
        let message = TgMessage {
            id: 77,
            chat_user_id: 5001,
            username: Some("ivan".into()),
            first_name: Some("Иван".into()),
            date: 1_715_683_200,
            text: "Добрый день".into(),
            reply_to: Some(70),
            ..TgMessage::default()
        };
        let m = message_in(tenant(), &message, Vec::new()).unwrap();
        assert_eq!(m.channel, Channel::Telegram);
        assert_eq!(m.message_id, "77");
        assert_eq!(m.peer, "5001");
        assert_eq!(m.sender.telegram_user_id.as_deref(), Some("5001"));
        assert_eq!(m.sender.telegram_username.as_deref(), Some("ivan"));
        assert_eq!(m.text.as_deref(), Some("Добрый день"));
        assert_eq!(m.ts, 1_715_683_200);
        assert_eq!(m.reply_to.as_deref(), Some("70"));
        assert!(!m.from_me);
        assert_eq!(m.dedupe_key(), "in:4:telegram:77");
    }

    #[test]
    fn own_messages_are_from_me_and_bots_and_empty_messages_are_dropped() {
        let own = TgMessage { id: 9, chat_user_id: 5001, outgoing: true, text: "hi".into(), ..TgMessage::default() };
        let m = message_in(tenant(), &own, Vec::new()).unwrap();
        assert!(m.from_me);
        assert_eq!(m.peer, "5001", "the lead is the other side of the chat");
        let bot = TgMessage { from_bot: true, ..own.clone() };
        assert!(message_in(tenant(), &bot, Vec::new()).is_none());
        let empty = TgMessage { text: String::new(), ..own.clone() };
        assert!(message_in(tenant(), &empty, Vec::new()).is_none());
        let media = TgMedia { kind: "image".into(), ..TgMedia::default() };
        let photo_only = message_in(tenant(), &empty, vec![attachment(&media, Some("media/x.jpg".into()))]).unwrap();
        assert_eq!(photo_only.attachments[0].path.as_deref(), Some("media/x.jpg"));
        assert_eq!(photo_only.text, None);
    }

    #[test]
    fn media_file_names_cannot_leave_the_media_folder() {
        let named = TgMedia { kind: "file".into(), file_name: Some("../../etc/passwd".into()), ..TgMedia::default() };
        assert_eq!(media_file_name(5, &named), "tg-5-_.._etc_passwd");
        let photo = TgMedia { kind: "image".into(), mime: Some("image/jpeg".into()), ..TgMedia::default() };
        assert_eq!(media_file_name(6, &photo), "tg-6-image.jpg");
        let hidden = TgMedia { kind: "file".into(), file_name: Some(".env".into()), ..TgMedia::default() };
        assert_eq!(media_file_name(7, &hidden), "tg-7-env");
    }

    #[test]
    fn send_errors_keep_flood_wait_as_a_postponement() {
        assert_eq!(send_error(&TgError::FloodWait(31)).disposition(), Disposition::Postpone(Duration::from_secs(31)));
        assert_eq!(send_error(&TgError::PeerFlood).disposition(), Disposition::Fail);
        let gone = send_error(&TgError::SessionGone("SESSION_REVOKED".into()));
        assert!(matches!(&gone, SendError::SessionGone(c) if c == "session_revoked"));
        assert_eq!(gone.disposition(), Disposition::Fail);
        assert_eq!(send_error(&TgError::Network("reset".into())).disposition(), Disposition::Retry);
        assert_eq!(send_error(&TgError::PeerInvalid("x".into())).disposition(), Disposition::Fail);
        let internal = TgError::Rpc { code: 500, name: "INTERNAL".into() };
        assert_eq!(send_error(&internal).disposition(), Disposition::Retry);
        let too_long = TgError::Rpc { code: 400, name: "MESSAGE_TOO_LONG".into() };
        assert_eq!(send_error(&too_long).disposition(), Disposition::Fail);
    }

    #[test]
    fn images_go_as_photos_and_the_rest_as_documents() {
        let file = |kind: &str, name: &str, mime: &str| OutboundFile {
            kind: kind.into(),
            name: name.into(),
            mime: mime.into(),
            bytes: bytes::Bytes::new(),
        };
        assert!(send_as_photo(&file("image", "a.jpg", "image/jpeg")));
        assert!(send_as_photo(&file("file", "a.png", "image/png")));
        assert!(!send_as_photo(&file("file", "offer.pdf", "application/pdf")));
        assert!(!send_as_photo(&file("image", "anim.gif", "image/gif")));
    }
}
