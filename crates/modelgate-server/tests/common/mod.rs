//! The real `modelgate` binary, started for a test on a port it binds.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Far longer than anything here should take.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A server process, killed (SIGKILL) when dropped, on every path.
pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server's command: a port of its choosing (it says which), its
/// database at `db`, `admin` as the admin key, errors only in its log, no
/// models file from the caller's environment; the caller adds its own
/// settings.
pub(crate) fn command(db: &Path, admin: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate"));
    cmd.env("MG_DB_PATH", db)
        .env("MG_PORT", "0")
        .env("MG_ADMIN_API_KEY", admin)
        .env("MG_LOG", "error")
        .env_remove("MG_MODELS_FILE")
        .stdout(Stdio::piped());
    cmd
}

/// Spawns `cmd` and returns it once it listens, with its base URL (from
/// the line it prints: a port bound by the server itself, never one chosen
/// free beforehand and taken in between).
pub(crate) fn start(mut cmd: Command) -> (Server, String) {
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().expect("stdout piped");
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads to the end, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("ModelGate listening on ") {
                let base = rest.split_whitespace().next().unwrap_or_default();
                let _ = tx.send(base.to_owned());
            }
        }
    });
    let base = rx.recv_timeout(PATIENCE).expect("the server did not start");
    (server, base)
}
