//! HTTP API tests: the real application on a random loopback port.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod outbox;
mod tenants;
mod webhooks;
