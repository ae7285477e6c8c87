//! Extractors: admin and public auth, the `tenant` parameter, and JSON bodies whose
//! rejections use SPEC's error shape.

use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::access::PubAccess;
use crate::domain::TenantId;

/// The query string as a map (first value wins).
pub fn query_map(parts: &Parts) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(query) = parts.uri.query()
        && let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
    {
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
    }
    map
}

/// The caller presented `ADMIN_TOKEN` (`X-Admin-Token` or `Authorization: Bearer`).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let presented = header("x-admin-token")
            .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")))
            .unwrap_or("");
        if state.access.is_admin(presented.trim()) { Ok(Admin) } else { Err(ApiError::InvalidAdminToken) }
    }
}

/// `?tenant=` on admin routes: 422 `invalid_tenant` when missing or not an integer.
pub struct TenantParam(pub TenantId);

impl FromRequestParts<AppState> for TenantParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        query_map(parts)
            .get("tenant")
            .and_then(|t| TenantId::parse(t))
            .map(TenantParam)
            .ok_or_else(ApiError::invalid_tenant)
    }
}

/// A `/pub/*` caller: `?tenant=` and `?k=` checked (422 `invalid_tenant`, then 401
/// `invalid_key`).
pub struct PubTenant {
    pub tenant: TenantId,
    pub access: PubAccess,
}

impl FromRequestParts<AppState> for PubTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let query = query_map(parts);
        let tenant = query.get("tenant").and_then(|t| TenantId::parse(t)).ok_or_else(ApiError::invalid_tenant)?;
        let key = query.get("k").map(String::as_str).unwrap_or("");
        let access = state.access.check_pub(tenant, key).ok_or(ApiError::InvalidKey)?;
        Ok(PubTenant { tenant, access })
    }
}

/// `axum::Json` with SPEC rejections: 413 for an oversized body, 422
/// `invalid_payload` with a `reason` for anything malformed.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::code(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    let reason = match &rejection {
        JsonRejection::MissingJsonContentType(_) => "expected_json_content_type".to_string(),
        JsonRejection::JsonSyntaxError(_) => "malformed_json".to_string(),
        JsonRejection::JsonDataError(e) => format!("schema: {}", e.body_text()),
        other => other.body_text(),
    };
    ApiError::InvalidPayload(reason)
}
