//! Real services for tests (redis-server, moto's DynamoDB server), each
//! started on a free loopback port and stopped when its guard drops, on
//! every path, panics included.
//!
//! On a machine without them a bare `cargo test` skips the tests that need
//! them, saying so on the terminal; with `MG_REQUIRE_SERVICES=1` (`make
//! test`, CI) a missing service fails the test instead.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A service process owned by a test.
pub struct Service {
    port: u16,
    child: Child,
}

impl Service {
    /// redis-server (`$REDIS_SERVER`, else on PATH), without persistence;
    /// `None` when there is none and it is not required (see above).
    pub fn redis() -> Option<Self> {
        let program = program("REDIS_SERVER", "redis-server");
        available(
            &program,
            &["--version"],
            "redis-server",
            "apt-get install redis-server",
        )
        .then(|| Self::redis_on(free_port()))
    }

    /// redis-server on `port` (to restart one where a client expects it).
    pub fn redis_on(port: u16) -> Self {
        let p = port.to_string();
        let args = [
            "--port",
            &p,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        Self::spawn(
            "REDIS_SERVER",
            "redis-server",
            &args,
            port,
            "apt-get install redis-server",
        )
    }

    /// moto's server speaking DynamoDB and Secrets Manager, one request at
    /// a time (`tests/support/moto_serial.py`, run by `$MOTO_PYTHON`, else
    /// `python3` on PATH: the Makefile puts the pinned virtualenv there);
    /// `None` when moto is not there and not required.
    pub fn moto() -> Option<Self> {
        let python = program("MOTO_PYTHON", "python3");
        let probe = ["-c", "import moto.server"];
        available(
            &python,
            &probe,
            "moto",
            "pip install 'moto[dynamodb,server]'",
        )
        .then(|| Self::moto_on(free_port()))
    }

    /// moto's server on `port` (to bring one back where a client expects it).
    pub fn moto_on(port: u16) -> Self {
        let p = port.to_string();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/support/moto_serial.py"
        );
        let args = [script, "-H", "127.0.0.1", "-p", &p];
        Self::spawn(
            "MOTO_PYTHON",
            "python3",
            &args,
            port,
            "pip install 'moto[dynamodb,server]'",
        )
    }

    fn spawn(var: &str, program: &str, args: &[&str], port: u16, install: &str) -> Self {
        let program = self::program(var, program);
        let child = Command::new(&program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} cannot start ({e}); install it: {install}"));
        let service = Self { port, child };
        for _ in 0..1_000 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return service;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{program} did not listen on port {port} within 10 s");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `scheme://127.0.0.1:port`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

/// Whether `program args` runs and succeeds. When it does not: a failure
/// under `MG_REQUIRE_SERVICES=1`, else a note on the terminal (written past
/// the test harness's capture) and `false`.
fn available(program: &str, args: &[&str], what: &str, install: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    let required = std::env::var("MG_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{what} is required (MG_REQUIRE_SERVICES=1) but not available; install it: {install}"
    );
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {what} is not available ({install}; MG_REQUIRE_SERVICES=1 makes this a failure)"
    );
    false
}

/// A port free on the loopback interface right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
