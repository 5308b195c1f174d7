//! `tradewatch-demo run`: the whole stack on this machine with the demo data
//! (what `make run` does; `--secure` for TLS and JWT auth, `make run-secure`).
//! `tradewatch-demo seed`: loads the demo data into a running stack (`make
//! seed`). `tradewatch-demo soak`: the stack under a bounded load (`make
//! soak`). `tradewatch-demo chaos`: the chaos drill on PostgreSQL (`make
//! chaos`). `tradewatch-demo token`: a development token with chosen scopes.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tradewatch_common::dev_identity::{DevIdentity, TokenSpec};
use tradewatch_e2e::{chaos, demo, launcher};

/// The Tradewatch stack with the real Canada–China record.
#[derive(Debug, Parser)]
#[command(name = "tradewatch-demo", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the four services (three on SQLite), load the demo data once, stop them all on Ctrl-C [default]
    Run {
        /// Where the databases and logs go
        #[arg(long, value_name = "DIR", default_value = "var")]
        var: PathBuf,
        /// The gRPC ports of the tariff, dispute, dialogue and relations services
        #[arg(long, value_name = "TARIFF,DISPUTE,DIALOGUE,RELATIONS", value_parser = parse_ports)]
        ports: Option<launcher::Ports>,
        /// TLS and JWT auth on, with development keys made in --identity
        #[arg(long)]
        secure: bool,
        /// Where the development CA, certificates and signing key are (made if missing)
        #[arg(long, value_name = "DIR", env = "TRADEWATCH_DEV_IDENTITY", default_value = "var/dev-identity")]
        identity: PathBuf,
    },
    /// Start the stack and put it under a bounded mixed load (`make soak`)
    Soak {
        /// How long the load lasts, in seconds
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Concurrent callers
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, value_name = "DIR", default_value = "var/soak")]
        var: PathBuf,
        #[arg(long, value_name = "TARIFF,DISPUTE,DIALOGUE,RELATIONS", value_parser = parse_ports)]
        ports: Option<launcher::Ports>,
    },
    /// The chaos drill (`make chaos`): four services × 2 replicas on PostgreSQL under load and faults, invariants checked at the end
    Chaos {
        /// How long the load and the faults last, in seconds
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// Concurrent callers
        #[arg(long, default_value_t = 8)]
        callers: usize,
        /// Seconds between one fault and the next
        #[arg(long, default_value_t = 15)]
        fault_every: u64,
        /// A PostgreSQL server where the drill may create (and then drops) three databases
        #[arg(
            long,
            value_name = "URL",
            env = "CHAOS_DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        database: String,
        /// The shell command that restarts that PostgreSQL server; empty leaves the fault out
        #[arg(long, value_name = "COMMAND", env = "CHAOS_PG_RESTART", default_value = "")]
        pg_restart: String,
        /// Where the replicas' logs and the report go
        #[arg(long, value_name = "DIR", default_value = "var/chaos")]
        var: PathBuf,
    },
    /// Print a development token for `run --secure`, signed with the key in --identity
    Token {
        /// Space-separated scopes, for example "tariff:read dispute:write"
        #[arg(long, default_value = "")]
        scopes: String,
        /// The token's subject: the actor its writes record
        #[arg(long, default_value = "developer")]
        subject: String,
        /// Minutes until it expires
        #[arg(long, default_value_t = 60)]
        minutes: i64,
        #[arg(long, value_name = "DIR", env = "TRADEWATCH_DEV_IDENTITY", default_value = "var/dev-identity")]
        identity: PathBuf,
    },
    /// Load the demo data into a running stack, unless it already holds data
    Seed {
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:50052")]
        tariff: String,
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:50051")]
        dispute: String,
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:50053")]
        dialogue: String,
    },
}

fn parse_ports(s: &str) -> Result<launcher::Ports, String> {
    launcher::Ports::parse(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = Command::Run {
        var: PathBuf::from("var"),
        ports: None,
        secure: false,
        identity: PathBuf::from("var/dev-identity"),
    };
    match real_main(cli.command.unwrap_or(default)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tradewatch-demo: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn real_main(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { var, ports, secure, identity } => {
            let exe = std::env::current_exe()?;
            let bin_dir = exe.parent().map(PathBuf::from).unwrap_or_default();
            let identity = if secure { Some(DevIdentity::open_or_create(&identity)?) } else { None };
            launcher::run(launcher::Options { bin_dir, var_dir: var, ports: ports.unwrap_or_default(), identity }).await
        }
        Command::Soak { seconds, concurrency, var, ports } => {
            let exe = std::env::current_exe()?;
            let bin_dir = exe.parent().map(PathBuf::from).unwrap_or_default();
            let opts = launcher::Options { bin_dir, var_dir: var, ports: ports.unwrap_or_default(), identity: None };
            launcher::soak(opts, std::time::Duration::from_secs(seconds), concurrency).await
        }
        Command::Chaos { seconds, callers, fault_every, database, pg_restart, var } => {
            let exe = std::env::current_exe()?;
            let bin_dir = exe.parent().map(PathBuf::from).unwrap_or_default();
            let opts = chaos::Options {
                bin_dir,
                var_dir: var,
                duration: std::time::Duration::from_secs(seconds),
                admin_url: database,
                pg_restart: Some(pg_restart).filter(|c| !c.trim().is_empty()),
                callers,
                fault_every: std::time::Duration::from_secs(fault_every.max(1)),
            };
            anyhow::ensure!(chaos::run(opts).await?, "an invariant did not hold (the table above says which)");
            Ok(())
        }
        Command::Token { scopes, subject, minutes, identity } => {
            anyhow::ensure!(
                identity.join("signing.key").exists(),
                "no development identity in {}: start `make run-secure` first (or pass --identity)",
                identity.display()
            );
            let scopes: Vec<&str> = scopes.split_whitespace().collect();
            let spec = TokenSpec { expires_in: minutes * 60, ..TokenSpec::new(&subject, &scopes) };
            println!("{}", DevIdentity { dir: identity }.issuer()?.token(&spec)?);
            Ok(())
        }
        Command::Seed { tariff, dispute, dialogue } => {
            let at = demo::Endpoints { tariff, dispute, dialogue, relations: String::new(), security: None };
            if demo::is_loaded(&at).await? {
                println!("The stack already holds data: nothing loaded.");
                return Ok(());
            }
            let loaded = demo::load(&demo::Dataset::load()?, &at).await?;
            println!("Loaded {loaded:?}");
            Ok(())
        }
    }
}
