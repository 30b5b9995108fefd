//! The `modelgate` admin CLI and the models file, run as the real binary on
//! a temporary database.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Db(PathBuf);

impl Db {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mg-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `modelgate args...`; (success, JSON answer).
fn run(db: &Db, models_file: Option<&Path>, args: &[&str]) -> (bool, Value) {
    run_with(db, models_file, &[], args)
}

/// [`run`] with settings of its own.
fn run_with(
    db: &Db,
    models_file: Option<&Path>,
    settings: &[(&str, &str)],
    args: &[&str],
) -> (bool, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate"));
    cmd.args(args)
        .env("MG_DB_PATH", db.path("db.sqlite"))
        .env("MG_LOG", "error")
        .env_remove("MG_MODELS_FILE")
        .env_remove("MG_MCP_COMMANDS")
        .envs(settings.iter().copied());
    if let Some(f) = models_file {
        cmd.env("MG_MODELS_FILE", f);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    (
        out.status.success(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[test]
fn keys_lifecycle_from_the_command_line() {
    let db = Db::new("keys");
    let (ok, created) = run(
        &db,
        None,
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--rpm",
            "7",
            "--tpm",
            "5000",
            "--quota",
            "unlimited",
            "--budget-usd",
            "25.5",
            "--budget-period",
            "monthly",
            "--tools",
            "github,docs_search",
        ],
    );
    assert!(ok, "{created}");
    assert_eq!(created["budget_usd"], 25.5);
    assert_eq!(created["tpm"], 5000);
    assert_eq!(created["budget_period"], "monthly");
    assert_eq!(
        created["allowed_tools"],
        serde_json::json!(["github", "docs_search"])
    );
    assert!(created["budget_resets_at"].as_i64() > created["budget_window"].as_i64());
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("mg-"));
    assert_eq!(
        (created["rpm"].clone(), created["quota"].clone()),
        (7.into(), Value::Null)
    );

    let (ok, listed) = run(&db, None, &["keys", "list"]);
    assert!(ok);
    let text = listed.to_string();
    assert!(
        text.contains(&id) && !text.contains(&key),
        "the key is shown once, never listed"
    );

    let (ok, updated) = run(
        &db,
        None,
        &["keys", "update", &id, r#"{"status":"disabled"}"#],
    );
    assert!(ok && updated["status"] == "disabled", "{updated}");
    let (ok, revoked) = run(&db, None, &["keys", "revoke", &id]);
    assert!(ok && revoked["status"] == "revoked");

    let (ok, err) = run(&db, None, &["keys", "update", &id, r#"{"rpm":0}"#]);
    assert!(!ok, "invalid input fails the command");
    assert!(err["error"]["message"].is_string(), "{err}");
    let (ok, _) = run(&db, None, &["keys", "get", "key_000000000000000000000000"]);
    assert!(!ok);
}

#[test]
fn models_and_usage_from_the_command_line() {
    let db = Db::new("models");
    let (ok, m) = run(
        &db,
        None,
        &[
            "models",
            "add",
            "--name",
            "m1",
            "--backend",
            "vllm",
            "--base-url",
            "http://127.0.0.1:9",
            "--upstream-model",
            "up",
            "--prices",
            r#"{"input": 0.15, "cached_input": 0.075, "output": 0.6}"#,
        ],
    );
    assert!(ok, "{m}");
    assert_eq!(m["prices"]["cached_input"], 0.075);
    let (ok, bad) = run(
        &db,
        None,
        &[
            "models",
            "add",
            "--name",
            "m2",
            "--backend",
            "nope",
            "--base-url",
            "http://x",
        ],
    );
    assert!(!ok && bad["error"]["message"].is_string());
    let deployments = r#"[{"name": "a", "backend": "vllm", "base_url": "http://127.0.0.1:9"},
        {"name": "b", "backend": "ollama", "base_url": "http://127.0.0.1:10", "priority": 1}]"#;
    let (ok, many) = run(
        &db,
        None,
        &[
            "models",
            "add",
            "--name",
            "m3",
            "--deployments",
            deployments,
        ],
    );
    assert!(ok, "{many}");
    assert_eq!(many["deployments"][1]["priority"], 1);
    assert_eq!(many["backend"], "vllm", "the first is mirrored");
    let (_, listed) = run(&db, None, &["models", "list"]);
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    let id = m["id"].as_str().unwrap();
    let (ok, _) = run(&db, None, &["models", "delete", id]);
    assert!(ok);
    let (ok, usage) = run(&db, None, &["usage", "--from", "2026-01-01"]);
    assert!(ok && usage["totals"]["requests"] == 0, "{usage}");
    assert_eq!(usage["totals"]["cost_usd"], 0.0, "{usage}");
}

#[test]
fn mcp_servers_from_the_command_line() {
    let db = Db::new("mcp");
    let add = |name: &str, header: &str| {
        let args = [
            "mcp-servers",
            "add",
            "--name",
            name,
            "--url",
            "http://127.0.0.1:9/mcp/",
            "--header",
            header,
            "--header",
            "X-Team: core",
            "--timeout-ms",
            "5000",
        ];
        run(&db, None, &args)
    };
    let (ok, s) = add("docs", "Authorization: Bearer sk-cli-secret");
    assert!(ok, "{s}");
    assert_eq!(s["url"], "http://127.0.0.1:9/mcp");
    assert_eq!(s["headers"], serde_json::json!(["Authorization", "X-Team"]));
    assert_eq!(
        (s["timeout_ms"].as_u64(), s["enabled"].as_bool()),
        (Some(5000), Some(true))
    );
    // An undeclared secret, a reserved header, a taken name: refused.
    for (name, header) in [
        ("a", "Authorization: Bearer env:HOME"),
        ("b", "Host: x"),
        ("docs", "X: y"),
    ] {
        let (ok, bad) = add(name, header);
        assert!(!ok && bad["error"]["message"].is_string(), "{name}: {bad}");
    }
    let id = s["id"].as_str().unwrap();
    let (ok, patched) = run(
        &db,
        None,
        &[
            "mcp-servers",
            "update",
            id,
            r#"{"headers":{"X-Team":null},"enabled":false}"#,
        ],
    );
    assert!(ok, "{patched}");
    assert_eq!(patched["headers"], serde_json::json!(["Authorization"]));
    let (ok, listed) = run(&db, None, &["mcp-servers", "list"]);
    assert!(ok && listed["data"][0]["enabled"] == false, "{listed}");
    assert!(!listed.to_string().contains("sk-cli-secret"));
    assert!(run(&db, None, &["mcp-servers", "delete", id]).0);
    assert!(!run(&db, None, &["mcp-servers", "get", id]).0);
    // A local server: refused where the operator allows no program (this
    // run sets no MG_MCP_COMMANDS), whatever the command.
    let local = [
        "mcp-servers",
        "add",
        "--name",
        "files",
        "--env",
        "ROOT=/srv",
        "--",
        "node",
        "server.js",
        "--stdio",
    ];
    let (ok, refused) = run(&db, None, &local);
    assert!(!ok && refused["error"]["param"] == "command", "{refused}");
    let (ok, added) = run_with(&db, None, &[("MG_MCP_COMMANDS", "node")], &local);
    assert!(ok, "{added}");
    assert_eq!(
        added["command"],
        serde_json::json!(["node", "server.js", "--stdio"])
    );
    assert_eq!(added["env"], serde_json::json!(["ROOT"]));
    assert_eq!(added["url"], Value::Null);
}

#[test]
fn a_models_file_creates_then_updates_by_name() {
    let db = Db::new("file");
    let file = db.path("models.toml");
    let write = |url: &str| {
        std::fs::write(
            &file,
            format!("[[models]]\nname = \"filed\"\nbackend = \"llamacpp\"\nbase_url = \"{url}\"\nupstream_model = \"smol\"\n"),
        )
        .unwrap()
    };
    write("http://127.0.0.1:1");
    let (ok, first) = run(&db, Some(&file), &["models", "list"]);
    assert!(ok, "{first}");
    assert_eq!(first["data"][0]["name"], "filed");
    write("http://127.0.0.1:2");
    let (_, second) = run(&db, Some(&file), &["models", "list"]);
    let models = second["data"].as_array().unwrap();
    assert_eq!(models.len(), 1, "matched by name, not duplicated");
    assert_eq!(models[0]["base_url"], "http://127.0.0.1:2");
    assert_eq!(models[0]["id"], first["data"][0]["id"]);
    std::fs::write(
        &file,
        "[[models]]\nname = \"x\"\nbackend = \"bogus\"\nbase_url = \"http://x\"\n",
    )
    .unwrap();
    let (ok, _) = run(&db, Some(&file), &["models", "list"]);
    assert!(!ok, "a bad models file stops the command with an error");
}

#[test]
fn migrate_creates_the_dynamodb_table_the_server_then_uses() {
    let Some(moto) = modelgate_testkit::Service::moto() else {
        return;
    };
    let table = format!("mg-cli-{}", std::process::id());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .args(args)
            .env("MG_DYNAMODB_TABLE", &table)
            // Named, not reached: these commands only touch the table.
            .env("MG_REDIS_URL", "redis://127.0.0.1:1")
            .env("AWS_ENDPOINT_URL", moto.url("http"))
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("MG_LOG", "error")
            .env_remove("MG_MODELS_FILE")
            .env_remove("MG_DATABASE_URL")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), text)
    };
    let (ok, text) = run(&["models", "list"]);
    assert!(!ok, "no table yet: {text}");
    // Twice: the second finds the table there.
    for _ in 0..2 {
        let (ok, text) = run(&["migrate"]);
        assert!(ok, "{text}");
    }
    let (ok, text) = run(&["models", "list"]);
    assert!(ok, "{text}");
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed["data"], serde_json::json!([]));
}
