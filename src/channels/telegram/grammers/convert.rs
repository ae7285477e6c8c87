//! Pure conversions from grammers / raw TL values to Avio's Telegram types: RPC
//! errors to [`TgError`], raw messages to [`TgMessage`]. No IO; unit-tested with
//! hand-built TL values.

use grammers_client::InvocationError;
use grammers_client::sender::RpcError;
use grammers_client::tl;

use crate::channels::telegram::account::{SelfUser, TgError, TgMedia, TgMessage};

/// RPC errors that mean the key no longer works; the session file is archived.
const SESSION_GONE: &[&str] = &[
    "AUTH_KEY_UNREGISTERED",
    "SESSION_REVOKED",
    "AUTH_KEY_DUPLICATED",
    "SESSION_EXPIRED",
    "USER_DEACTIVATED",
    "USER_DEACTIVATED_BAN",
    "AUTH_KEY_INVALID",
    "AUTH_KEY_PERM_EMPTY",
];

/// Errors that mean "this recipient cannot be addressed" rather than a broken send.
const PEER_INVALID: &[&str] = &[
    "PEER_ID_INVALID",
    "USER_ID_INVALID",
    "USERNAME_NOT_OCCUPIED",
    "USERNAME_INVALID",
    "INPUT_USER_DEACTIVATED",
    "USER_IS_BLOCKED",
    "CHAT_ID_INVALID",
    "CHANNEL_INVALID",
    "CHANNEL_PRIVATE",
];

/// The one place Telegram's RPC errors become Avio's.
pub fn map_rpc_error(error: &RpcError) -> TgError {
    let name = error.name.as_str();
    match name {
        "FLOOD_WAIT" | "SLOWMODE_WAIT" | "FLOOD_PREMIUM_WAIT" | "FLOOD_TEST_PHONE_WAIT" => {
            TgError::FloodWait(error.value.unwrap_or(1))
        }
        "PEER_FLOOD" => TgError::PeerFlood,
        "SESSION_PASSWORD_NEEDED" => TgError::PasswordNeeded,
        "PASSWORD_HASH_INVALID" => TgError::PasswordInvalid,
        _ if SESSION_GONE.contains(&name) => TgError::SessionGone(name.to_string()),
        _ if PEER_INVALID.contains(&name) => TgError::PeerInvalid(name.to_string()),
        _ if error.code == 420 => TgError::FloodWait(error.value.unwrap_or(1)),
        _ => TgError::Rpc { code: error.code, name: name.to_string() },
    }
}

pub fn map_invocation_error(error: &InvocationError) -> TgError {
    match error {
        InvocationError::Rpc(rpc) => map_rpc_error(rpc),
        InvocationError::Io(e) => TgError::Network(e.to_string()),
        InvocationError::Transport(e) => TgError::Network(e.to_string()),
        InvocationError::Dropped(why) => TgError::Network(format!("dropped: {why}")),
        other => TgError::Other(other.to_string()),
    }
}

/// The fields Avio keeps of a user.
pub fn self_user(user: &tl::enums::User) -> SelfUser {
    match user {
        tl::enums::User::User(u) => {
            SelfUser { id: u.id, username: primary_username(u), first_name: u.first_name.clone() }
        }
        tl::enums::User::Empty(u) => SelfUser { id: u.id, ..SelfUser::default() },
    }
}

fn primary_username(user: &tl::types::User) -> Option<String> {
    user.username.clone().or_else(|| {
        user.usernames.as_ref().and_then(|names| {
            names.iter().find_map(|n| match n {
                tl::enums::Username::Username(n) if n.active => Some(n.username.clone()),
                _ => None,
            })
        })
    })
}

/// Adds what the other side's user object says (username, name, bot) to a message.
pub fn apply_user(message: &mut TgMessage, user: &tl::enums::User) {
    if let tl::enums::User::User(u) = user
        && u.id == message.chat_user_id
    {
        message.username = primary_username(u);
        message.first_name = u.first_name.clone();
        message.from_bot = u.bot;
    }
}

/// A raw message as a private-chat [`TgMessage`]; `None` for service and empty
/// messages, groups and channels, and the account's chat with itself.
pub fn map_message(raw: &tl::enums::Message, self_id: Option<i64>) -> Option<TgMessage> {
    let tl::enums::Message::Message(m) = raw else {
        return None;
    };
    let tl::enums::Peer::User(peer) = &m.peer_id else {
        return None;
    };
    if Some(peer.user_id) == self_id {
        return None;
    }
    let reply_to = match &m.reply_to {
        // A reply quoting another chat is not a reply inside this dialog.
        Some(tl::enums::MessageReplyHeader::Header(h)) if h.reply_to_peer_id.is_none() => h.reply_to_msg_id,
        _ => None,
    };
    Some(TgMessage {
        id: m.id,
        chat_user_id: peer.user_id,
        outgoing: m.out,
        username: None,
        first_name: None,
        from_bot: false,
        date: i64::from(m.date),
        text: m.message.clone(),
        reply_to,
        media: m.media.as_ref().and_then(media_info),
    })
}

/// What a message's media is, before downloading it; `None` for media that is not a
/// file (locations, contacts, polls, link previews).
pub fn media_info(media: &tl::enums::MessageMedia) -> Option<TgMedia> {
    match media {
        tl::enums::MessageMedia::Photo(photo) => {
            let size = match &photo.photo {
                Some(tl::enums::Photo::Photo(p)) => largest_photo_size(p),
                Some(tl::enums::Photo::Empty(_)) | None => return None,
            };
            Some(TgMedia { kind: "image".into(), mime: Some("image/jpeg".into()), file_name: None, size, bytes: None })
        }
        tl::enums::MessageMedia::Document(doc) => {
            let Some(tl::enums::Document::Document(d)) = &doc.document else {
                return None;
            };
            let mut file_name = None;
            let mut kind = if doc.voice {
                "voice"
            } else if doc.video || doc.round {
                "video"
            } else if d.mime_type.starts_with("image/") {
                "image"
            } else if d.mime_type.starts_with("video/") {
                "video"
            } else if d.mime_type.starts_with("audio/") {
                "audio"
            } else {
                "file"
            };
            for attribute in &d.attributes {
                match attribute {
                    tl::enums::DocumentAttribute::Filename(f) => file_name = Some(f.file_name.clone()),
                    tl::enums::DocumentAttribute::Sticker(_) => kind = "sticker",
                    tl::enums::DocumentAttribute::Audio(a) => kind = if a.voice { "voice" } else { "audio" },
                    _ => {}
                }
            }
            Some(TgMedia {
                kind: kind.into(),
                mime: Some(d.mime_type.clone()),
                file_name,
                size: u64::try_from(d.size).ok(),
                bytes: None,
            })
        }
        _ => None,
    }
}

fn largest_photo_size(photo: &tl::types::Photo) -> Option<u64> {
    photo
        .sizes
        .iter()
        .filter_map(|s| match s {
            tl::enums::PhotoSize::Size(s) => u64::try_from(s.size).ok(),
            tl::enums::PhotoSize::Progressive(s) => s.sizes.iter().max().and_then(|m| u64::try_from(*m).ok()),
            _ => None,
        })
        .max()
}

/// The login step in an `auth.LoginToken` answer; success carries the raw user for
/// the login bookkeeping.
pub enum RawLoginStep {
    Token {
        token: Vec<u8>,
        expires: i64,
    },
    MigrateTo {
        dc_id: i32,
        token: Vec<u8>,
    },
    Success(Box<tl::enums::User>),
    /// `auth.authorizationSignUpRequired`: no such account (cannot happen by QR).
    SignUpRequired,
}

pub fn login_step(answer: tl::enums::auth::LoginToken) -> RawLoginStep {
    match answer {
        tl::enums::auth::LoginToken::Token(t) => RawLoginStep::Token { token: t.token, expires: i64::from(t.expires) },
        tl::enums::auth::LoginToken::MigrateTo(m) => RawLoginStep::MigrateTo { dc_id: m.dc_id, token: m.token },
        tl::enums::auth::LoginToken::Success(s) => match s.authorization {
            tl::enums::auth::Authorization::Authorization(a) => RawLoginStep::Success(Box::new(a.user)),
            tl::enums::auth::Authorization::SignUpRequired(_) => RawLoginStep::SignUpRequired,
        },
    }
}

/// Whether raw updates contain `updateLoginToken` (the QR was scanned).
pub fn has_login_token_update(updates: &tl::enums::Updates) -> bool {
    match updates {
        tl::enums::Updates::UpdateShort(short) => matches!(short.update, tl::enums::Update::LoginToken),
        tl::enums::Updates::Combined(c) => c.updates.iter().any(|u| matches!(u, tl::enums::Update::LoginToken)),
        tl::enums::Updates::Updates(u) => u.updates.iter().any(|u| matches!(u, tl::enums::Update::LoginToken)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use grammers_client::tl::Deserializable as _;

    use super::*;

    /// TL bytes for the smallest valid value of a constructor; tests then set fields
    /// on the decoded struct (the generated structs have ~50 fields each).
    struct Tl(Vec<u8>);

    impl Tl {
        fn new(constructor: u32) -> Self {
            Tl(constructor.to_le_bytes().to_vec())
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend(v.to_le_bytes());
            self
        }
        fn i64(mut self, v: i64) -> Self {
            self.0.extend(v.to_le_bytes());
            self
        }
        fn string(mut self, s: &str) -> Self {
            assert!(s.len() < 254);
            self.0.push(s.len() as u8);
            self.0.extend(s.as_bytes());
            while !self.0.len().is_multiple_of(4) {
                self.0.push(0);
            }
            self
        }
    }

    fn message(id: i32, user_id: i64, date: i32, text: &str) -> tl::types::Message {
        let bytes = Tl::new(0x7600_b9d3)
            .u32(0)
            .u32(0)
            .u32(id as u32)
            .u32(0x5951_1722)
            .i64(user_id)
            .u32(date as u32)
            .string(text)
            .0;
        match tl::enums::Message::from_bytes(&bytes).unwrap() {
            tl::enums::Message::Message(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn user(id: i64) -> tl::types::User {
        let bytes = Tl::new(0xb1b8_cc83).u32(0).u32(0).i64(id).0;
        match tl::enums::User::from_bytes(&bytes).unwrap() {
            tl::enums::User::User(u) => u,
            other => panic!("{other:?}"),
        }
    }

    fn reply_header(to: i32) -> tl::enums::MessageReplyHeader {
        tl::enums::MessageReplyHeader::Header(tl::types::MessageReplyHeader {
            reply_to_scheduled: false,
            forum_topic: false,
            quote: false,
            reply_to_ephemeral: false,
            reply_to_msg_id: Some(to),
            reply_to_peer_id: None,
            reply_from: None,
            reply_media: None,
            reply_to_top_id: None,
            quote_text: None,
            quote_entities: None,
            quote_offset: None,
            todo_item_id: None,
            poll_option: None,
        })
    }

    fn document(mime: &str, size: i64, attributes: Vec<tl::enums::DocumentAttribute>) -> tl::enums::MessageMedia {
        tl::enums::MessageMedia::Document(tl::types::MessageMediaDocument {
            nopremium: false,
            spoiler: false,
            video: false,
            round: false,
            voice: false,
            document: Some(tl::enums::Document::Document(tl::types::Document {
                id: 1,
                access_hash: 2,
                file_reference: vec![],
                date: 0,
                mime_type: mime.into(),
                size,
                thumbs: None,
                video_thumbs: None,
                dc_id: 2,
                attributes,
            })),
            alt_documents: None,
            video_cover: None,
            video_timestamp: None,
            ttl_seconds: None,
        })
    }

    #[test]
    fn rpc_errors_map_to_avio_codes() {
        let rpc = |code: i32, message: &str| {
            RpcError::from(tl::types::RpcError { error_code: code, error_message: message.into() })
        };
        let cases: Vec<(RpcError, TgError)> = vec![
            (rpc(420, "FLOOD_WAIT_31"), TgError::FloodWait(31)),
            (rpc(420, "SLOWMODE_WAIT_5"), TgError::FloodWait(5)),
            (rpc(420, "FLOOD_PREMIUM_WAIT_7"), TgError::FloodWait(7)),
            (rpc(400, "PEER_FLOOD"), TgError::PeerFlood),
            (rpc(401, "AUTH_KEY_UNREGISTERED"), TgError::SessionGone("AUTH_KEY_UNREGISTERED".into())),
            (rpc(401, "SESSION_REVOKED"), TgError::SessionGone("SESSION_REVOKED".into())),
            (rpc(406, "AUTH_KEY_DUPLICATED"), TgError::SessionGone("AUTH_KEY_DUPLICATED".into())),
            (rpc(401, "USER_DEACTIVATED_BAN"), TgError::SessionGone("USER_DEACTIVATED_BAN".into())),
            (rpc(401, "SESSION_PASSWORD_NEEDED"), TgError::PasswordNeeded),
            (rpc(400, "PASSWORD_HASH_INVALID"), TgError::PasswordInvalid),
            (rpc(400, "PEER_ID_INVALID"), TgError::PeerInvalid("PEER_ID_INVALID".into())),
            (rpc(400, "USERNAME_NOT_OCCUPIED"), TgError::PeerInvalid("USERNAME_NOT_OCCUPIED".into())),
            (rpc(400, "MESSAGE_TOO_LONG"), TgError::Rpc { code: 400, name: "MESSAGE_TOO_LONG".into() }),
            (rpc(500, "INTERDC_2_CALL_ERROR"), TgError::Rpc { code: 500, name: "INTERDC_CALL_ERROR".into() }),
        ];
        for (error, expected) in cases {
            assert_eq!(map_rpc_error(&error), expected, "{error:?}");
            assert_eq!(map_invocation_error(&InvocationError::Rpc(error)), expected);
        }
        assert_eq!(map_rpc_error(&rpc(401, "SESSION_REVOKED")).code(), "session_revoked");
        let io = InvocationError::Io(std::io::Error::other("reset"));
        assert!(matches!(map_invocation_error(&io), TgError::Network(_)));
        assert!(matches!(map_invocation_error(&InvocationError::Dropped("quit")), TgError::Network(_)));
    }

    #[test]
    fn a_private_text_message_maps_with_reply_and_sender() {
        let mut raw = message(42, 5001, 1_715_683_200, "Привет");
        raw.reply_to = Some(reply_header(40));
        let mut mapped = map_message(&tl::enums::Message::Message(raw), Some(1)).unwrap();
        assert_eq!(mapped.id, 42);
        assert_eq!(mapped.chat_user_id, 5001);
        assert_eq!(mapped.text, "Привет");
        assert_eq!(mapped.date, 1_715_683_200);
        assert_eq!(mapped.reply_to, Some(40));
        assert!(!mapped.outgoing);
        assert!(mapped.media.is_none());

        let mut lead = user(5001);
        lead.username = Some("ivan".into());
        lead.first_name = Some("Иван".into());
        convert_apply(&mut mapped, lead.clone());
        assert_eq!(mapped.username.as_deref(), Some("ivan"));
        assert_eq!(mapped.first_name.as_deref(), Some("Иван"));
        assert!(!mapped.from_bot);

        // Another user's object changes nothing.
        let mut other = user(9);
        other.username = Some("other".into());
        convert_apply(&mut mapped, other);
        assert_eq!(mapped.username.as_deref(), Some("ivan"));
        let mut bot = lead;
        bot.bot = true;
        convert_apply(&mut mapped, bot);
        assert!(mapped.from_bot);
    }

    fn convert_apply(message: &mut TgMessage, user: tl::types::User) {
        apply_user(message, &tl::enums::User::User(user));
    }

    #[test]
    fn outgoing_groups_saved_messages_and_service_messages_are_told_apart() {
        let mut own = message(7, 5001, 1, "from the phone");
        own.out = true;
        assert!(map_message(&tl::enums::Message::Message(own), Some(1)).unwrap().outgoing);

        let saved = message(8, 1, 1, "note to self");
        assert!(map_message(&tl::enums::Message::Message(saved), Some(1)).is_none());

        let mut group = message(9, 5001, 1, "hi all");
        group.peer_id = tl::enums::Peer::Chat(tl::types::PeerChat { chat_id: 77 });
        assert!(map_message(&tl::enums::Message::Message(group), Some(1)).is_none());

        let mut channel = message(10, 5001, 1, "post");
        channel.peer_id = tl::enums::Peer::Channel(tl::types::PeerChannel { channel_id: 77 });
        assert!(map_message(&tl::enums::Message::Message(channel), Some(1)).is_none());

        let service = tl::enums::Message::Service(tl::types::MessageService {
            out: false,
            mentioned: false,
            media_unread: false,
            reactions_are_possible: false,
            silent: false,
            post: false,
            legacy: false,
            id: 11,
            from_id: None,
            peer_id: tl::enums::Peer::User(tl::types::PeerUser { user_id: 5001 }),
            saved_peer_id: None,
            reply_to: None,
            date: 1,
            action: tl::enums::MessageAction::Empty,
            reactions: None,
            ttl_period: None,
        });
        assert!(map_message(&service, Some(1)).is_none());
        let empty = tl::enums::Message::Empty(tl::types::MessageEmpty { id: 12, peer_id: None });
        assert!(map_message(&empty, Some(1)).is_none());

        // A reply quoting another chat is not a reply in this dialog.
        let mut cross = message(13, 5001, 1, "see this");
        if let tl::enums::MessageReplyHeader::Header(mut h) = reply_header(3) {
            h.reply_to_peer_id = Some(tl::enums::Peer::User(tl::types::PeerUser { user_id: 9 }));
            cross.reply_to = Some(tl::enums::MessageReplyHeader::Header(h));
        }
        assert_eq!(map_message(&tl::enums::Message::Message(cross), Some(1)).unwrap().reply_to, None);
    }

    #[test]
    fn media_maps_to_attachment_kinds() {
        let named = vec![tl::enums::DocumentAttribute::Filename(tl::types::DocumentAttributeFilename {
            file_name: "offer.pdf".into(),
        })];
        let mut raw = message(20, 5001, 1, "");
        raw.media = Some(document("application/pdf", 1234, named));
        let mapped = map_message(&tl::enums::Message::Message(raw), None).unwrap();
        let media = mapped.media.unwrap();
        assert_eq!(media.kind, "file");
        assert_eq!(media.mime.as_deref(), Some("application/pdf"));
        assert_eq!(media.file_name.as_deref(), Some("offer.pdf"));
        assert_eq!(media.size, Some(1234));

        assert_eq!(media_info(&document("image/png", 1, vec![])).unwrap().kind, "image");
        assert_eq!(media_info(&document("video/mp4", 1, vec![])).unwrap().kind, "video");
        assert_eq!(media_info(&document("audio/ogg", 1, vec![])).unwrap().kind, "audio");
        if let tl::enums::MessageMedia::Document(mut voice) = document("audio/ogg", 1, vec![]) {
            voice.voice = true;
            assert_eq!(media_info(&tl::enums::MessageMedia::Document(voice)).unwrap().kind, "voice");
        }
        let photo = tl::enums::MessageMedia::Photo(tl::types::MessageMediaPhoto {
            spoiler: false,
            live_photo: false,
            photo: Some(tl::enums::Photo::Photo(tl::types::Photo {
                has_stickers: false,
                id: 1,
                access_hash: 2,
                file_reference: vec![],
                date: 0,
                sizes: vec![
                    tl::enums::PhotoSize::Size(tl::types::PhotoSize { r#type: "m".into(), w: 320, h: 320, size: 900 }),
                    tl::enums::PhotoSize::Size(tl::types::PhotoSize { r#type: "x".into(), w: 800, h: 800, size: 5000 }),
                ],
                video_sizes: None,
                dc_id: 2,
            })),
            ttl_seconds: None,
            video: None,
        });
        let info = media_info(&photo).unwrap();
        assert_eq!((info.kind.as_str(), info.mime.as_deref(), info.size), ("image", Some("image/jpeg"), Some(5000)));
        assert!(media_info(&tl::enums::MessageMedia::Empty).is_none());
    }

    #[test]
    fn login_token_answers_and_the_scan_update_are_recognized() {
        let token = tl::enums::auth::LoginToken::Token(tl::types::auth::LoginToken { expires: 99, token: vec![1, 2] });
        assert!(matches!(login_step(token), RawLoginStep::Token { expires: 99, token } if token == vec![1, 2]));
        let migrate =
            tl::enums::auth::LoginToken::MigrateTo(tl::types::auth::LoginTokenMigrateTo { dc_id: 4, token: vec![3] });
        assert!(matches!(login_step(migrate), RawLoginStep::MigrateTo { dc_id: 4, .. }));
        let scanned =
            tl::enums::Updates::UpdateShort(tl::types::UpdateShort { update: tl::enums::Update::LoginToken, date: 1 });
        assert!(has_login_token_update(&scanned));
        assert!(!has_login_token_update(&tl::enums::Updates::TooLong));
    }
}
