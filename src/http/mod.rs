//! The HTTP layer: thin handlers over the app's services. Routes are listed here.

pub mod error;
pub mod extract;

mod admin;
mod avito;
mod backup;
mod catalog;
mod dialogs;
mod ops;
mod public;
mod send;
mod system;
mod telegram;
mod ui;
mod webhook;
mod whatsapp;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use crate::app::AppState;

/// JSON bodies above this answer 413.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

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
        .route("/webhook", post(webhook::whatsapp))
        .route("/webhook/telegram", post(webhook::telegram))
        .route("/send", post(send::send))
        .route("/send/{job_id}", get(send::job))
        .route("/admin/queues", get(ops::queues))
        .route("/admin/queues/dead/{id}/retry", post(ops::retry_dead))
        .route("/admin/guardrails", get(ops::guardrails))
        .route("/admin/state/reset", post(ops::reset_state))
        .route("/admin/simulator/message", post(ops::simulator_message_admin))
        .route("/admin/simulator/replies", get(ops::simulator_replies_admin))
        .route("/pub/simulator/message", post(ops::simulator_message_pub))
        .route("/pub/simulator/replies", get(ops::simulator_replies_pub))
        .route("/pub/wa/qr.svg", get(webhook::qr_svg))
        .route("/pub/dialogs", get(dialogs::list))
        .route("/pub/dialogs/{contact_id}", get(dialogs::show))
        .route("/pub/dialogs/{contact_id}/takeover", post(dialogs::takeover))
        .route("/pub/dialogs/{contact_id}/release", post(dialogs::release))
        .route("/pub/dialogs/{contact_id}/reply", post(dialogs::reply))
        .route("/pub/persona", get(dialogs::persona_get).post(dialogs::persona_save))
        .route("/admin/simulator/reset", post(ops::simulator_reset))
        .route("/admin/simulator/dialog", get(ops::simulator_dialog))
        .route("/pub/settings/get", get(public::settings_get))
        .route("/pub/settings/save", post(public::settings_save))
        .merge(catalog::routes(&state))
        .route("/connect/avito", get(avito::connect))
        .route("/connect/avito/callback", get(avito::callback))
        .route("/pub/avito/credentials", post(avito::credentials))
        .route("/pub/avito/status", get(avito::status))
        .route("/pub/avito/refresh", post(avito::refresh))
        .route("/pub/avito/logout", post(avito::logout))
        .route("/admin/avito/subscriptions", get(avito::subscriptions))
        .route("/admin/avito/unsubscribe", post(avito::unsubscribe))
        .route("/webhook/avito", post(avito::webhook))
        .merge(telegram::routes())
        .merge(whatsapp_routes())
        .merge(ui::routes(&state))
        .route("/admin/backup", post(backup::snapshot))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .with_state(state)
}

fn whatsapp_routes() -> Router<AppState> {
    Router::new()
        .route("/pub/wa/start", get(whatsapp::pub_start).post(whatsapp::pub_start))
        .route("/pub/wa/status", get(whatsapp::pub_status))
        .route("/pub/wa/logout", post(whatsapp::pub_logout))
        .route("/health/wa", get(whatsapp::health))
        .route("/admin/wa/status", get(whatsapp::admin_status))
        .route("/admin/wa/up", post(whatsapp::admin_up))
        .route("/admin/wa/down", post(whatsapp::admin_down))
        .route("/admin/wa/restart", post(whatsapp::admin_restart))
        .route("/admin/wa/logs", get(whatsapp::admin_logs))
}
