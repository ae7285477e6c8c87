//! Telegram login routes (`/pub/tg/*`), `/health/tg` and the admin equivalents that
//! `avioctl tg` uses. Thin: the session manager does the work; this maps its
//! outcomes to SPEC 4's codes.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, ApiJson, PubTenant, TenantParam};
use crate::channels::telegram::{LoginError, TgStatus};
use crate::domain::TenantId;

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::NotConfigured => {
                ApiError::code(StatusCode::BAD_GATEWAY, "tg_unavailable").with("reason", "not_configured")
            }
            LoginError::AlreadyAuthorized => ApiError::code(StatusCode::CONFLICT, "already_authorized"),
            LoginError::QrExpired => ApiError::code(StatusCode::BAD_GATEWAY, "qr_expired"),
            LoginError::QrNotFound => ApiError::code(StatusCode::NOT_FOUND, "qr_not_found"),
            LoginError::QrGone => ApiError::code(StatusCode::GONE, "qr_expired"),
            LoginError::BadPassword => ApiError::code(StatusCode::UNAUTHORIZED, "bad_password"),
            LoginError::NotWaiting2fa => ApiError::code(StatusCode::CONFLICT, "not_waiting_2fa"),
            LoginError::Unavailable(reason) => {
                ApiError::code(StatusCode::BAD_GATEWAY, "tg_unavailable").with("reason", reason)
            }
        }
    }
}

/// The status body plus `qr_url`, the PNG's address for the page that asked (its
/// own key included, so an `<img>` can load it).
fn status_body(state: &AppState, tenant: TenantId, key: Option<&str>, status: &TgStatus) -> Value {
    let mut body = status.to_json();
    let qr_url = status.qr.as_ref().map(|qr| {
        let mut query = vec![("tenant", tenant.to_string()), ("qr_id", qr.id.clone())];
        if let Some(key) = key {
            query.push(("k", key.to_string()));
        }
        let query = serde_urlencoded::to_string(query).unwrap_or_default();
        format!("{}/pub/tg/qr.png?{query}", state.config.app_base_url)
    });
    body["qr_url"] = json!(qr_url);
    body
}

fn key(query: &HashMap<String, String>) -> Option<&str> {
    query.get("k").map(String::as_str)
}

pub async fn start(
    auth: PubTenant,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let status = state.telegram.session(auth.tenant).start_login().await?;
    Ok(Json(status_body(&state, auth.tenant, key(&query), &status)))
}

pub async fn qr_png(
    auth: PubTenant,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let qr_id = query.get("qr_id").map(|q| q.trim()).unwrap_or("");
    if !state.telegram.configured() {
        return Err(LoginError::NotConfigured.into());
    }
    if qr_id.is_empty() {
        return Err(LoginError::QrNotFound.into());
    }
    let png = state.telegram.session(auth.tenant).qr_png(qr_id)?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png).into_response())
}

pub async fn status(
    auth: PubTenant,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let status = state.telegram.session(auth.tenant).poll_status()?;
    Ok(Json(status_body(&state, auth.tenant, key(&query), &status)))
}

#[derive(serde::Deserialize)]
pub struct PasswordBody {
    #[serde(default)]
    tenant: Option<Value>,
    #[serde(default)]
    password: Option<String>,
}

/// `POST /pub/tg/2fa`: `tenant` in the query or the body, the key in `?k=`.
pub async fn two_factor(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<Json<Value>> {
    let tenant = query
        .get("tenant")
        .and_then(|t| TenantId::parse(t))
        .or_else(|| body.tenant.as_ref().and_then(TenantId::from_json))
        .ok_or_else(ApiError::invalid_tenant)?;
    state.access.check_pub(tenant, key(&query).unwrap_or("")).ok_or(ApiError::InvalidKey)?;
    let password = body.password.filter(|p| !p.is_empty()).ok_or_else(|| ApiError::invalid("missing_password"))?;
    let status = state.telegram.session(tenant).submit_password(&password).await?;
    Ok(Json(status_body(&state, tenant, key(&query), &status)))
}

pub async fn logout(auth: PubTenant, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let status = state.telegram.session(auth.tenant).logout().await?;
    Ok(Json(status_body(&state, auth.tenant, None, &status)))
}

fn admin_status(state: &AppState, tenant: TenantId) -> ApiResult<TgStatus> {
    if !state.access.tenant_exists(tenant) {
        return Err(ApiError::tenant_not_found());
    }
    if !state.telegram.configured() {
        return Err(LoginError::NotConfigured.into());
    }
    // Status pages never create or start a session.
    Ok(state.telegram.existing(tenant).map(|s| s.status()).unwrap_or_default())
}

/// `GET /health/tg?tenant=`: 200 while the session is authorized, 503 otherwise.
pub async fn health(_: Admin, TenantParam(tenant): TenantParam, State(state): State<AppState>) -> ApiResult<Response> {
    let status = admin_status(&state, tenant)?;
    let code = if status.authorized() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = status.to_json();
    body["ok"] = json!(status.authorized());
    body["tenant"] = json!(tenant.get());
    Ok((code, Json(body)).into_response())
}

/// `GET /admin/tg/status?tenant=` (avioctl, admin panel).
pub async fn admin_status_route(
    _: Admin,
    TenantParam(tenant): TenantParam,
    State(state): State<AppState>,
) -> ApiResult<Json<Value>> {
    let status = admin_status(&state, tenant)?;
    let mut body = status.to_json();
    body["tenant"] = json!(tenant.get());
    Ok(Json(body))
}

/// `POST /admin/tg/logout?tenant=`.
pub async fn admin_logout(
    _: Admin,
    TenantParam(tenant): TenantParam,
    State(state): State<AppState>,
) -> ApiResult<Json<Value>> {
    admin_status(&state, tenant)?;
    let status = state.telegram.session(tenant).logout().await?;
    let mut body = status.to_json();
    body["tenant"] = json!(tenant.get());
    Ok(Json(body))
}

/// The Telegram routes, merged into the router by `http::router`.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/pub/tg/start", get(start))
        .route("/pub/tg/qr.png", get(qr_png))
        .route("/pub/tg/status", get(status))
        .route("/pub/tg/2fa", post(two_factor))
        .route("/pub/tg/logout", post(logout))
        .route("/health/tg", get(health))
        .route("/admin/tg/status", get(admin_status_route))
        .route("/admin/tg/logout", post(admin_logout))
}
