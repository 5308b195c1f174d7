//! `tradewatch-schedule`: a national tariff schedule, loaded from CSV into a
//! running tariff service through its public API (`load`), or generated for
//! tests and benchmarks (`generate`). The file's columns are described in
//! the README (Loading a national schedule).

use std::{io::IsTerminal as _, path::PathBuf, process::ExitCode, time::Instant};

use clap::{Parser, Subcommand};
use tariff_service::load::{self, Groups, generate};
use tradewatch_common::proto::tariff::tariff_service_client::TariffServiceClient;

#[derive(Debug, Parser)]
#[command(name = "tradewatch-schedule", version, about = "Load a national tariff schedule from CSV, or generate one")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every line of FILE, then write it through ImportMeasures in batches of 1,000
    Load {
        /// The schedule, CSV with a header
        file: PathBuf,
        /// The economy whose schedule it is
        #[arg(long)]
        importer: String,
        /// The named groups of origins (`@NAME` in the origins column), CSV: group,economies
        #[arg(long, value_name = "FILE")]
        groups: Option<PathBuf>,
        /// The tariff service
        #[arg(long, value_name = "URL", env = "TRADEWATCH_TARIFF_URL", default_value = "http://127.0.0.1:50052")]
        url: String,
        /// PEM: the CA of an https:// URL
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// A bearer token with tariff:write, read from this file
        #[arg(long, value_name = "FILE", env = "TRADEWATCH_TOKEN_FILE")]
        token_file: Option<PathBuf>,
        /// Check the file and say what it holds; write nothing
        #[arg(long)]
        check: bool,
    },
    /// Write a generated schedule (schedule.csv) and its groups (groups.csv) into DIR
    Generate {
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        #[arg(long, default_value = "CAN")]
        importer: String,
        /// Rate lines in all (codes × treatments)
        #[arg(long, default_value_t = 100_000)]
        lines: usize,
        /// Treatments per code: MFN and the rest preferential groups
        #[arg(long, default_value_t = 15)]
        treatments: usize,
        /// Special measures on 4- and 6-digit prefixes
        #[arg(long, default_value_t = 5_000)]
        special: usize,
        /// Origins the special measures target
        #[arg(long, default_value_t = 20)]
        origins: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tradewatch-schedule: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Generate { out, importer, lines, treatments, special, origins } => {
            let (groups, schedule) =
                generate::generate(&importer, generate::Shape { lines, treatments, special, origins });
            std::fs::create_dir_all(&out)?;
            std::fs::write(out.join("groups.csv"), groups)?;
            std::fs::write(out.join("schedule.csv"), schedule)?;
            println!(
                "wrote {} and {}: {lines} rate lines ({treatments} treatments a code) and {special} special measures of {importer} against {origins} origins",
                out.join("schedule.csv").display(),
                out.join("groups.csv").display()
            );
            Ok(())
        }
        Command::Load { file, importer, groups, url, ca_file, token_file, check } => {
            let started = Instant::now();
            let text = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let groups = match groups {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    Groups::parse(&text).map_err(|errors| refused(&path, &errors))?
                }
                None => Groups::default(),
            };
            let lines = load::parse(&text, &importer, &groups).map_err(|errors| refused(&file, &errors))?;
            println!("{}: {} lines, every one good ({:.1?})", file.display(), lines.len(), started.elapsed());
            if check {
                return Ok(());
            }
            let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())?;
            if let Some(ca) = ca_file {
                let ca = tonic::transport::Certificate::from_pem(std::fs::read(ca)?);
                endpoint = endpoint.tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca))?;
            }
            let channel = endpoint.connect().await.map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
            let bearer: Option<tonic::metadata::AsciiMetadataValue> = match token_file {
                Some(path) => Some(format!("Bearer {}", std::fs::read_to_string(path)?.trim()).parse()?),
                None => None,
            };
            let client = TariffServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
                if let Some(value) = &bearer {
                    request.metadata_mut().insert("authorization", value.clone());
                }
                Ok(request)
            });
            let bar = if std::io::stderr().is_terminal() {
                let bar = indicatif::ProgressBar::new(lines.len() as u64);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} lines ({per_sec}, {eta} left)",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            } else {
                indicatif::ProgressBar::hidden()
            };
            let written = Instant::now();
            let outcome = load::load(&client, &lines, |done| bar.set_position(done as u64)).await;
            bar.finish_and_clear();
            let loaded = outcome.map_err(|refused| anyhow::anyhow!("{refused}"))?;
            let secs = written.elapsed().as_secs_f64();
            #[allow(clippy::cast_precision_loss)]
            let rate = lines.len() as f64 / secs.max(1e-9);
            println!(
                "loaded {} lines into {url} in {} batches, {secs:.1} s ({rate:.0} lines/s): {} created, {} already there",
                lines.len(),
                loaded.batches,
                loaded.created,
                loaded.unchanged
            );
            Ok(())
        }
    }
}

/// Every bad line of a file, as one error.
fn refused(file: &std::path::Path, errors: &[String]) -> anyhow::Error {
    const SHOWN: usize = 50;
    let mut message = format!("{}: {} bad lines, nothing written:", file.display(), errors.len());
    for e in errors.iter().take(SHOWN) {
        message.push_str("\n  ");
        message.push_str(e);
    }
    if errors.len() > SHOWN {
        message.push_str(&format!("\n  …and {} more", errors.len() - SHOWN));
    }
    anyhow::anyhow!(message)
}
