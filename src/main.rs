//! `avio`: the daemon. Thin: arguments → configuration → telemetry → application.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use avio::app::Application;
use avio::config::{self, Config};

#[derive(Parser)]
#[command(name = "avio", version, about = "Avio: the AI sales assistant daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Development mode: generate ADMIN_TOKEN and PUBLIC_KEY on first start and keep
        /// them in DATA_DIR (default ./data).
        #[arg(long)]
        dev: bool,
        /// Read variables from this env file (the environment wins).
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve { dev, env_file } = cli.command;
    let mut vars = match config::load_vars(env_file.as_deref()) {
        Ok(vars) => vars,
        Err(e) => return fail(&format!("{e:#}")),
    };
    let dev_secrets = if dev {
        match config::apply_dev_secrets(&mut vars) {
            Ok(secrets) => secrets,
            Err(e) => return fail(&format!("{e:#}")),
        }
    } else {
        None
    };
    let config = match Config::from_vars(&vars) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    avio::telemetry::init(config.log_format);
    if config.public_key.is_none() {
        tracing::warn!(
            event = "public_key_unset",
            hint = "compat mode: ADMIN_TOKEN is accepted as ?k= until PUBLIC_KEY is set"
        );
    }
    if let Some(secrets) = dev_secrets.filter(|s| s.newly_generated) {
        println!(
            "\nAvio is starting in development mode.\n  Admin panel:  {}\n  ADMIN_TOKEN:  {}\n  PUBLIC_KEY:   {}\n  (saved in {}; shown once)\n",
            config.admin_url(),
            secrets.admin_token,
            secrets.public_key,
            config.data_dir.join(config::DEV_SECRETS_FILE).display(),
        );
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("start the async runtime: {e}")),
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let admin_url = config.admin_url();
    let app = Application::build(config).await?;
    tracing::info!(event = "started", admin_url = %admin_url, port = app.port());
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(event = "shutdown_requested");
        shutdown.cancel();
    });
    app.run_until_stopped().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("avio: {message}");
    ExitCode::from(2)
}
