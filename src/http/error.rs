//! `ApiError`: the one place that knows SPEC's error bodies and status codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::queue::QueueError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 401 `{"detail":"invalid_key"}` on `/pub/*`.
    InvalidKey,
    /// 401 `{"detail":"invalid_admin_token"}` on admin routes.
    InvalidAdminToken,
    /// 422 `invalid_payload` with a `reason`.
    InvalidPayload(String),
    /// Any other `{"ok":false,"error":code, ...extra}`.
    Code { status: StatusCode, code: &'static str, extra: Map<String, Value> },
    /// 500; the cause is logged once and never shown to the client.
    Internal(anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn code(status: StatusCode, code: &'static str) -> Self {
        ApiError::Code { status, code, extra: Map::new() }
    }

    /// Adds a field to a `Code` error's body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let ApiError::Code { extra, .. } = &mut self {
            extra.insert(key.to_string(), value.into());
        }
        self
    }

    pub fn invalid(reason: impl Into<String>) -> Self {
        ApiError::InvalidPayload(reason.into())
    }

    pub fn invalid_tenant() -> Self {
        ApiError::InvalidPayload("invalid_tenant".into())
    }

    pub fn tenant_not_found() -> Self {
        Self::code(StatusCode::NOT_FOUND, "tenant_not_found")
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::InvalidKey => (StatusCode::UNAUTHORIZED, Json(json!({"detail": "invalid_key"}))).into_response(),
            ApiError::InvalidAdminToken => {
                (StatusCode::UNAUTHORIZED, Json(json!({"detail": "invalid_admin_token"}))).into_response()
            }
            ApiError::InvalidPayload(reason) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"ok": false, "error": "invalid_payload", "reason": reason})),
            )
                .into_response(),
            ApiError::Code { status, code, extra } => {
                let mut body = Map::new();
                body.insert("ok".into(), Value::Bool(false));
                body.insert("error".into(), Value::String(code.into()));
                body.extend(extra);
                (status, Json(Value::Object(body))).into_response()
            }
            ApiError::Internal(e) => {
                tracing::error!(event = "http_internal_error", error = format!("{e:#}"));
                (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"ok": false, "error": "internal_error"})))
                    .into_response()
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TenantExists => ApiError::code(StatusCode::CONFLICT, "tenant_exists"),
            StoreError::TenantNotFound => ApiError::tenant_not_found(),
            StoreError::KeyAlreadyExists => ApiError::code(StatusCode::CONFLICT, "key_already_exists"),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        ApiError::Internal(e.into())
    }
}
