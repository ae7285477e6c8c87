//! Avito messages into `MessageIn`: the v3 webhook envelope and the messages the
//! backstop poller reads. Pure: no IO; the caller supplies the account id and the time.

use serde_json::{Map, Value, json};

use crate::domain::message::parse_ts;
use crate::domain::{Attachment, Channel, MessageIn, Sender, TenantId};

/// Why an Avito event is acknowledged but not queued; `reason` goes into the
/// `avito_webhook_skip` log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No `payload.value` (Avito's reachability check posts `{}`).
    NoPayload,
    /// A payload type other than `message`.
    NotMessage,
    /// Avito's own chat-bots (`type: "system"`, with a `flow_id`).
    System,
    /// Written by the account itself: our own replies come back through the webhook.
    OwnMessage,
    NoChat,
    Deleted,
    /// A type without text or media Avio can use (missed call, file, video…).
    NoContent,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NoPayload => "no_payload",
            Skip::NotMessage => "not_message",
            Skip::System => "system",
            Skip::OwnMessage => "own_message",
            Skip::NoChat => "no_chat",
            Skip::Deleted => "deleted",
            Skip::NoContent => "no_content",
        }
    }
}

/// A string or integer field as text.
pub fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn str_of<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// `u2i`, `u2u` or `a2u` from a chat id such as `u2i-4HzWMRUoAAVnH5i2CC8meg`.
pub fn chat_type_of(chat_id: &str) -> Option<&'static str> {
    ["u2i", "u2u", "a2u"].into_iter().find(|t| chat_id.strip_prefix(t).is_some_and(|rest| rest.starts_with('-')))
}

/// Text and attachments of a message body (`content` of Avito's `MessageContent`).
fn content_of(kind: &str, content: &Value) -> Result<(Option<String>, Vec<Attachment>), Skip> {
    let text = match kind {
        "deleted" => return Err(Skip::Deleted),
        "system" => return Err(Skip::System),
        "image" => {
            // `sizes` maps "WxH" to a URL; the largest picture is the one worth keeping.
            let url = content.pointer("/image/sizes").and_then(Value::as_object).and_then(|sizes| {
                sizes
                    .iter()
                    .filter_map(|(size, url)| Some((pixels(size), url.as_str()?)))
                    .max_by_key(|(px, _)| *px)
                    .map(|(_, url)| url.to_string())
            });
            let Some(url) = url else { return Err(Skip::NoContent) };
            let image = Attachment { kind: "image".into(), url: Some(url), ..Attachment::default() };
            return Ok((str_of(content, "/text").map(str::to_string), vec![image]));
        }
        "voice" => {
            let Some(voice_id) = str_of(content, "/voice/voice_id") else { return Err(Skip::NoContent) };
            // The audio itself needs a separate, expiring link (getVoiceFiles); keep the id.
            let voice = Attachment { kind: "voice".into(), name: Some(voice_id.to_string()), ..Attachment::default() };
            return Ok((None, vec![voice]));
        }
        "link" => str_of(content, "/link/text").or_else(|| str_of(content, "/link/url")).map(str::to_string),
        "item" => {
            let title = str_of(content, "/item/title");
            let url = str_of(content, "/item/item_url");
            match (title, url) {
                (Some(t), Some(u)) => Some(format!("{t} {u}")),
                (t, u) => t.or(u).map(str::to_string),
            }
        }
        "location" => {
            str_of(content, "/location/text").or_else(|| str_of(content, "/location/title")).map(str::to_string)
        }
        _ => str_of(content, "/text").map(str::to_string),
    };
    match text {
        Some(text) => Ok((Some(text), Vec::new())),
        None => Err(Skip::NoContent),
    }
}

fn pixels(size: &str) -> u64 {
    let mut dims = size.split('x').map(|d| d.parse::<u64>().unwrap_or(0));
    dims.next().unwrap_or(0) * dims.next().unwrap_or(0)
}

/// The fields both sources share, gathered before the message is built.
struct Raw<'a> {
    message_id: String,
    chat_id: String,
    author_id: Option<String>,
    kind: &'a str,
    content: &'a Value,
    ts: i64,
    item_id: Option<String>,
    chat_type: Option<String>,
    name: Option<String>,
    /// Written by the account (Avio's echo or a person in the Avito app).
    from_me: bool,
}

fn build(tenant: TenantId, raw: Raw<'_>) -> Result<MessageIn, Skip> {
    let (text, attachments) = content_of(raw.kind, raw.content)?;
    let mut meta = Map::new();
    meta.insert("chat_id".into(), json!(raw.chat_id));
    meta.insert("type".into(), json!(raw.kind));
    if let Some(item_id) = &raw.item_id {
        meta.insert("item_id".into(), json!(item_id));
    }
    if let Some(chat_type) = raw.chat_type.as_deref().or_else(|| chat_type_of(&raw.chat_id)) {
        meta.insert("chat_type".into(), json!(chat_type));
    }
    if let Some(voice) = attachments.iter().find(|a| a.kind == "voice") {
        meta.insert("voice_id".into(), json!(voice.name));
    }
    let message = MessageIn {
        tenant,
        channel: Channel::Avito,
        provider: "avito".into(),
        message_id: raw.message_id,
        // The lead is the chat: `(account, chat_id)` identifies one conversation about one item.
        peer: raw.chat_id,
        // The account's own id would link the lead's contact to the seller.
        sender: Sender {
            avito_user_id: if raw.from_me { None } else { raw.author_id },
            name: raw.name,
            ..Sender::default()
        },
        text,
        attachments,
        ts: raw.ts,
        from_me: raw.from_me,
        reply_to: None,
        meta: Value::Object(meta),
    };
    if !message.has_content() {
        return Err(Skip::NoContent);
    }
    Ok(message)
}

/// Parses a v3 webhook delivery. `account_id` is the connected account, used when the
/// payload lacks `user_id` (which Avito documents as always the account).
pub fn parse_webhook(tenant: TenantId, body: &Value, account_id: Option<&str>, now: i64) -> Result<MessageIn, Skip> {
    let Some(payload) = body.get("payload").filter(|p| p.is_object()) else { return Err(Skip::NoPayload) };
    if payload.get("type").and_then(Value::as_str).is_some_and(|t| t != "message") {
        return Err(Skip::NotMessage);
    }
    let Some(value) = payload.get("value").filter(|v| v.is_object()) else { return Err(Skip::NoPayload) };
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("text");
    if kind == "system" {
        return Err(Skip::System);
    }
    let author_id = id_text(value.get("author_id"));
    let own = id_text(value.get("user_id")).or_else(|| account_id.map(str::to_string));
    // The account's own messages come back too: the caller tells Avio's echoes
    // (skipped) from a person answering in the Avito app (an operator message).
    let from_me = author_id.is_some() && (author_id == own || author_id.as_deref() == account_id);
    let Some(chat_id) = id_text(value.get("chat_id")) else { return Err(Skip::NoChat) };
    let ts = ["created", "published_at"]
        .iter()
        .find_map(|k| value.get(*k).and_then(parse_ts))
        .or_else(|| body.get("timestamp").and_then(parse_ts))
        .unwrap_or(now);
    let message_id = id_text(value.get("id"))
        .or_else(|| id_text(body.get("id")))
        .unwrap_or_else(|| format!("{chat_id}:{ts}:{}", author_id.as_deref().unwrap_or("")));
    build(
        tenant,
        Raw {
            message_id,
            chat_id,
            author_id,
            kind,
            content: value.get("content").unwrap_or(&Value::Null),
            ts,
            item_id: id_text(value.get("item_id")),
            chat_type: value.get("chat_type").and_then(Value::as_str).map(str::to_string),
            name: None,
            from_me,
        },
    )
}

/// The lead's messages in one chat as the poller reads them (`getMessagesV3`, newest
/// first), keeping unread inbound ones created at or after `since`. `chat` is the
/// chat object from `getChatsV2`.
pub fn parse_chat_messages(
    tenant: TenantId,
    chat: &Value,
    messages: &Value,
    account_id: &str,
    since: i64,
) -> Vec<MessageIn> {
    let Some(chat_id) = id_text(chat.get("id")) else { return Vec::new() };
    // The spec's `Messages` is an array; some accounts see it wrapped in `{messages: [...]}`.
    let list = messages.as_array().or_else(|| messages.get("messages").and_then(Value::as_array));
    let item_id = chat.pointer("/context/value/id").and_then(|v| id_text(Some(v)));
    let mut found = Vec::new();
    for message in list.into_iter().flatten() {
        let author_id = id_text(message.get("author_id"));
        let inbound = match message.get("direction").and_then(Value::as_str) {
            Some(direction) => direction == "in",
            None => author_id.as_deref() != Some(account_id),
        };
        let read = message.get("is_read").and_then(Value::as_bool).unwrap_or(false);
        let ts = message.get("created").and_then(parse_ts).unwrap_or(0);
        if !inbound || read || ts < since || author_id.as_deref() == Some(account_id) {
            continue;
        }
        let Some(message_id) = id_text(message.get("id")) else { continue };
        let kind = message.get("type").and_then(Value::as_str).unwrap_or("text");
        let name = chat.get("users").and_then(Value::as_array).and_then(|users| {
            users
                .iter()
                .find(|u| id_text(u.get("id")) == author_id)
                .and_then(|u| u.get("name").and_then(Value::as_str))
                .map(str::to_string)
        });
        let raw = Raw {
            message_id,
            chat_id: chat_id.clone(),
            author_id,
            kind,
            content: message.get("content").unwrap_or(&Value::Null),
            ts,
            item_id: item_id.clone(),
            chat_type: None,
            name,
            // The poller is the backstop for leads' messages only.
            from_me: false,
        };
        if let Ok(parsed) = build(tenant, raw) {
            found.push(parsed);
        }
    }
    // Oldest first, so the dialog and the bot see them in the order they were written.
    found.sort_by_key(|m| m.ts);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TenantId {
        TenantId::new(7).unwrap()
    }

    fn envelope(value: Value) -> Value {
        json!({"id": "hook-1", "version": "v3.0.0", "timestamp": 1715683200,
               "payload": {"type": "message", "value": value}})
    }

    #[test]
    fn a_text_message_becomes_a_message_in_addressed_by_chat() {
        let body = envelope(json!({"id": "m1", "chat_id": "u2i-abc", "user_id": 4242, "author_id": 555,
            "created": 1715683201, "type": "text", "chat_type": "u2i", "item_id": 98765,
            "content": {"text": "Здравствуйте, диван в наличии?"}}));
        let msg = parse_webhook(t(), &body, Some("4242"), 1).unwrap();
        assert_eq!(msg.channel, Channel::Avito);
        assert_eq!(msg.message_id, "m1");
        assert_eq!(msg.peer, "u2i-abc");
        assert_eq!(msg.sender.avito_user_id.as_deref(), Some("555"));
        assert_eq!(msg.text.as_deref(), Some("Здравствуйте, диван в наличии?"));
        assert_eq!(msg.ts, 1715683201);
        assert_eq!(msg.meta["item_id"], "98765");
        assert_eq!(msg.meta["chat_type"], "u2i");
    }

    #[test]
    fn guards_skip_what_must_not_reach_the_bot() {
        let cases = [
            (json!({}), Skip::NoPayload),
            (json!({"payload": {"type": "message"}}), Skip::NoPayload),
            (json!({"payload": {"type": "chat_read", "value": {}}}), Skip::NotMessage),
            (
                envelope(json!({"id": "s", "chat_id": "c", "user_id": 4242, "author_id": 0, "type": "system",
                                "content": {"text": "Скидка", "flow_id": "seller_audience_discount"}})),
                Skip::System,
            ),
            (
                envelope(json!({"id": "n", "user_id": 4242, "author_id": 555, "type": "text",
                                "content": {"text": "x"}})),
                Skip::NoChat,
            ),
            (
                envelope(json!({"id": "d", "chat_id": "c", "user_id": 4242, "author_id": 555, "type": "deleted",
                                "content": {}})),
                Skip::Deleted,
            ),
            (
                envelope(json!({"id": "v", "chat_id": "c", "user_id": 4242, "author_id": 555, "type": "video",
                                "content": {}})),
                Skip::NoContent,
            ),
        ];
        for (body, skip) in cases {
            assert_eq!(parse_webhook(t(), &body, Some("4242"), 1).unwrap_err(), skip, "{body}");
        }
        // The account's own messages come out as `from_me` (the webhook tells echoes from
        // a person in the app), with or without `user_id`, and never carry the seller's id.
        for own in [
            envelope(json!({"id": "o", "chat_id": "c", "author_id": 4242, "content": {"text": "x"}})),
            envelope(json!({"id": "o", "chat_id": "c", "user_id": 4242, "author_id": 4242, "content": {"text": "x"}})),
        ] {
            let message = parse_webhook(t(), &own, Some("4242"), 1).unwrap();
            assert!(message.from_me);
            assert_eq!(message.sender.avito_user_id, None);
        }
    }

    #[test]
    fn images_keep_the_largest_size_and_links_become_text() {
        let body = envelope(json!({"id": "i", "chat_id": "u2u-x", "user_id": 1, "author_id": 2, "type": "image",
            "content": {"image": {"sizes": {"140x105": "https://img/s.jpg", "1280x960": "https://img/l.jpg",
                                             "640x480": "https://img/m.jpg"}}}}));
        let msg = parse_webhook(t(), &body, None, 1).unwrap();
        assert_eq!(msg.attachments[0].url.as_deref(), Some("https://img/l.jpg"));
        assert_eq!(msg.attachments[0].kind, "image");
        assert_eq!(msg.meta["chat_type"], "u2u");
        let link = envelope(json!({"id": "l", "chat_id": "c", "user_id": 1, "author_id": 2, "type": "link",
            "content": {"link": {"text": "habr.com", "url": "https://habr.com/"}}}));
        assert_eq!(parse_webhook(t(), &link, None, 1).unwrap().text.as_deref(), Some("habr.com"));
    }

    #[test]
    fn the_poller_keeps_unread_inbound_messages_oldest_first() {
        let chat = json!({"id": "u2i-chat", "context": {"type": "item", "value": {"id": 98765}},
                          "users": [{"id": 555, "name": "Ирина"}, {"id": 4242, "name": "Магазин"}]});
        let messages = json!([
            {"id": "m3", "author_id": 555, "created": 300, "direction": "in", "is_read": false, "type": "text",
             "content": {"text": "ау?"}},
            {"id": "m2", "author_id": 4242, "created": 200, "direction": "out", "is_read": true, "type": "text",
             "content": {"text": "наш ответ"}},
            {"id": "m1", "author_id": 555, "created": 100, "direction": "in", "is_read": false, "type": "text",
             "content": {"text": "Здравствуйте"}},
            {"id": "m0", "author_id": 555, "created": 50, "direction": "in", "is_read": true, "type": "text",
             "content": {"text": "старое"}},
            {"id": "s1", "author_id": 0, "created": 310, "direction": "in", "is_read": false, "type": "system",
             "content": {"text": "бот", "flow_id": "flower_161071"}}
        ]);
        let found = parse_chat_messages(t(), &chat, &messages, "4242", 0);
        assert_eq!(found.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>(), ["m1", "m3"]);
        assert_eq!(found[0].sender.name.as_deref(), Some("Ирина"));
        assert_eq!(found[0].meta["item_id"], "98765");
        assert_eq!(found[0].peer, "u2i-chat");
        let wrapped = json!({"messages": messages});
        assert_eq!(parse_chat_messages(t(), &chat, &wrapped, "4242", 150).len(), 1);
    }
}
