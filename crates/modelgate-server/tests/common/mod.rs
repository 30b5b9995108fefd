//! The real `modelgate` binary, started for a test on a free port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// The server's command: `port`, its database at `db`, `admin` as the
/// admin key, errors only in its log, no models file from the caller's
/// environment; the caller adds its own settings.
pub(crate) fn command(db: &Path, port: u16, admin: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate"));
    cmd.env("MG_DB_PATH", db)
        .env("MG_PORT", port.to_string())
        .env("MG_ADMIN_API_KEY", admin)
        .env("MG_LOG", "error")
        .env_remove("MG_MODELS_FILE")
        .stdout(Stdio::null());
    cmd
}

/// Spawns `cmd` and returns once it accepts connections on `port`.
pub(crate) fn start(mut cmd: Command, port: u16) -> Server {
    let server = Server(cmd.spawn().unwrap());
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}
