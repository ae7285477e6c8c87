//! Telegram in-process: one user session per tenant, logged in by QR (and the 2FA
//! password), restored at start, receiving private messages into the inbox and
//! sending the outbox's messages (SPEC 6.1, 5.4).
//!
//! - [`account`]: the Avio-owned trait around one account; the seam tests script.
//! - [`manager`]: the login state machine, update loop, watchdog and sending; the
//!   `ChannelDriver` for `Channel::Telegram`.
//! - [`grammers`]: the production account on grammers-client (pinned).
//! - [`files`]: session files, their lock and archive; [`qr`]: the login QR;
//!   [`mapping`]: pure mappings to and from the pipeline's types.

pub mod account;
pub mod files;
pub mod grammers;
pub mod manager;
pub mod mapping;
pub mod qr;

pub use account::{AccountFactory, TelegramAccount};
pub use manager::{LoginError, LoginState, TelegramHub, TenantSession, TgStatus, Timing};
