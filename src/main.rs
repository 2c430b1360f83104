//! The `mcp-gateway` binary: parses the command line, loads the configuration and runs the
//! gateway. Everything else lives in the library.
//!
//! Exit codes: 0 success, 1 the gateway could not start or stopped with an error (for
//! `healthcheck`: not healthy, whatever the reason), 2 the configuration (or the command line)
//! is invalid.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mcp_gateway::admin::cli::AdminCommand;
use mcp_gateway::admin::Admin;
use mcp_gateway::config::{ensure_session_secret, load, render, LoadOptions, OutputFormat, Settings};
use mcp_gateway::core::tokens::GrantFilter;
use mcp_gateway::startup::Application;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// OAuth 2.1 authorization server and streaming reverse proxy for MCP services.
#[derive(Parser)]
#[command(name = "mcp-gateway", version, about)]
struct Cli {
    /// Config file layered over config/default.yaml (default: $MCP_CONFIG_PATH).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Development mode; also logs at debug level unless RUST_LOG is set.
    #[arg(long, global = true)]
    debug: bool,
    /// Address to listen on.
    #[arg(long, value_name = "H", global = true)]
    host: Option<String>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, value_name = "P", global = true)]
    port: Option<u16>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and print it with every secret redacted.
    CheckConfig {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
    /// Add a signing key to the shared store; running gateways pick it up, and tokens signed
    /// with older keys stay valid until they expire.
    RotateKeys,
    /// List or revoke people's grants (refresh-token families) in the shared store; running
    /// gateways refuse a revoked grant's tokens within a second.
    Grants {
        #[command(subcommand)]
        action: GrantsAction,
    },
    /// List or delete registered clients in the shared store.
    Clients {
        #[command(subcommand)]
        action: ClientsAction,
    },
    /// Ask a running gateway whether it is ready (`GET /ready`): exit 0 when it answers 2xx,
    /// 1 otherwise. For container health checks (the image has no curl).
    Healthcheck {
        /// URL to ask (default: `/ready` on this config's port, over loopback).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, value_name = "S", default_value_t = 5)]
        timeout: u64,
    },
}

/// Which grants: every option given must match.
#[derive(clap::Args)]
struct GrantSelection {
    /// An email, user id (`google_…`) or provider subject.
    #[arg(long, value_name = "EMAIL_OR_SUB")]
    user: Option<String>,
    /// A client id.
    #[arg(long, value_name = "ID")]
    client: Option<String>,
    /// A service id.
    #[arg(long, value_name = "ID")]
    service: Option<String>,
    /// A grant id.
    #[arg(long, value_name = "ID")]
    grant: Option<String>,
    /// Print JSON (as the admin API answers).
    #[arg(long)]
    json: bool,
}

impl GrantSelection {
    fn filter(&self) -> GrantFilter {
        GrantFilter {
            user: self.user.clone(),
            client: self.client.clone(),
            service: self.service.clone(),
            grant: self.grant.clone(),
        }
    }
}

#[derive(Subcommand)]
enum GrantsAction {
    /// List live grants.
    List(GrantSelection),
    /// Revoke the grants selected (at least one of --user, --client, --service, --grant).
    Revoke(GrantSelection),
}

#[derive(Subcommand)]
enum ClientsAction {
    /// List registered clients.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a registration, revoke its grants and forget the consents given to it.
    Delete {
        /// The client id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.debug { "debug" } else { "info" };

    let options = LoadOptions {
        config_file: cli.config,
        host: cli.host,
        port: cli.port,
        debug: cli.debug,
        ..LoadOptions::from_process_env()
    };
    if let Some(Command::Healthcheck { url: Some(url), timeout }) = &cli.command {
        return healthcheck(url, *timeout);
    }
    let settings = match load(&options) {
        Ok(settings) => settings,
        Err(e) if matches!(cli.command, Some(Command::Healthcheck { .. })) => {
            eprintln!("unhealthy: {e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    mcp_gateway::startup::init_logging(settings.log.format, level);
    match cli.command {
        Some(Command::CheckConfig { format: Format::Yaml }) => check_config(&settings, OutputFormat::Yaml),
        Some(Command::CheckConfig { format: Format::Json }) => check_config(&settings, OutputFormat::Json),
        Some(Command::RotateKeys) => rotate_keys(&settings),
        Some(Command::Grants { action: GrantsAction::List(sel) }) => {
            admin(&settings, AdminCommand::ListGrants(sel.filter()), sel.json)
        }
        Some(Command::Grants { action: GrantsAction::Revoke(sel) }) => {
            admin(&settings, AdminCommand::RevokeGrants(sel.filter()), sel.json)
        }
        Some(Command::Clients { action: ClientsAction::List { json } }) => {
            admin(&settings, AdminCommand::ListClients, json)
        }
        Some(Command::Clients { action: ClientsAction::Delete { id, json } }) => {
            admin(&settings, AdminCommand::DeleteClient(id), json)
        }
        Some(Command::Healthcheck { url: _, timeout }) => healthcheck(&local_ready_url(&settings), timeout),
        None => serve(settings),
    }
}

fn check_config(settings: &Settings, format: OutputFormat) -> ExitCode {
    match render(settings, format) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// The `grants` and `clients` commands: exit 0 with the answer on standard output, 1 when the
/// store cannot be used or the command fails.
fn admin(settings: &Settings, command: AdminCommand, json: bool) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async {
        let (actors, audit) =
            mcp_gateway::startup::admin_wiring(settings).await.map_err(|e| e.to_string())?;
        let admin = Admin { actors: &actors, audit: &audit, request_id: "cli".to_owned(), client_ip: None };
        mcp_gateway::admin::cli::run(&admin, command).await.map_err(|e| e.description().to_owned())
    });
    match result {
        Ok(answer) if json => {
            println!("{}", answer.to_json());
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            print!("{}", answer.to_text());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn rotate_keys(settings: &Settings) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(mcp_gateway::startup::rotate_keys(settings));
    // After the command's own output, so that its first line stays the answer.
    let succeeded = result.is_ok();
    let recorded = || {
        if let Err(e) = mcp_gateway::startup::record_admin_action(settings, "rotate_keys", succeeded) {
            eprintln!("not audited: {e}");
        }
    };
    match result {
        Ok(r) => {
            println!(
                "added signing key {} (signs from unix {}); key set: {}; retired: {}",
                r.kid,
                r.signs_from,
                r.kept.join(", "),
                if r.retired.is_empty() { "none".to_owned() } else { r.retired.join(", ") }
            );
            recorded();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            recorded();
            ExitCode::from(1)
        }
    }
}

fn serve(mut settings: Settings) -> ExitCode {
    ensure_session_secret(&mut settings);
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await.map_err(|e| format!("cannot start: {e}"))?;
        mcp_gateway::startup::stop_on_signals(app.shutdown_handle());
        app.run_until_stopped().await.map_err(|e| format!("server stopped: {e}"))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `/ready` of a gateway running with `settings` on this machine: the listen address, with a
/// wildcard address asked over loopback.
fn local_ready_url(settings: &Settings) -> String {
    let host = match settings.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" => "[::1]",
        h if h.contains(':') && !h.starts_with('[') => {
            return format!("http://[{h}]:{}/ready", settings.port)
        }
        h => h,
    };
    format!("http://{host}:{}/ready", settings.port)
}

fn healthcheck(url: &str, timeout: u64) -> ExitCode {
    let timeout = std::time::Duration::from_secs(timeout.max(1));
    let answer = actix_web::rt::System::new().block_on(async {
        let client = awc::Client::builder().timeout(timeout).finish();
        client.get(url).send().await.map(|res| res.status())
    });
    match answer {
        Ok(status) if status.is_success() => {
            println!("healthy: {url} answered {status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("unhealthy: {url} answered {status}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::from(1)
        }
    }
}
