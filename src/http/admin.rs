//! Admin routes: tenants, tenant keys, provider tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, ApiJson, TenantParam};
use crate::domain::TenantId;
use crate::store::TenantKeyRow;
use crate::tenants::{NewTenant, TenantPatch};

fn path_tenant(raw: &str) -> ApiResult<TenantId> {
    TenantId::parse(raw).ok_or_else(ApiError::invalid_tenant)
}

fn require_tenant(state: &AppState, tenant: TenantId) -> ApiResult<()> {
    if state.access.tenant_exists(tenant) { Ok(()) } else { Err(ApiError::tenant_not_found()) }
}

pub async fn list_tenants(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let docs = state.tenants.list().await?;
    let tenants: Vec<Value> = docs.iter().map(|d| d.public_view()).collect();
    Ok(Json(json!({"ok": true, "tenants": tenants})))
}

pub async fn create_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = NewTenant::parse(&body).map_err(|e| ApiError::invalid(e.0))?;
    let doc = state.tenants.create(new).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "tenant": doc.public_view()}))))
}

pub async fn get_tenant(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = path_tenant(&id)?;
    require_tenant(&state, id)?;
    let doc = state.tenants.get(id).await?;
    Ok(Json(json!({"ok": true, "tenant": doc.public_view()})))
}

pub async fn update_tenant(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let id = path_tenant(&id)?;
    let patch = TenantPatch::parse(&body, true).map_err(|e| ApiError::invalid(e.0))?;
    let doc = state.tenants.update(id, patch).await?;
    Ok(Json(json!({"ok": true, "tenant": doc.public_view()})))
}

/// The client links a tenant key opens.
fn key_body(state: &AppState, row: &TenantKeyRow) -> Value {
    let base = &state.config.app_base_url;
    let (tenant, key) = (row.tenant, &row.key);
    json!({
        "ok": true,
        "tenant": tenant,
        "key": key,
        "created_at": row.created_at,
        "link": format!("{base}/connect/wa?tenant={tenant}&k={key}"),
        "cabinet_link": format!("{base}/cabinet?tenant={tenant}&k={key}"),
        "tg_link": format!("{base}/connect/tg?tenant={tenant}&k={key}"),
    })
}

/// `GET /admin/key/get`: the existing key, or a new one.
pub async fn get_key(
    _: Admin,
    State(state): State<AppState>,
    TenantParam(tenant): TenantParam,
) -> ApiResult<Json<Value>> {
    require_tenant(&state, tenant)?;
    let row = state.access.get_or_create_key(tenant).await?;
    Ok(Json(key_body(&state, &row)))
}

#[derive(serde::Deserialize, Default)]
pub struct SaveKey {
    key: Option<String>,
}

/// `POST /admin/key`: creates a key (or saves the given one); 409 while one exists.
pub async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    TenantParam(tenant): TenantParam,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    require_tenant(&state, tenant)?;
    let save: SaveKey = if body.iter().all(u8::is_ascii_whitespace) {
        SaveKey::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("malformed_json: {e}")))?
    };
    if let Some(key) = &save.key
        && (key.len() < 16
            || key.len() > 128
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(ApiError::invalid("key must be 16-128 characters of A-Z a-z 0-9 - _"));
    }
    let row = state.access.create_key(tenant, save.key).await?;
    Ok((StatusCode::CREATED, Json(key_body(&state, &row))))
}

pub async fn delete_key(
    _: Admin,
    State(state): State<AppState>,
    TenantParam(tenant): TenantParam,
) -> ApiResult<Json<Value>> {
    require_tenant(&state, tenant)?;
    let deleted = state.access.delete_key(tenant).await?;
    Ok(Json(json!({"ok": true, "tenant": tenant, "deleted": deleted})))
}

pub async fn list_keys(
    _: Admin,
    State(state): State<AppState>,
    TenantParam(tenant): TenantParam,
) -> ApiResult<Json<Value>> {
    require_tenant(&state, tenant)?;
    let keys: Vec<Value> = state
        .access
        .key(tenant)
        .await?
        .into_iter()
        .map(|row| json!({"key": row.key, "primary": true, "created_at": row.created_at}))
        .collect();
    Ok(Json(json!({
        "ok": true,
        "tenant": tenant,
        "keys": keys,
        "provider_token": state.access.provider_token(tenant),
    })))
}

/// `GET /admin/provider-token/{id}`: the tenant's provider token, created once.
pub async fn provider_token(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let tenant = path_tenant(&id)?;
    require_tenant(&state, tenant)?;
    let row = state.access.ensure_provider_token(tenant).await?;
    Ok(Json(json!({
        "ok": true,
        "tenant": tenant,
        "provider_token": row.token,
        "created_at": row.created_at,
    })))
}
