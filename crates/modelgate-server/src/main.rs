//! `modelgate`: the native gateway server and its admin CLI.

use clap::Parser;
use modelgate_server::cli::{Cli, Command};
use modelgate_server::settings::Settings;

// glibc's allocator was a tenth of the server's CPU under load, and its
// heap trimming (`madvise`) interrupts the other cores (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let settings = match Settings::from_lookup(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modelgate: bad setting {e}");
            std::process::exit(2);
        }
    };
    let serving = cli
        .command
        .as_ref()
        .is_none_or(|c| matches!(c, Command::Serve));
    let traces = match modelgate_native::otel::init_logging(settings.log_json, serving) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("modelgate: {e}");
            std::process::exit(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => modelgate_server::serve(settings).await,
        other => modelgate_server::cli::run(other, settings).await,
    };
    // The last spans go out before the process does.
    if let Some(t) = traces
        && let Err(e) = t.shutdown()
    {
        eprintln!("modelgate: traces: {e}");
    }
    if let Err(e) = result {
        eprintln!("modelgate: {e}");
        std::process::exit(1);
    }
}
