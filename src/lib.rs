//! Avio: a self-hosted AI sales assistant in one daemon.
//!
//! The crate map (see `docs/ARCHITECTURE.md` for how a message flows):
//! - [`config`]: configuration from the environment and env files.
//! - [`app`]: `Application::build(config)` wires stores, workers and the HTTP router.
//! - [`domain`]: pure types (ids, phone numbers, messages); no IO.
//! - [`store`]: SQLite and the per-tenant files; the only place that issues SQL.
//! - [`queue`]: the redb store; durable queues, TTL cache and dialog state.
//! - [`http`]: the thin HTTP layer and the one place that knows SPEC error bodies.
//! - [`pipeline`]: inbox and outbox workers; [`channels`]: the driver interface.
//! - [`catalog`]: price-list uploads, conversion jobs and the current catalog.
//! - [`bot`]: persona, LLM, catalog search, price guard, offline replies.
//! - [`dialog`]: sales state; [`guardrails`]: sliding-window health ratios.
//! - [`telemetry`] and [`metrics`]: logs and Prometheus series.
//! - [`access`]: tenant keys, `PUBLIC_KEY`, provider tokens.
//! - [`secrets`]: token generation and constant-time comparison.
//! - [`tenants`]: tenant creation and updates across the database and files.
//! - [`client`]: the typed admin client used by `avioctl` and the tests.
//! - `ops`: backup archives and restore, `avioctl diag`.

pub mod access;
pub mod app;
pub mod bot;
pub mod catalog;
pub mod channels;
pub mod client;
pub mod config;
pub mod dialog;
pub mod domain;
pub mod guardrails;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod queue;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod tenants;
