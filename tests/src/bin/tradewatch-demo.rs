//! `tradewatch-demo run`: the whole stack on this machine with the demo data
//! (what `make run` does). `tradewatch-demo seed`: loads the demo data into a
//! running stack (`make seed`).

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tradewatch_e2e::{demo, launcher};

/// The Tradewatch stack with the real Canada–China record.
#[derive(Debug, Parser)]
#[command(name = "tradewatch-demo", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the three services on SQLite, load the demo data once, stop them all on Ctrl-C [default]
    Run {
        /// Where the databases and logs go
        #[arg(long, value_name = "DIR", default_value = "var")]
        var: PathBuf,
        /// The gRPC ports of the tariff, dispute and dialogue services
        #[arg(long, value_name = "TARIFF,DISPUTE,DIALOGUE", value_parser = parse_ports)]
        ports: Option<launcher::Ports>,
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
    match real_main(cli.command.unwrap_or(Command::Run { var: PathBuf::from("var"), ports: None })).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tradewatch-demo: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn real_main(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { var, ports } => {
            let exe = std::env::current_exe()?;
            let bin_dir = exe.parent().map(PathBuf::from).unwrap_or_default();
            launcher::run(launcher::Options { bin_dir, var_dir: var, ports: ports.unwrap_or_default() }).await
        }
        Command::Seed { tariff, dispute, dialogue } => {
            let at = demo::Endpoints { tariff, dispute, dialogue };
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
