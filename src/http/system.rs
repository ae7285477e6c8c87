//! Health, metrics and the `/internal/*` compat routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Admin;
use crate::domain::TenantId;
use crate::metrics::QueueLabels;

/// 200 while both stores accept writes, 503 otherwise.
pub async fn health(State(state): State<AppState>) -> Response {
    let (sqlite, redb) = tokio::join!(state.store.probe_write(), state.queues.probe_write());
    let describe = |ok: bool| if ok { "ok" } else { "unwritable" };
    let ok = sqlite.is_ok() && redb.is_ok();
    if let Err(e) = &sqlite {
        tracing::error!(event = "health_failed", store = "sqlite", error = %e);
    }
    if let Err(e) = &redb {
        tracing::error!(event = "health_failed", store = "redb", error = %e);
    }
    let body = json!({
        "ok": ok,
        "version": env!("CARGO_PKG_VERSION"),
        "sqlite": describe(sqlite.is_ok()),
        "redb": describe(redb.is_ok()),
    });
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

pub async fn metrics(_: Admin, State(state): State<AppState>) -> ApiResult<Response> {
    for depth in state.queues.depths().await? {
        let labels = QueueLabels { queue: depth.queue };
        state.metrics.queue_depth.get_or_create(&labels).set(depth.depth as i64);
        state.metrics.queue_dead.get_or_create(&labels).set(depth.dead as i64);
    }
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response())
}

/// `POST /internal/tenant/{tenant}/ensure`: the tenant's provider token, created once.
pub async fn ensure_provider_token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    query: axum::extract::RawQuery,
) -> ApiResult<Json<serde_json::Value>> {
    let from_query = query.0.as_deref().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
    });
    let presented = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(from_query)
        .unwrap_or_default();
    if !state.access.is_internal(&presented) {
        return Err(ApiError::code(StatusCode::UNAUTHORIZED, "invalid_token"));
    }
    let tenant = TenantId::parse(&tenant).ok_or_else(ApiError::invalid_tenant)?;
    if !state.access.tenant_exists(tenant) {
        return Err(ApiError::tenant_not_found());
    }
    let row = state.access.ensure_provider_token(tenant).await?;
    Ok(Json(json!({"ok": true, "tenant": tenant, "provider_token": row.token})))
}
