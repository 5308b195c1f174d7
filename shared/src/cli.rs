//! The command line every service binary shares:
//! `<service>-service [serve|migrate|backup --to FILE|restore --from FILE] [--config FILE]`.

use std::{future::Future, path::PathBuf, process::ExitCode};

use clap::{FromArgMatches as _, Parser, Subcommand};

use crate::{
    config::{ServiceInfo, Settings},
    telemetry,
};

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Bring the schema up to date (unless database.migrate_on_start is false) and serve [default]
    Serve,
    /// Bring the schema up to date and exit, for a Kubernetes Job
    Migrate,
    /// Back up the database into a new FILE while the service serves: SQLite's VACUUM INTO, or pg_dump -Fc
    Backup {
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Restore FILE (a backup) into the database, which must be empty; the service must not be serving it
    Restore {
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}

impl Command {
    /// Runs `backup` or `restore` on the database of `settings`; the others
    /// are the service's to run.
    pub async fn run_on_database(&self, settings: &Settings) -> anyhow::Result<()> {
        match self {
            Self::Backup { to } => crate::backup::backup(&settings.database, to).await,
            Self::Restore { from } => crate::backup::restore(&settings.database, from).await,
            Self::Serve | Self::Migrate => anyhow::bail!("{self:?} is not a database command"),
        }
    }
}

/// A Tradewatch service. Settings come from defaults, then the optional
/// file, then TRADEWATCH__SECTION__KEY environment variables.
#[derive(Debug, PartialEq, Eq, Parser)]
#[command(version)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// A TOML file of settings
    #[arg(short, long, value_name = "FILE", env = "TRADEWATCH_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

impl Args {
    /// What to do: `serve` unless told otherwise.
    pub fn command(&self) -> Command {
        self.command.clone().unwrap_or(Command::Serve)
    }

    /// Parses the arguments (program name first) of `binary`: help,
    /// version and errors the way clap words them.
    pub fn try_parse_for(binary: &str, args: impl IntoIterator<Item = String>) -> Result<Self, clap::Error> {
        let matches = <Self as clap::CommandFactory>::command()
            .name(binary.to_owned())
            .bin_name(binary.to_owned())
            .try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }
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
    let args = match Args::try_parse_for(&binary, std::env::args()) {
        Ok(args) => args,
        // Help and version print and exit 0; a usage error exits 2.
        Err(err) => err.exit(),
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
    let outcome = main(args.command(), settings).await;
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

/// The next signal of `s`; never, when it could not be listened for.
#[cfg(unix)]
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Resolves on the first SIGINT or SIGTERM, saying which arrived. The
/// handlers are installed when this is called, not when it is first awaited:
/// a signal that arrives in between is not lost, nor does it kill the
/// process with the default action. Call it inside the runtime, early.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(err) => {
                tracing::error!(%err, "cannot listen for {name}");
                None
            }
        };
        let (mut int, mut term) =
            (listen(SignalKind::interrupt(), "SIGINT"), listen(SignalKind::terminate(), "SIGTERM"));
        async move {
            tokio::select! {
                () = recv(&mut int) => tracing::info!("received SIGINT"),
                () = recv(&mut term) => tracing::info!("received SIGTERM"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("received Ctrl-C");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_for(
            "tariff-service",
            std::iter::once("tariff-service").chain(args.iter().copied()).map(str::to_owned),
        )
    }

    #[test]
    fn commands_and_config() {
        let serve = parse(&[]).map(|a| (a.command(), a.config)).ok();
        assert_eq!(serve, Some((Command::Serve, None)));
        assert_eq!(parse(&["migrate"]).map(|a| a.command()).ok(), Some(Command::Migrate));
        let file = Some(PathBuf::from("t.toml"));
        assert_eq!(parse(&["serve", "--config", "t.toml"]).map(|a| a.config).ok(), Some(file.clone()));
        assert_eq!(parse(&["--config=t.toml"]).map(|a| a.config).ok(), Some(file.clone()));
        assert_eq!(parse(&["migrate", "-c", "t.toml"]).map(|a| a.config).ok(), Some(file));
        for bad in [&["--config"][..], &["deploy"], &["serve", "migrate"], &["--port", "1"]] {
            let err = parse(bad).err().map(|e| e.kind());
            assert!(err.is_some_and(|k| k != clap::error::ErrorKind::DisplayHelp), "{bad:?}");
        }
        let help = parse(&["--help"]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(help.contains("Usage: tariff-service [OPTIONS] [COMMAND]"), "{help}");
        assert!(help.contains("migrate"), "{help}");
        let backup = parse(&["backup", "--to", "b.db"]).map(|a| a.command()).ok();
        assert_eq!(backup, Some(Command::Backup { to: PathBuf::from("b.db") }));
        let restore = parse(&["restore", "--from", "b.db"]).map(|a| a.command()).ok();
        assert_eq!(restore, Some(Command::Restore { from: PathBuf::from("b.db") }));
        assert!(parse(&["backup"]).is_err(), "a backup names its file");
    }
}
