//! WhatsApp session routes: `/pub/wa/start|status|logout` for the cabinet (SPEC 4),
//! `GET /health/wa?tenant=`, and the admin routes behind `avioctl wa …`. Thin: the
//! session manager (`channels::whatsapp::WhatsApp`) does the work.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, PubTenant, query_map};
use crate::channels::whatsapp::{State as WaState, WaError};
use crate::domain::TenantId;

fn start_error(e: WaError) -> ApiError {
    match e {
        WaError::MaxSessions(max) => {
            ApiError::code(StatusCode::SERVICE_UNAVAILABLE, "wa_max_sessions").with("max_sessions", max)
        }
        other => ApiError::internal(other),
    }
}

/// `GET|POST /pub/wa/start`: `{ok, state}`; 503 `wa_max_sessions` past the cap.
pub async fn pub_start(State(state): State<AppState>, caller: PubTenant) -> ApiResult<Json<Value>> {
    let wa_state = state.whatsapp.start(caller.tenant).map_err(start_error)?;
    tracing::info!(event = "wa_start_requested", tenant = %caller.tenant, state = wa_state.as_str());
    Ok(Json(json!({"ok": true, "state": wa_state})))
}

/// `GET /pub/wa/status`: `{ok, ready, qr, state, qr_id, me}`. With no session in this
/// process, an external provider's `ready` webhook says the account is connected.
pub async fn pub_status(State(state): State<AppState>, caller: PubTenant) -> ApiResult<Json<Value>> {
    let mut status = state.whatsapp.public_status(caller.tenant);
    if status["state"] == "stopped"
        && let Some(ready) = crate::channels::qr::external_ready(&state.queues, caller.tenant).await?
    {
        status["ready"] = json!(true);
        status["state"] = json!("ready");
        status["me"] = match ready.get("me") {
            Some(Value::String(me)) => json!(me),
            Some(Value::Number(me)) => json!(me.to_string()),
            _ => Value::Null,
        };
    }
    Ok(Json(status))
}

/// `POST /pub/wa/logout`: the only way the tenant's state directory is reset.
pub async fn pub_logout(State(state): State<AppState>, caller: PubTenant) -> ApiResult<Json<Value>> {
    state.whatsapp.logout(caller.tenant).await.map_err(ApiError::internal)?;
    crate::channels::qr::forget_ready(&state.queues, caller.tenant).await?;
    tracing::info!(event = "wa_logout", tenant = %caller.tenant);
    Ok(Json(json!({"ok": true, "state": WaState::LoggedOut})))
}

/// `GET /health/wa?tenant=`: 200 while ready, 503 otherwise.
pub async fn health(_: Admin, State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let tenant = known_tenant(&state, &parts)?;
    let status = state.whatsapp.status(tenant);
    let ready = status.state == WaState::Ready;
    let body = json!({"ok": ready, "tenant": tenant, "state": status.state, "me": status.me,
        "last_error": status.last_error});
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((code, Json(body)).into_response())
}

fn known_tenant(state: &AppState, parts: &Parts) -> ApiResult<TenantId> {
    let tenant =
        query_map(parts).get("tenant").and_then(|t| TenantId::parse(t)).ok_or_else(ApiError::invalid_tenant)?;
    if !state.access.tenant_exists(tenant) {
        return Err(ApiError::tenant_not_found());
    }
    Ok(tenant)
}

/// `?tenant=N` or `?all=true` on the admin routes.
enum Target {
    One(TenantId),
    All,
}

fn target(state: &AppState, parts: &Parts) -> ApiResult<Target> {
    let query = query_map(parts);
    if query.get("all").is_some_and(|v| v == "true" || v == "1") {
        return Ok(Target::All);
    }
    known_tenant(state, parts).map(Target::One)
}

/// `GET /admin/wa/status[?tenant=N]`: every known session, or one.
pub async fn admin_status(_: Admin, State(state): State<AppState>, parts: Parts) -> ApiResult<Json<Value>> {
    let tenants = match query_map(&parts).get("tenant") {
        Some(_) => vec![known_tenant(&state, &parts)?],
        None => state.whatsapp.known_tenants().await,
    };
    let sessions: Vec<Value> = tenants.into_iter().map(|t| state.whatsapp.admin_status(t)).collect();
    Ok(Json(json!({"ok": true, "max_sessions": state.config.wa_max_sessions, "sessions": sessions})))
}

/// `POST /admin/wa/up?tenant=N|all=true`: starts sessions (all: every tenant with a
/// profile on disk).
pub async fn admin_up(_: Admin, State(state): State<AppState>, parts: Parts) -> ApiResult<Json<Value>> {
    let tenants = match target(&state, &parts)? {
        Target::One(tenant) => vec![tenant],
        Target::All => state.whatsapp.known_tenants().await,
    };
    let mut results = Vec::new();
    for tenant in tenants {
        let result = match state.whatsapp.start(tenant) {
            Ok(wa_state) => json!({"tenant": tenant, "ok": true, "state": wa_state}),
            Err(WaError::MaxSessions(max)) => {
                json!({"tenant": tenant, "ok": false, "error": "wa_max_sessions", "max_sessions": max})
            }
            Err(e) => return Err(ApiError::internal(e)),
        };
        results.push(result);
    }
    let ok = results.iter().all(|r| r["ok"] == true);
    if !ok && results.len() == 1 {
        return Err(ApiError::code(StatusCode::SERVICE_UNAVAILABLE, "wa_max_sessions")
            .with("max_sessions", state.config.wa_max_sessions));
    }
    Ok(Json(json!({"ok": ok, "results": results})))
}

/// `POST /admin/wa/down?tenant=N|all=true`: stops browsers; the state stays, and the
/// session no longer comes back at boot.
pub async fn admin_down(_: Admin, State(state): State<AppState>, parts: Parts) -> ApiResult<Json<Value>> {
    let tenants = match target(&state, &parts)? {
        Target::One(tenant) => vec![tenant],
        Target::All => state.whatsapp.running(),
    };
    let mut results = Vec::new();
    for tenant in tenants {
        let stopped = state.whatsapp.stop(tenant, true).await;
        results.push(json!({"tenant": tenant, "ok": true, "was_running": stopped}));
    }
    Ok(Json(json!({"ok": true, "results": results})))
}

/// `POST /admin/wa/restart?tenant=N|all=true`.
pub async fn admin_restart(_: Admin, State(state): State<AppState>, parts: Parts) -> ApiResult<Json<Value>> {
    let tenants = match target(&state, &parts)? {
        Target::One(tenant) => vec![tenant],
        Target::All => state.whatsapp.running(),
    };
    let mut results = Vec::new();
    for tenant in tenants {
        let wa_state = state.whatsapp.restart(tenant).map_err(start_error)?;
        results.push(json!({"tenant": tenant, "ok": true, "state": wa_state}));
    }
    Ok(Json(json!({"ok": true, "results": results})))
}

/// `GET /admin/wa/logs?tenant=N[&after=SEQ]`: recent session events, oldest first.
pub async fn admin_logs(_: Admin, State(state): State<AppState>, parts: Parts) -> ApiResult<Json<Value>> {
    let tenant = known_tenant(&state, &parts)?;
    let after = query_map(&parts).get("after").and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
    let lines = state.whatsapp.logs(tenant, after);
    Ok(Json(json!({"ok": true, "tenant": tenant, "lines": lines})))
}
