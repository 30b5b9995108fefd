//! `modelgate`: the native gateway server and its admin CLI.

use clap::Parser;
use modelgate_server::cli::{Cli, Command};
use modelgate_server::settings::Settings;
use tracing_subscriber::EnvFilter;

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
    let filter = EnvFilter::try_from_env("MG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => modelgate_server::serve(settings).await,
        other => modelgate_server::cli::run(other, settings).await,
    };
    if let Err(e) = result {
        eprintln!("modelgate: {e}");
        std::process::exit(1);
    }
}
