//! Dialog state (SPEC 5.3): the stage of the sale, the facts collected, and whether
//! the bot is paused, under `sales_state:<tenant>:<contact>` in redb.

use serde::{Deserialize, Serialize};

use crate::domain::{TenantId, now_s};
use crate::queue::{QueueError, Queues};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    Greeting,
    Qualifying,
    Offering,
    Closing,
    HandedToHuman,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub interest: Option<String>,
    pub budget: Option<String>,
    pub timing: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SalesState {
    #[serde(default)]
    pub stage: Stage,
    #[serde(default)]
    pub facts: Facts,
    /// An operator took the dialog over; the bot is silent until released.
    #[serde(default)]
    pub takeover: bool,
    /// The account wrote from its phone or another app: silent until then (epoch s).
    #[serde(default)]
    pub paused_until: Option<i64>,
    /// The bot asked for a human (offline mode, complaint, request).
    #[serde(default)]
    pub needs_human: bool,
    #[serde(default)]
    pub updated_at: i64,
}

impl SalesState {
    pub fn bot_paused(&self, now: i64) -> bool {
        self.takeover || self.paused_until.is_some_and(|until| until > now)
    }
}

pub fn state_key(tenant: TenantId, contact_id: i64) -> String {
    format!("sales_state:{tenant}:{contact_id}")
}

#[derive(Clone)]
pub struct Dialogs {
    queues: Queues,
}

impl Dialogs {
    pub fn new(queues: Queues) -> Self {
        Self { queues }
    }

    pub async fn get(&self, tenant: TenantId, contact_id: i64) -> Result<SalesState, QueueError> {
        Ok(self
            .queues
            .state_get(&state_key(tenant, contact_id))
            .await?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }

    /// Applies `f` atomically and returns the new state.
    pub async fn update<F>(&self, tenant: TenantId, contact_id: i64, f: F) -> Result<SalesState, QueueError>
    where
        F: FnOnce(&mut SalesState) + Send + 'static,
    {
        let stored = self
            .queues
            .state_update(&state_key(tenant, contact_id), move |current| {
                let mut state: SalesState = current.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
                f(&mut state);
                state.updated_at = now_s();
                serde_json::to_value(&state).ok()
            })
            .await?;
        Ok(stored.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default())
    }

    /// Forgets the dialog's state; `false` when there was none.
    pub async fn reset(&self, tenant: TenantId, contact_id: i64) -> Result<bool, QueueError> {
        self.queues.state_delete(&state_key(tenant, contact_id)).await
    }
}
