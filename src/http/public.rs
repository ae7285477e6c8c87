//! `/pub/*` routes for the client cabinet and the front.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, PubTenant};
use crate::tenants::TenantPatch;

/// The tenant's configuration for the front, every secret removed.
pub async fn settings_get(State(state): State<AppState>, caller: PubTenant) -> ApiResult<Json<Value>> {
    let doc = state.tenants.get(caller.tenant).await?;
    Ok(Json(json!({"ok": true, "cfg": doc.public_view()})))
}

/// Saves the brand passport, settings (links) and behavior; integrations are not
/// writable from here.
pub async fn settings_save(
    State(state): State<AppState>,
    caller: PubTenant,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let patch = TenantPatch::parse(&body, false).map_err(|e| ApiError::invalid(e.0))?;
    state.tenants.update(caller.tenant, patch).await?;
    Ok(Json(json!({"ok": true})))
}
