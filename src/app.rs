//! `Application::build(config)`: opens the stores, loads credentials, starts the
//! background components and binds the HTTP listener. `main` and the tests build the
//! same application; nothing is global, so two apps can run in one process.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use std::collections::HashMap;

use crate::access::Access;
use crate::bot::Bot;
use crate::channels::simulator::{Simulator, SimulatorFactory};
use crate::channels::{ChannelEvent, ChannelRegistry, DriverFactory};
use crate::config::Config;
use crate::dialog::Dialogs;
use crate::domain::{Channel, Whitelist};
use crate::guardrails::Guardrails;
use crate::http;
use crate::metrics::Metrics;
use crate::pipeline::outbox::JobWaiters;
use crate::pipeline::{self, BotHook, Wakers};
use crate::queue::Queues;
use crate::store::{Store, TenantFiles, fsutil};
use crate::tenants::Tenants;

/// Everything a handler or worker may touch; every field is a cheap handle.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub files: TenantFiles,
    pub queues: Queues,
    pub access: Access,
    pub tenants: Tenants,
    pub dialogs: Dialogs,
    pub metrics: Arc<Metrics>,
    pub guardrails: Arc<Guardrails>,
    pub whitelist: Arc<Whitelist>,
    pub channels: Arc<ChannelRegistry>,
    pub simulator: Arc<Simulator>,
    pub bot: Arc<dyn BotHook>,
    pub waiters: Arc<JobWaiters>,
    pub wake: Arc<Wakers>,
    /// Outbound HTTP (attachments, LLM, Avito): one pool for the process.
    pub http_client: reqwest::Client,
    /// Avito tokens, connection and sends, shared by the driver, handlers and poller.
    pub avito: crate::channels::avito::Avito,
    /// Every tenant's Telegram session (login routes, status, the driver).
    pub telegram: Arc<crate::channels::telegram::TelegramHub>,
    /// Every tenant's WhatsApp session (routes, status, the driver).
    pub whatsapp: crate::channels::whatsapp::WhatsApp,
    pub cancel: CancellationToken,
}

/// Parts a caller may supply instead of the defaults: tests inject a recording
/// channel driver or a bot this way, never through a branch in production code.
#[derive(Default)]
pub struct Extensions {
    pub drivers: Vec<(Channel, Arc<dyn DriverFactory>)>,
    pub bot: Option<Arc<dyn BotHook>>,
    /// Opens Telegram accounts instead of grammers (tests script them).
    pub telegram_accounts: Option<Arc<dyn crate::channels::telegram::AccountFactory>>,
}

pub struct Application {
    listener: TcpListener,
    port: u16,
    state: AppState,
    components: JoinSet<()>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with(config, Extensions::default()).await
    }

    pub async fn build_with(config: Config, extensions: Extensions) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        let data_dir = &config.data_dir;
        fsutil::ensure_private_dir(data_dir).with_context(|| format!("create data dir {}", data_dir.display()))?;
        fsutil::ensure_private_dir(&data_dir.join("tenants")).context("create tenants dir")?;
        fsutil::ensure_private_dir(&config.tg_sessions_dir).context("create TG_SESSIONS_DIR")?;

        let store = Store::open(&data_dir.join("avio.db")).context("open avio.db")?;
        let queues = Queues::open(&data_dir.join("queues.redb")).context("open queues.redb")?;
        let files = TenantFiles::new(data_dir);
        let access =
            Access::load(config.clone(), store.clone(), files.clone()).await.context("load keys and tokens")?;
        let tenants = Tenants::new(store.clone(), files.clone(), access.clone());

        let simulator = Simulator::new();
        let mut factories: HashMap<Channel, Arc<dyn DriverFactory>> = HashMap::new();
        factories.insert(Channel::Simulator, Arc::new(SimulatorFactory(simulator.clone())));
        for (channel, factory) in extensions.drivers {
            factories.insert(channel, factory);
        }
        let (events_tx, events_rx) = tokio::sync::mpsc::channel::<ChannelEvent>(1024);
        let http_client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("avio/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("build the HTTP client")?;
        let avito = crate::channels::avito::Avito::new(
            config.clone(),
            http_client.clone(),
            tenants.clone(),
            queues.clone(),
            access.clone(),
        );
        // An injected Avito driver (tests) wins over the real one.
        factories
            .entry(Channel::Avito)
            .or_insert_with(|| Arc::new(crate::channels::avito::AvitoFactory(avito.clone())));
        // Without TELEGRAM_API_ID/HASH the hub has no accounts and answers tg_unavailable.
        let telegram = {
            use crate::channels::telegram::{AccountFactory, TelegramHub, Timing, grammers::GrammersFactory};
            let accounts: Option<Arc<dyn AccountFactory>> = config.telegram.as_ref().map(|app| {
                extensions.telegram_accounts.clone().unwrap_or_else(|| Arc::new(GrammersFactory::new(app.clone())))
            });
            let hub = TelegramHub::new(
                accounts,
                config.tg_sessions_dir.clone(),
                data_dir.to_path_buf(),
                events_tx.clone(),
                Timing::default(),
            );
            factories.entry(Channel::Telegram).or_insert_with(|| hub.clone() as Arc<dyn DriverFactory>);
            hub
        };
        let metrics = Arc::new(Metrics::new());
        // An injected WhatsApp driver (tests) wins over the browser sessions.
        let whatsapp = crate::channels::whatsapp::WhatsApp::new(
            &config,
            queues.clone(),
            files.clone(),
            metrics.clone(),
            events_tx.clone(),
        );
        factories.entry(Channel::Whatsapp).or_insert_with(|| whatsapp.factory());
        let bot = Arc::new(Bot::new(&config, http_client.clone()));
        let state = AppState {
            whitelist: Arc::new(Whitelist::new(&config.outbox_whitelist)),
            config: config.clone(),
            store,
            files,
            dialogs: Dialogs::new(queues.clone()),
            queues,
            access,
            tenants,
            metrics,
            guardrails: Arc::new(Guardrails::new()),
            channels: Arc::new(ChannelRegistry::new(factories, events_tx)),
            simulator,
            bot: extensions.bot.unwrap_or_else(|| bot.clone()),
            waiters: Arc::new(JobWaiters::default()),
            wake: Arc::new(Wakers::default()),
            http_client,
            avito,
            telegram,
            whatsapp,
            cancel: CancellationToken::new(),
        };

        let listener = TcpListener::bind(config.bind).await.with_context(|| format!("bind {} (BIND)", config.bind))?;
        let port = listener.local_addr()?.port();

        let mut components = JoinSet::new();
        spawn_component(&mut components, &state, "inbox_worker", pipeline::inbox::run);
        spawn_component(&mut components, &state, "outbox_worker", pipeline::outbox::run);
        spawn_component(&mut components, &state, "bot_worker", move |state| crate::bot::run(state, bot.clone()));
        spawn_component(&mut components, &state, "avito_poller", crate::channels::avito::poller::run);
        spawn_component(&mut components, &state, "catalog_worker", crate::catalog::worker::run);
        // Authorized Telegram sessions come back on their own; each tenant in its own task.
        tokio::spawn({
            let hub = state.telegram.clone();
            async move { hub.restore_all().await }
        });
        // WhatsApp sessions that were ready come back from their profiles.
        state.whatsapp.restore_at_boot(state.access.tenant_ids());
        let events_rx = Arc::new(tokio::sync::Mutex::new(events_rx));
        spawn_component(&mut components, &state, "channel_events", move |state| {
            pipeline::channel_events(state, events_rx.clone())
        });
        spawn_component(&mut components, &state, "queue_sweeper", |state| async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tick.tick().await;
                if let Err(e) = state.queues.sweep().await {
                    tracing::warn!(event = "queue_sweep_failed", error = %e);
                }
            }
        });

        Ok(Application { listener, port, state, components })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token stops the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.cancel.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains requests, stops the
    /// components and makes the queue store durable.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        let cancel = self.state.cancel.clone();
        let router = http::router(self.state.clone());
        notify_systemd_ready(&self.state);
        tracing::info!(event = "listening", addr = %self.listener.local_addr()?);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(cancel.clone().cancelled_owned())
            .await
            .context("serve http")?;
        cancel.cancel();
        while self.components.join_next().await.is_some() {}
        self.state.channels.stop_all().await;
        self.state.telegram.stop_all().await;
        // Graceful browser close: the profile is flushed and its lock removed.
        self.state.whatsapp.shutdown().await;
        self.state.queues.flush().await.context("flush queue store")?;
        tracing::info!(event = "stopped");
        Ok(())
    }
}

/// Runs a long-lived component until shutdown, restarting it (after a pause) when it
/// panics or returns, so one failing part never takes the daemon down.
pub fn spawn_component<F, Fut>(set: &mut JoinSet<()>, state: &AppState, name: &'static str, make: F)
where
    F: Fn(AppState) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let state = state.clone();
    set.spawn(async move {
        let cancel = state.cancel.clone();
        loop {
            let run = tokio::spawn(make(state.clone()));
            let abort = run.abort_handle();
            tokio::select! {
                _ = cancel.cancelled() => {
                    abort.abort();
                    return;
                }
                outcome = run => {
                    match outcome {
                        Err(e) if e.is_panic() => tracing::error!(event = "component_panicked", component = name),
                        _ => tracing::warn!(event = "component_stopped", component = name),
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
}

/// `Type=notify`: READY after bind and migrations, then watchdog pings at half the
/// interval systemd asked for, each only after both stores took a write: a daemon
/// whose storage hangs stops pinging and systemd restarts it. Outside systemd this
/// does nothing.
fn notify_systemd_ready(state: &AppState) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    if let Some(interval) = sd_notify::watchdog_enabled() {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tokio::select! {
                    _ = state.cancel.cancelled() => break,
                    _ = tick.tick() => {
                        let probes = async { tokio::join!(state.store.probe_write(), state.queues.probe_write()) };
                        match tokio::time::timeout(interval / 2, probes).await {
                            Ok((Ok(()), Ok(()))) => { let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]); }
                            _ => tracing::error!(event = "watchdog_skipped", reason = "a store did not take a write"),
                        }
                    }
                }
            }
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        });
    }
}
