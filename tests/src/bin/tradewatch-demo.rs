//! `tradewatch-demo run`: the whole stack on this machine with the demo data
//! (what `make run` does). `tradewatch-demo seed [--tariff URL] [--dispute URL]
//! [--dialogue URL]`: loads the demo data into a running stack (`make seed`).

use std::{path::PathBuf, process::ExitCode};

use tradewatch_e2e::{demo, launcher};

const USAGE: &str = "usage: tradewatch-demo [run [--var DIR] [--ports TARIFF,DISPUTE,DIALOGUE] | seed [--tariff URL] [--dispute URL] [--dialogue URL]]";

#[tokio::main]
async fn main() -> ExitCode {
    match real_main().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tradewatch-demo: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn real_main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| "run".into());
    let mut var_dir = PathBuf::from("var");
    let mut ports = launcher::Ports::default();
    let mut at = ports.endpoints();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--var" => var_dir = PathBuf::from(value),
            "--ports" => ports = launcher::Ports::parse(&value)?,
            "--tariff" => at.tariff = value,
            "--dispute" => at.dispute = value,
            "--dialogue" => at.dialogue = value,
            _ => anyhow::bail!("unexpected {flag}\n{USAGE}"),
        }
    }
    match command.as_str() {
        "run" => {
            let exe = std::env::current_exe()?;
            let bin_dir = exe.parent().map(PathBuf::from).unwrap_or_default();
            launcher::run(launcher::Options { bin_dir, var_dir, ports }).await
        }
        "seed" => {
            if demo::is_loaded(&at).await? {
                println!("The stack already holds data: nothing loaded.");
                return Ok(());
            }
            let loaded = demo::load(&demo::Dataset::load()?, &at).await?;
            println!("Loaded {loaded:?}");
            Ok(())
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}
