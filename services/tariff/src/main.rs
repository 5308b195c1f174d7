use std::process::ExitCode;

use tariff_service::{SERVICE, app};
use tradewatch_common::cli::{self, Command};

/// A faster allocator than the system's for many small, short-lived
/// allocations freed on another thread than made them (see BENCHMARKS.md); it
/// also serves `malloc` (the `override` feature), so SQLite's memory is in it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(SERVICE, |command, settings| async move {
        match command {
            Command::Serve => app::Application::build(settings).await?.run_until_stopped(cli::shutdown_signal()).await,
            Command::Migrate => app::migrate(&settings).await,
            database => database.run_on_database(&settings).await,
        }
    })
    .await
}
