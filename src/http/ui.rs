//! The embedded web UI (SPEC 9): the pages `/admin`, `/cabinet`, `/connect/wa`,
//! `/connect/tg` and their assets from `web/`, compiled into the binary with
//! `rust-embed`, plus the few admin read routes only the panel uses. The UI's logic is
//! plain ES modules in `web/`; this module only serves them.
//!
//! Delivery rules: assets live under `/assets/<version>/…`, where the version is a
//! digest of every embedded file, so they are cached for a year and a new build
//! changes every URL; pages are `no-cache`. Every response carries a Content Security
//! Policy that allows no inline script, and `Referrer-Policy: no-referrer` so the
//! tenant key in a cabinet link never leaks to another site. Pages and assets are
//! gzip/brotli-compressed on the way out.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_embed::RustEmbed;
use serde_json::{Value, json};
use tower_http::compression::CompressionLayer;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, TenantParam, query_map};
use crate::domain::TenantId;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Web;

/// No inline script or style, nothing from another origin; images may be `blob:`
/// (the WhatsApp QR is fetched, then shown) or `data:`.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                       connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// The token pages carry where an asset URL needs the version.
const VERSION_MARK: &str = "{{v}}";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Pages by route, rendered once at start with the asset version filled in.
struct Ui {
    version: String,
    pages: HashMap<&'static str, String>,
}

/// Which page a route serves (file under `web/`).
const PAGES: &[(&str, &str)] = &[
    ("admin", "admin/index.html"),
    ("cabinet", "cabinet/index.html"),
    ("connect_wa", "connect/wa.html"),
    ("connect_tg", "connect/tg.html"),
    ("invalid", "invalid.html"),
];

impl Ui {
    fn load() -> Ui {
        let version = asset_version();
        let pages = PAGES
            .iter()
            .map(|(name, file)| {
                let html = Web::get(file)
                    .map(|f| String::from_utf8_lossy(&f.data).replace(VERSION_MARK, &version))
                    .unwrap_or_else(|| format!("<!doctype html><title>Avio</title><p>missing page {file}</p>"));
                (*name, html)
            })
            .collect();
        Ui { version, pages }
    }
}

/// A digest of every embedded file's path and content hash (FNV-1a, 64 bits): any
/// change to `web/` gives every asset a new URL.
fn asset_version() -> String {
    let mut names: Vec<String> = Web::iter().map(|n| n.into_owned()).collect();
    names.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        let digest = Web::get(&name).map(|f| f.metadata.sha256_hash()).unwrap_or_default();
        for byte in name.as_bytes().iter().chain(digest.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")[..12].to_string()
}

pub fn routes(_state: &AppState) -> Router<AppState> {
    let ui = Arc::new(Ui::load());
    let pages = Router::new()
        .route("/admin", get(admin_page))
        .route("/cabinet", get(cabinet_page))
        .route("/connect/wa", get(connect_wa_page))
        .route("/connect/tg", get(connect_tg_page))
        .route("/assets/{version}/{*path}", get(asset))
        .layer(Extension(ui))
        .layer(CompressionLayer::new());
    let admin = Router::new()
        .route("/admin/outbox/recent", get(outbox_recent))
        .route("/admin/avito/status", get(admin_avito_status))
        .route("/admin/avito/logout", post(admin_avito_logout));
    pages.merge(admin)
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn page(ui: &Ui, name: &str, status: StatusCode) -> Response {
    let html = ui.pages.get(name).cloned().unwrap_or_default();
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(headers);
    response
}

async fn admin_page(Extension(ui): Extension<Arc<Ui>>) -> Response {
    page(&ui, "admin", StatusCode::OK)
}

/// A client page opens only with a key that grants its tenant; otherwise the
/// "link is invalid" page, which names no tenant.
fn client_page(ui: &Ui, state: &AppState, parts: &Parts, name: &str) -> Response {
    let query = query_map(parts);
    let tenant = query.get("tenant").and_then(|t| TenantId::parse(t));
    let key = query.get("k").map(String::as_str).unwrap_or("");
    match tenant.and_then(|tenant| state.access.check_pub(tenant, key)) {
        Some(_) => page(ui, name, StatusCode::OK),
        None => page(ui, "invalid", StatusCode::UNAUTHORIZED),
    }
}

async fn cabinet_page(Extension(ui): Extension<Arc<Ui>>, State(state): State<AppState>, parts: Parts) -> Response {
    client_page(&ui, &state, &parts, "cabinet")
}

async fn connect_wa_page(Extension(ui): Extension<Arc<Ui>>, State(state): State<AppState>, parts: Parts) -> Response {
    client_page(&ui, &state, &parts, "connect_wa")
}

async fn connect_tg_page(Extension(ui): Extension<Arc<Ui>>, State(state): State<AppState>, parts: Parts) -> Response {
    client_page(&ui, &state, &parts, "connect_tg")
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /assets/<version>/<path>`: a year of caching for the current version; an
/// old version's URL still answers (a page loaded before an upgrade), uncached.
async fn asset(
    Extension(ui): Extension<Arc<Ui>>,
    Path((version, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    // Pages are served only through their routes (they need the version filled in).
    let file = if path.ends_with(".html") { None } else { Web::get(&path) };
    let Some(file) = file else {
        let mut response = (StatusCode::NOT_FOUND, "not found").into_response();
        security_headers(response.headers_mut());
        return response;
    };
    let digest = file.metadata.sha256_hash();
    let etag = format!("\"{}\"", digest[..12].iter().map(|b| format!("{b:02x}")).collect::<String>());
    let cache = if version == ui.version { IMMUTABLE } else { "no-cache" };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { file.data.into_owned().into_response() };
    let out = response.headers_mut();
    if !fresh {
        out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&path)));
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, etag);
    }
    security_headers(out);
    response
}

const RECENT_DEFAULT: usize = 50;
const RECENT_MAX: usize = 200;

/// `GET /admin/outbox/recent?status=failed[,skipped]&tenant=&limit=`: the latest
/// outbox jobs with those results (default `failed`; `status=all` for every job).
async fn outbox_recent(_: Admin, State(state): State<AppState>, parts: Parts) -> ApiResult<Json<Value>> {
    let query = query_map(&parts);
    let statuses: Vec<String> = match query.get("status").map(|s| s.trim()) {
        None | Some("") => vec!["failed".into()],
        Some("all") => Vec::new(),
        Some(list) => list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
    };
    let tenant = match query.get("tenant").map(|t| t.trim()).filter(|t| !t.is_empty()) {
        None => None,
        Some(raw) => Some(TenantId::parse(raw).ok_or_else(ApiError::invalid_tenant)?),
    };
    let limit = match query.get("limit") {
        None => RECENT_DEFAULT,
        Some(raw) => raw.trim().parse::<usize>().map_err(|_| ApiError::invalid("invalid_limit"))?.clamp(1, RECENT_MAX),
    };
    let jobs = state.store.recent_outbox_jobs(statuses, tenant, limit).await?;
    Ok(Json(json!({"ok": true, "jobs": jobs})))
}

fn require_tenant(state: &AppState, tenant: TenantId) -> ApiResult<()> {
    if state.access.tenant_exists(tenant) { Ok(()) } else { Err(ApiError::tenant_not_found()) }
}

/// `GET /admin/avito/status?tenant=`: what the cabinet sees, for the agency.
async fn admin_avito_status(
    _: Admin,
    State(state): State<AppState>,
    TenantParam(tenant): TenantParam,
) -> ApiResult<Json<Value>> {
    require_tenant(&state, tenant)?;
    let mut status = state.avito.status(tenant).await;
    if let Value::Object(map) = &mut status {
        map.insert("ok".into(), Value::Bool(true));
        map.insert("tenant".into(), json!(tenant));
    }
    Ok(Json(status))
}

/// `POST /admin/avito/logout?tenant=`: forgets the tenant's Avito tokens.
async fn admin_avito_logout(
    _: Admin,
    State(state): State<AppState>,
    TenantParam(tenant): TenantParam,
) -> ApiResult<Json<Value>> {
    require_tenant(&state, tenant)?;
    state.avito.logout(tenant).await?;
    Ok(Json(json!({"ok": true, "tenant": tenant})))
}
