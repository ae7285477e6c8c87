//! Sending a reply into an Avito chat: text split to Avito's 1000-character limit,
//! images uploaded then sent by id, and the chat marked read afterwards.

use std::future::Future;
use std::time::Duration;

use super::api::ApiFailure;
use super::text::{MAX_MESSAGE_CHARS, split_text};
use super::{Avito, AvitoError};
use crate::channels::{OutboundFile, OutboundMessage, SendError, SendReceipt};
use crate::domain::TenantId;

/// How long a sent part is remembered, so a retried job does not send it again.
const SENT_PART_TTL: Duration = Duration::from_secs(24 * 3600);

fn is_image(file: &OutboundFile) -> bool {
    file.kind == "image" || file.mime.starts_with("image/")
}

impl Avito {
    /// Delivers an outbox message. `to` is the chat id; `me` or empty means the
    /// tenant's last chat (Avito has no "new chat": only replies).
    pub async fn send(&self, tenant: TenantId, message: &OutboundMessage) -> Result<SendReceipt, SendError> {
        let chat = match message.to.trim() {
            "" | "me" => self.last_chat(tenant).await.map_err(|e| e.send_error(""))?.ok_or(SendError::MissingChat)?,
            to => to.to_string(),
        };
        let parts = message.text.as_deref().map(|t| split_text(t, MAX_MESSAGE_CHARS)).unwrap_or_default();
        let (images, others): (Vec<&OutboundFile>, Vec<&OutboundFile>) =
            message.files.iter().partition(|f| is_image(f));
        for file in &others {
            // Avito's messenger API sends text and images only.
            tracing::warn!(event = "avito_attachment_skipped", tenant = %tenant, job_id = %message.job_id,
                kind = %file.kind, reason = "only_images_supported");
        }
        if parts.is_empty() && images.is_empty() {
            return Err(SendError::Permanent("avito sends only text and images".into()));
        }
        let api = &self.api;
        let chat_ref = chat.as_str();
        let mut first_id = None;
        for (idx, part) in parts.iter().enumerate() {
            let part = part.as_str();
            let id = self
                .send_part(tenant, &message.job_id, &format!("t{idx}"), |token, account| async move {
                    api.send_text(&token, &account, chat_ref, part).await
                })
                .await
                .map_err(|e| e.send_error(&chat))?;
            first_id.get_or_insert(id);
        }
        for (idx, file) in images.into_iter().enumerate() {
            let id = self
                .send_part(tenant, &message.job_id, &format!("i{idx}"), |token, account| async move {
                    let image_id = api.upload_image(&token, &account, file).await?;
                    api.send_image(&token, &account, chat_ref, &image_id).await
                })
                .await
                .map_err(|e| e.send_error(&chat))?;
            first_id.get_or_insert(id);
        }
        // The reply is delivered; a failed read mark only leaves the chat looking unread.
        if let Err(e) =
            self.authed(tenant, |token, account| async move { api.mark_read(&token, &account, chat_ref).await }).await
        {
            tracing::warn!(event = "avito_mark_read_failed", tenant = %tenant, status = %e.status_text());
        }
        tracing::info!(event = "avito_sent", tenant = %tenant, peer = %chat, parts = parts.len(),
            images = message.files.len() - others.len());
        Ok(SendReceipt { provider_message_id: first_id })
    }

    /// Sends one part unless an earlier attempt of the same job already did: a job
    /// retried after a partial failure must not repeat what the lead already got.
    async fn send_part<F, Fut>(&self, tenant: TenantId, job_id: &str, part: &str, call: F) -> Result<String, AvitoError>
    where
        F: Fn(String, String) -> Fut,
        Fut: Future<Output = Result<String, ApiFailure>>,
    {
        let key = format!("avito:sent:{tenant}:{job_id}:{part}");
        if let Some(id) = self.queues.kv_get(&key).await? {
            return Ok(String::from_utf8_lossy(&id).into_owned());
        }
        let id = self.authed(tenant, call).await?;
        self.queues.kv_set(&key, id.as_bytes(), Some(SENT_PART_TTL)).await?;
        Ok(id)
    }
}
