//! Downloads outbound attachments by URL: 15 s timeout and a size cap, enforced while
//! reading so an unbounded body is never buffered.

use std::time::Duration;

use futures_util::StreamExt;

use crate::channels::{OutboundFile, SendError};
use crate::domain::Attachment;

pub const TIMEOUT: Duration = Duration::from_secs(15);
pub const MAX_BYTES: u64 = 25 * 1024 * 1024;

pub async fn download(client: &reqwest::Client, attachment: &Attachment) -> Result<OutboundFile, SendError> {
    let url = attachment.url.as_deref().ok_or_else(|| SendError::Permanent("attachment_url_required".into()))?;
    let response = client
        .get(url)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| SendError::Transient(format!("attachment_download: {e}")))?;
    let status = response.status();
    if status.is_client_error() {
        return Err(SendError::Permanent(format!("attachment_unavailable: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(SendError::Transient(format!("attachment_download: HTTP {status}")));
    }
    if response.content_length().is_some_and(|n| n > MAX_BYTES) {
        return Err(SendError::Permanent("attachment_too_large".into()));
    }
    let header_mime = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| SendError::Transient(format!("attachment_download: {e}")))?;
        if body.len() as u64 + chunk.len() as u64 > MAX_BYTES {
            return Err(SendError::Permanent("attachment_too_large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    let name = attachment.name.clone().unwrap_or_else(|| {
        url.rsplit('/').next().and_then(|s| s.split('?').next()).filter(|s| !s.is_empty()).unwrap_or("file").to_string()
    });
    let mime = attachment.mime.clone().or(header_mime).unwrap_or_else(|| "application/octet-stream".into());
    let kind = if attachment.kind.is_empty() || attachment.kind == "file" {
        if mime.starts_with("image/") { "image".to_string() } else { "file".to_string() }
    } else {
        attachment.kind.clone()
    };
    Ok(OutboundFile { kind, name, mime, bytes: body.into() })
}
