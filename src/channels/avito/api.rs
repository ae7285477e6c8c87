//! Avito's HTTP API, one function per endpoint Avio uses, against `AVITO_API_BASE`.
//! No token logic here (see `tokens`): every call takes the access token it should use
//! and reports failures as [`ApiFailure`] so the caller can refresh on 401/403.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::channels::OutboundFile;

/// No Avito call should hold a worker longer than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream error bodies are kept this short in errors and logs.
const DETAIL_LIMIT: usize = 200;

/// Why a call to Avito failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiFailure {
    /// Avito answered with a non-2xx status. `detail` is a short excerpt of its body.
    #[error("HTTP {status}: {detail}")]
    Status { status: u16, retry_after: Option<Duration>, detail: String },
    /// No answer (connection, timeout).
    #[error("unreachable: {0}")]
    Transport(String),
    /// A 2xx whose body is not what the API documents.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl ApiFailure {
    pub fn is_auth(&self) -> bool {
        matches!(self, ApiFailure::Status { status: 401 | 403, .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiFailure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The `/token/` answer (all grants).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenGrant {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// A cheap handle: the shared HTTP client and the base URL.
#[derive(Clone)]
pub struct AvitoApi {
    http: reqwest::Client,
    base: String,
}

fn transport(e: reqwest::Error) -> ApiFailure {
    // `without_url`: the message must never carry a URL into logs.
    ApiFailure::Transport(e.without_url().to_string())
}

fn excerpt(body: &str) -> String {
    let trimmed: String = body.trim().chars().take(DETAIL_LIMIT).collect();
    if trimmed.is_empty() { "empty body".into() } else { trimmed }
}

impl AvitoApi {
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self { http, base: base.trim_end_matches('/').to_string() }
    }

    fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token).timeout(CALL_TIMEOUT)
    }

    async fn send(builder: RequestBuilder) -> Result<Value, ApiFailure> {
        let response = builder.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ApiFailure::Status { status: status.as_u16(), retry_after, detail: excerpt(&body) });
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|e| ApiFailure::Decode(format!("{e}: {}", excerpt(&body))))
    }

    /// `POST /token/`, form-encoded: every grant goes through here.
    pub async fn token(&self, form: &[(&str, &str)]) -> Result<TokenGrant, ApiFailure> {
        let builder = self.http.post(format!("{}/token/", self.base)).form(form).timeout(CALL_TIMEOUT);
        let value = Self::send(builder).await?;
        // Avito answers some refused grants with 200 and an `error` field.
        if let Some(error) = value.get("error") {
            let detail = error.as_str().map(str::to_string).unwrap_or_else(|| error.to_string());
            return Err(ApiFailure::Status { status: StatusCode::BAD_REQUEST.as_u16(), retry_after: None, detail });
        }
        serde_json::from_value(value).map_err(|e| ApiFailure::Decode(e.to_string()))
    }

    /// `GET /core/v1/accounts/self`: the account the token belongs to.
    pub async fn account_self(&self, token: &str) -> Result<Value, ApiFailure> {
        Self::send(self.request(Method::GET, "/core/v1/accounts/self", token)).await
    }

    /// Sends one text message (at most 1000 characters); returns Avito's message id.
    pub async fn send_text(&self, token: &str, account: &str, chat: &str, text: &str) -> Result<String, ApiFailure> {
        let path = format!("/messenger/v1/accounts/{account}/chats/{}/messages", encode(chat));
        let body = json!({"type": "text", "message": {"text": text}});
        let value = Self::send(self.request(Method::POST, &path, token).json(&body)).await?;
        message_id(&value)
    }

    /// Marks the chat read, as a person answering it would.
    pub async fn mark_read(&self, token: &str, account: &str, chat: &str) -> Result<(), ApiFailure> {
        let path = format!("/messenger/v1/accounts/{account}/chats/{}/read", encode(chat));
        Self::send(self.request(Method::POST, &path, token)).await.map(|_| ())
    }

    /// Uploads one image (`uploadfile[]`, one per request); returns its `image_id`.
    pub async fn upload_image(&self, token: &str, account: &str, file: &OutboundFile) -> Result<String, ApiFailure> {
        let path = format!("/messenger/v1/accounts/{account}/uploadImages");
        let (content_type, body) = multipart_image(file);
        let builder =
            self.request(Method::POST, &path, token).header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        let value = Self::send(builder).await?;
        // The answer is keyed by the new image id: `{"<image_id>": {"<WxH>": url, …}}`.
        value
            .as_object()
            .and_then(|map| map.keys().next().cloned())
            .ok_or_else(|| ApiFailure::Decode("uploadImages answered without an image id".into()))
    }

    pub async fn send_image(
        &self,
        token: &str,
        account: &str,
        chat: &str,
        image_id: &str,
    ) -> Result<String, ApiFailure> {
        let path = format!("/messenger/v1/accounts/{account}/chats/{}/messages/image", encode(chat));
        let value = Self::send(self.request(Method::POST, &path, token).json(&json!({"image_id": image_id}))).await?;
        message_id(&value)
    }

    /// `POST /messenger/v3/webhook {"url"}`: subscribes `url` to the account's messages.
    pub async fn set_webhook(&self, token: &str, url: &str) -> Result<(), ApiFailure> {
        Self::send(self.request(Method::POST, "/messenger/v3/webhook", token).json(&json!({"url": url})))
            .await
            .map(|_| ())
    }

    /// `POST /messenger/v1/subscriptions` (yes, POST): `{"subscriptions":[{url, version}]}`.
    pub async fn subscriptions(&self, token: &str) -> Result<Value, ApiFailure> {
        Self::send(self.request(Method::POST, "/messenger/v1/subscriptions", token)).await
    }

    pub async fn unsubscribe(&self, token: &str, url: &str) -> Result<(), ApiFailure> {
        Self::send(self.request(Method::POST, "/messenger/v1/webhook/unsubscribe", token).json(&json!({"url": url})))
            .await
            .map(|_| ())
    }

    /// `GET /messenger/v2/accounts/{id}/chats?unread_only=true` for item and direct chats.
    pub async fn unread_chats(&self, token: &str, account: &str) -> Result<Value, ApiFailure> {
        let path = format!("/messenger/v2/accounts/{account}/chats");
        let query = [("unread_only", "true"), ("chat_types", "u2i,u2u"), ("limit", "100")];
        Self::send(self.request(Method::GET, &path, token).query(&query)).await
    }

    /// `GET /messenger/v3/accounts/{id}/chats/{chat}/messages/` (the trailing slash is in
    /// the spec); newest first. Does not mark the chat read.
    pub async fn messages(&self, token: &str, account: &str, chat: &str) -> Result<Value, ApiFailure> {
        let path = format!("/messenger/v3/accounts/{account}/chats/{}/messages/", encode(chat));
        Self::send(self.request(Method::GET, &path, token).query(&[("limit", "50")])).await
    }
}

fn message_id(value: &Value) -> Result<String, ApiFailure> {
    super::inbound::id_text(value.get("id")).ok_or_else(|| ApiFailure::Decode("the answer has no message id".into()))
}

/// Chat ids are opaque; keep them from breaking out of their path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A `multipart/form-data` body with the one `uploadfile[]` part Avito takes. Built by
/// hand because it is a single part and keeps reqwest's multipart feature out of the
/// build.
fn multipart_image(file: &OutboundFile) -> (String, Vec<u8>) {
    let boundary = format!("avio-{}", uuid::Uuid::new_v4().simple());
    let name: String = file.name.chars().filter(|c| !matches!(c, '"' | '\r' | '\n' | '\\')).collect();
    let name = if name.is_empty() { "image".to_string() } else { name };
    let mime = if file.mime.starts_with("image/") { file.mime.as_str() } else { "application/octet-stream" };
    let mut body = Vec::with_capacity(file.bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"uploadfile[]\"; filename=\"{name}\"\r\n\
             Content-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&file.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ids_stay_one_path_segment() {
        assert_eq!(encode("u2i-4HzWMRUoAAVnH5i2CC8meg"), "u2i-4HzWMRUoAAVnH5i2CC8meg");
        assert_eq!(encode("../x?y"), "..%2Fx%3Fy");
    }

    #[test]
    fn the_upload_body_is_one_uploadfile_part() {
        let file = OutboundFile {
            kind: "image".into(),
            name: "ph\"oto.jpg".into(),
            mime: "image/jpeg".into(),
            bytes: bytes::Bytes::from_static(b"\xff\xd8jpeg"),
        };
        let (content_type, body) = multipart_image(&file);
        let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"uploadfile[]\"; filename=\"photo.jpg\""));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
    }
}
