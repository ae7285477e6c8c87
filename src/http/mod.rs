//! The HTTP layer: thin handlers over the app's services. Routes are listed here.

pub mod error;
pub mod extract;

mod admin;
mod public;
mod system;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::queue::Queues;
use crate::store::{Store, TenantFiles};
use crate::tenants::Tenants;

/// JSON bodies above this answer 413.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// Everything a handler may touch; every field is a cheap handle.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub files: TenantFiles,
    pub queues: Queues,
    pub access: Access,
    pub tenants: Tenants,
    pub metrics: Arc<Metrics>,
    pub cancel: CancellationToken,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(system::health))
        .route("/metrics", get(system::metrics))
        .route("/internal/tenant/{tenant}/ensure", post(system::ensure_provider_token))
        .route("/admin/tenants", get(admin::list_tenants).post(admin::create_tenant))
        .route("/admin/tenants/{id}", get(admin::get_tenant).patch(admin::update_tenant))
        .route("/admin/key/get", get(admin::get_key))
        .route("/admin/key", post(admin::create_key).delete(admin::delete_key))
        .route("/admin/keys/list", get(admin::list_keys))
        .route("/admin/provider-token/{id}", get(admin::provider_token))
        .route("/pub/settings/get", get(public::settings_get))
        .route("/pub/settings/save", post(public::settings_save))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .with_state(state)
}
