//! `POST /send` and `GET /send/{job_id}` (SPEC 5.4).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, ApiJson, query_map};
use crate::domain::TransportMessage;
use crate::domain::message::peek_recipient;
use crate::pipeline::outbox::{self, Origin, SubmitError};

const WAIT_LIMIT: Duration = Duration::from_secs(30);

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Disabled => ApiError::code(StatusCode::FORBIDDEN, "outbox_disabled"),
            SubmitError::NotWhitelisted => ApiError::code(StatusCode::FORBIDDEN, "not_whitelisted"),
            SubmitError::Queue(e) => e.into(),
            SubmitError::Store(e) => e.into(),
        }
    }
}

/// Guards in SPEC order: 403 `outbox_disabled`, 403 `not_whitelisted`, then 422 for
/// the rest of the body; 202 with the job id, or the result with `?wait=true`.
pub async fn send(
    _: Admin,
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let wait = query_map(&parts).get("wait").is_some_and(|v| v == "true" || v == "1");
    let (channel, to) = match peek_recipient(&body) {
        Ok(recipient) => recipient,
        // Without a recipient the whitelist cannot be asked; the switch still can.
        Err(reason) => {
            outbox::check_guards(&state, crate::domain::Channel::Telegram, "").or_else(|e| match e {
                SubmitError::Disabled => Err(e),
                _ => Ok(()),
            })?;
            return Err(ApiError::invalid(reason.0));
        }
    };
    outbox::check_guards(&state, channel, &to).map_err(|e| {
        tracing::info!(event = "send_result", status = "skipped", reason = if matches!(e, SubmitError::Disabled) { "outbox_disabled" } else { "whitelist_miss" }, channel = %channel);
        state.metrics.send_result(channel.as_str(), "skipped", if matches!(e, SubmitError::Disabled) { "outbox_disabled" } else { "whitelist_miss" });
        ApiError::from(e)
    })?;
    let message = TransportMessage::parse(&body).map_err(|r| ApiError::invalid(r.0))?;
    if !state.access.tenant_exists(message.tenant) {
        return Err(ApiError::tenant_not_found());
    }
    let job_id = uuid::Uuid::new_v4().to_string();
    let waiter = wait.then(|| state.waiters.register(&job_id));
    let submitted = outbox::submit(&state, message, Origin::Api, None, Some(job_id.clone())).await?;
    if let Some(waiter) = waiter {
        match tokio::time::timeout(WAIT_LIMIT, waiter).await {
            Ok(Ok(result)) => {
                let mut body = result.to_json();
                body["job_id"] = json!(submitted.job_id);
                return Ok((StatusCode::OK, Json(body)).into_response());
            }
            _ => state.waiters.forget(&job_id),
        }
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"ok": true, "queued": true, "job_id": submitted.job_id}))).into_response())
}

pub async fn job(_: Admin, State(state): State<AppState>, Path(job_id): Path<String>) -> ApiResult<Json<Value>> {
    let row =
        state.store.outbox_job(job_id).await?.ok_or_else(|| ApiError::code(StatusCode::NOT_FOUND, "job_not_found"))?;
    let done = matches!(row.status.as_str(), "sent" | "failed" | "skipped");
    let result = done.then(|| outbox::JobResult { status: row.status.clone(), error: row.error.clone() }.to_json());
    Ok(Json(json!({
        "ok": true,
        "job_id": row.job_id,
        "tenant": row.tenant,
        "channel": row.channel,
        "to": row.recipient,
        "status": row.status,
        "error": row.error,
        "attempts": row.attempts,
        "result": result,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })))
}
