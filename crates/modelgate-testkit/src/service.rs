//! Real services for tests (redis-server, PostgreSQL, moto's DynamoDB
//! server), each started on a free loopback port and stopped when its guard
//! drops, on every path, panics included.
//!
//! On a machine without them a bare `cargo test` skips the tests that need
//! them, saying so on the terminal; with `MG_REQUIRE_SERVICES=1` (`make
//! test`, CI) a missing service fails the test instead.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A service process owned by a test.
pub struct Service {
    port: u16,
    child: Child,
    /// A data directory of its own, removed once it stopped.
    scratch: Option<PathBuf>,
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
        .then(|| on_free_port(Self::try_redis_on))
    }

    /// redis-server on `port` (to restart one where a client expects it).
    pub fn redis_on(port: u16) -> Self {
        Self::try_redis_on(port)
            .unwrap_or_else(|| panic!("redis-server could not listen on port {port}"))
    }

    fn try_redis_on(port: u16) -> Option<Self> {
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
            &program("REDIS_SERVER", "redis-server"),
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
        .then(|| on_free_port(Self::try_moto_on))
    }

    /// moto's server on `port` (to bring one back where a client expects it).
    pub fn moto_on(port: u16) -> Self {
        Self::try_moto_on(port).unwrap_or_else(|| panic!("moto could not listen on port {port}"))
    }

    fn try_moto_on(port: u16) -> Option<Self> {
        let p = port.to_string();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/support/moto_serial.py"
        );
        let args = [script, "-H", "127.0.0.1", "-p", &p];
        Self::spawn(
            &program("MOTO_PYTHON", "python3"),
            &args,
            port,
            "pip install 'moto[dynamodb,server]'",
        )
    }

    /// A PostgreSQL server of its own (Debian's `postgresql`: `initdb` and
    /// `postgres` from `$PG_BIN`, else PostgreSQL's own bin directory, else
    /// PATH) in a fresh data directory, trusting local connections as user
    /// `modelgate`, without fsync (a test's data outlives nothing); `None`
    /// when there is none and it is not required. Run as root, it runs as
    /// the `postgres` user, as PostgreSQL insists.
    pub fn postgres() -> Option<Self> {
        let initdb = pg_program("initdb");
        available(
            &initdb,
            &["--version"],
            "PostgreSQL",
            "apt-get install postgresql",
        )
        .then(|| on_free_port(Self::postgres_on))
    }

    fn postgres_on(port: u16) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("mg-pg-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let as_user = pg_user(&dir);
        let data = dir.join("data");
        let data = data.to_str().expect("a UTF-8 temp path");
        let init = Command::new(as_user[0])
            .args(&as_user[1..])
            .arg(pg_program("initdb"))
            .args([
                "-D",
                data,
                "-U",
                "modelgate",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            init.is_ok_and(|s| s.success()),
            "initdb failed in {}",
            dir.display()
        );
        let p = port.to_string();
        let socket_dir = dir.to_str().expect("a UTF-8 temp path");
        let postgres = pg_program("postgres");
        let mut args: Vec<&str> = as_user[1..].to_vec();
        args.push(&postgres);
        args.extend([
            "-D",
            data,
            "-p",
            &p,
            "-h",
            "127.0.0.1",
            "-k",
            socket_dir,
            "-F",
            "-c",
            "max_connections=300",
        ]);
        let Some(mut service) = Self::spawn(as_user[0], &args, port, "apt-get install postgresql")
        else {
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        };
        service.scratch = Some(dir);
        // It listens before it accepts sessions ("starting up").
        let ready = pg_program("pg_isready");
        for _ in 0..1_000 {
            let up = Command::new(&ready)
                .args(["-q", "-h", "127.0.0.1", "-p", &p])
                .status();
            if up.is_ok_and(|s| s.success()) {
                return Some(service);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("PostgreSQL on port {port} did not accept sessions within 10 s");
    }

    /// `program` started, once it listens on `port`; `None` if it exited
    /// first (the port was taken).
    fn spawn(program: &str, args: &[&str], port: u16, install: &str) -> Option<Self> {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} cannot start ({e}); install it: {install}"));
        let mut service = Self {
            port,
            child,
            scratch: None,
        };
        // Generous: a loaded machine starts a process slowly; an exit ends
        // the wait at once.
        for _ in 0..6_000 {
            if service.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(service);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{program} did not listen on port {port} within 60 s");
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
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A PostgreSQL program: from `$PG_BIN`, else the newest of Debian's
/// `/usr/lib/postgresql/*/bin` (not on PATH there), else PATH.
fn pg_program(name: &str) -> String {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return format!("{dir}/{name}");
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .max();
    newest.map_or_else(|| name.to_owned(), |p| p.display().to_string())
}

/// The command prefix that runs PostgreSQL's programs: `env` (as is), or
/// as root `setpriv` to the `postgres` user, who is then given `dir`.
fn pg_user(dir: &Path) -> Vec<&'static str> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        return vec!["env"];
    }
    let owned = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status();
    assert!(
        owned.is_ok_and(|s| s.success()),
        "PostgreSQL refuses to run as root and there is no `postgres` user to run it"
    );
    vec![
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--clear-groups",
        "--",
    ]
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

/// A service started by `start` on a port free when chosen, or on another
/// if that one was taken before the service could bind it (a port is only
/// free until someone binds it: these programs cannot be handed a bound
/// socket or report a port of their choosing).
fn on_free_port(start: impl Fn(u16) -> Option<Service>) -> Service {
    (0..5)
        .find_map(|_| start(free_port()))
        .expect("a service listening on a free port within 5 tries")
}

/// A port free on the loopback interface right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port taken before the service binds it (here: bound and not
    /// listening, as an outgoing connection's is) is noticed at once, and
    /// another is tried.
    #[test]
    fn a_taken_port_is_noticed_and_another_tried() {
        if Service::redis().is_none() {
            return;
        }
        let taken = tokio::net::TcpSocket::new_v4().unwrap();
        taken.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let port = taken.local_addr().unwrap().port();
        assert!(Service::try_redis_on(port).is_none(), "exits: port taken");
        let redis = on_free_port(Service::try_redis_on);
        assert_ne!(redis.port(), port);
    }
}
