//! The command line every service binary shares:
//! `<service>-service [serve|migrate] [--config FILE]`.

use std::{future::Future, path::PathBuf, process::ExitCode};

use crate::{
    config::{ServiceInfo, Settings},
    telemetry,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Migrate (unless `database.migrate_on_start` is false) and serve.
    Serve,
    /// Bring the schema up to date and exit, for a Kubernetes Job.
    Migrate,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub config: Option<PathBuf>,
}

fn usage(binary: &str) -> String {
    format!("usage: {binary} [serve|migrate] [--config FILE]")
}

/// Parses the arguments after the program name.
pub fn parse_args(binary: &str, args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut command = None;
    let mut config = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "serve" if command.is_none() => command = Some(Command::Serve),
            "migrate" if command.is_none() => command = Some(Command::Migrate),
            "--config" | "-c" => match args.next() {
                Some(file) => config = Some(PathBuf::from(file)),
                None => return Err(format!("--config needs a file\n{}", usage(binary))),
            },
            s if s.starts_with("--config=") => config = Some(PathBuf::from(&s["--config=".len()..])),
            "-h" | "--help" => return Err(usage(binary)),
            other => return Err(format!("unexpected argument {other:?}\n{}", usage(binary))),
        }
    }
    Ok(Args { command: command.unwrap_or(Command::Serve), config })
}

/// Reads arguments and settings, starts telemetry, runs `main`, and turns the
/// outcome into an exit code: 0 on a clean stop, 1 on failure, 2 on bad usage
/// or configuration.
pub async fn run<F, Fut>(service: ServiceInfo, main: F) -> ExitCode
where
    F: FnOnce(Command, Settings) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let binary = format!("{}-service", service.name);
    let args = match parse_args(&binary, std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(service, args.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{binary}: {err}");
            return ExitCode::from(2);
        }
    };
    let guard = match telemetry::init(service.name, &settings.log, &settings.telemetry) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("{binary}: telemetry: {err:#}");
            return ExitCode::from(2);
        }
    };
    tracing::debug!(?settings, "settings");
    let outcome = main(args.command, settings).await;
    let code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "{binary} failed");
            ExitCode::FAILURE
        }
    };
    drop(guard);
    code
}

/// Resolves on the first SIGINT or SIGTERM, saying which arrived.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = term => tracing::info!("received SIGTERM"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args("tariff-service", args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn commands_and_config() {
        assert_eq!(parse(&[]), Ok(Args { command: Command::Serve, config: None }));
        assert_eq!(parse(&["migrate"]).map(|a| a.command), Ok(Command::Migrate));
        assert_eq!(parse(&["serve", "--config", "t.toml"]).map(|a| a.config), Ok(Some(PathBuf::from("t.toml"))));
        assert_eq!(parse(&["--config=t.toml"]).map(|a| a.config), Ok(Some(PathBuf::from("t.toml"))));
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["deploy"]).is_err());
        assert!(parse(&["serve", "migrate"]).is_err());
    }
}
