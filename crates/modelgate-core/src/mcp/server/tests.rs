use std::collections::BTreeMap;

use super::*;

fn spec(v: Value) -> McpServerSpec {
    serde_json::from_value(v).unwrap()
}

fn server(v: Value) -> McpServer {
    McpServer::from_spec(spec(v), "mcp_0123456789abcdef01234567".into(), 1_000)
}

fn declared(name: &str) -> bool {
    name == "GITHUB_TOKEN"
}

#[test]
fn a_spec_gets_defaults_and_a_url_without_its_trailing_slash() {
    let s = server(json!({"name": "github", "url": "https://mcp.example.com/mcp/"}));
    assert_eq!(s.url, "https://mcp.example.com/mcp");
    assert!(s.enabled);
    assert_eq!(s.timeout_ms, DEFAULT_TIMEOUT_MS);
    assert_eq!((s.created_at, s.updated_at), (1_000, 1_000));
    assert_eq!(s.check(declared), Ok(()));
}

#[test]
fn names_are_letters_digits_and_dashes_because_underscore_joins_server_and_tool() {
    for good in ["github", "a", "my-Server-2", &"x".repeat(MAX_NAME)] {
        assert_eq!(check_name(good), Ok(()), "{good}");
    }
    for bad in ["", "git_hub", "a b", "ü", "a/b", &"x".repeat(MAX_NAME + 1)] {
        assert_eq!(check_name(bad).unwrap_err().param, "name", "{bad}");
    }
}

#[test]
fn headers_must_be_valid_unreserved_and_name_only_declared_secrets() {
    let with = |name: &str, value: &str| {
        let mut s = server(json!({"name": "s", "url": "http://127.0.0.1:9/mcp"}));
        s.headers = BTreeMap::from([(name.to_owned(), Secret::from(value))]);
        s.check(declared)
    };
    assert_eq!(with("Authorization", "Bearer env:GITHUB_TOKEN"), Ok(()));
    assert_eq!(with("X-Api-Key", "env:GITHUB_TOKEN"), Ok(()));
    assert_eq!(with("X-Api-Key", "a literal value"), Ok(()));
    for (name, value) in [
        ("Authorization", "Bearer env:HOME"),
        ("X-Api-Key", "env:MG_ADMIN_API_KEY"),
        ("Host", "evil.example"),
        ("Mcp-Session-Id", "x"),
        ("content-length", "1"),
        ("Proxy-Authorization", "x"),
        ("bad header", "x"),
        ("X-Empty", ""),
        ("X-Newline", "a\nb"),
    ] {
        let e = with(name, value).unwrap_err();
        assert_eq!(e.param, "headers", "{name}: {value}");
        assert!(!e.message.contains("GITHUB_TOKEN"), "{}", e.message);
    }
    let long = "v".repeat(MAX_HEADER_VALUE + 1);
    assert!(with("X-Long", &long).is_err());
}

#[test]
fn too_many_headers_and_deadlines_out_of_bounds_are_refused() {
    let mut s = server(json!({"name": "s", "url": "http://127.0.0.1:9/mcp"}));
    s.headers = (0..=MAX_HEADERS)
        .map(|i| (format!("x-h{i}"), Secret::from("v")))
        .collect();
    assert_eq!(s.check(declared).unwrap_err().param, "headers");
    for r in [0, 1_000_001] {
        let s = server(json!({"name": "s", "url": "http://h/mcp", "rpm": r}));
        assert_eq!(s.check(declared).unwrap_err().param, "rpm", "{r}");
    }
    for t in [0, 999, 600_001] {
        let s = server(json!({"name": "s", "url": "http://h/mcp", "timeout_ms": t}));
        assert_eq!(s.check(declared).unwrap_err().param, "timeout_ms", "{t}");
    }
}

#[test]
fn the_admin_view_names_headers_and_never_shows_their_values() {
    let s = server(json!({
        "name": "github", "url": "https://h/mcp",
        "headers": {"Authorization": "Bearer sk-live-very-secret"}
    }));
    let view = s.admin_view().to_string();
    assert!(view.contains("\"headers\":[\"Authorization\"]"), "{view}");
    assert!(!view.contains("sk-live-very-secret"), "{view}");
    assert!(!format!("{s:?}").contains("sk-live-very-secret"));
}

#[test]
fn a_patch_sets_and_removes_single_headers_and_keeps_the_rest() {
    let s = server(json!({
        "name": "github", "url": "https://h/mcp", "timeout_ms": 5_000,
        "headers": {"Authorization": "Bearer a", "X-Team": "t1"}
    }));
    let patch: McpServerPatch = serde_json::from_value(json!({
        "headers": {"X-Team": null, "X-Org": "o"}, "timeout_ms": null, "enabled": false
    }))
    .unwrap();
    let after = s.patched(patch, 900);
    let names: Vec<&str> = after.headers.keys().map(String::as_str).collect();
    assert_eq!(names, ["Authorization", "X-Org"]);
    assert_eq!(after.headers["Authorization"].expose(), "Bearer a");
    assert_eq!(after.timeout_ms, DEFAULT_TIMEOUT_MS);
    assert!(!after.enabled);
    assert_eq!(after.name, "github");
    // The version moves forward even when the clock does not.
    assert_eq!(after.updated_at, 1_001);
    assert!(serde_json::from_value::<McpServerPatch>(json!({"id": "x"})).is_err());
}

#[test]
fn the_stored_form_round_trips_with_its_header_values() {
    let s = server(json!({"name": "g", "url": "https://h/mcp", "headers": {"A": "b"}}));
    let stored = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<McpServer>(&stored).unwrap(), s);
}

#[test]
fn secret_references_may_follow_a_scheme() {
    assert_eq!(secret_reference("env:A"), Some(("", "A")));
    assert_eq!(secret_reference("Bearer env:A"), Some(("Bearer", "A")));
    assert_eq!(secret_reference("Bearer xyz"), None);
    assert_eq!(secret_reference("literal"), None);
}

#[test]
fn a_server_has_a_url_or_a_command_with_its_own_environment() {
    let local = server(json!({
        "name": "files", "command": ["node", "server.js", "stdio"],
        "env": {"TOKEN": "env:GITHUB_TOKEN", "MODE": "ro"}
    }));
    assert!(local.is_local() && local.url.is_empty());
    assert_eq!(local.check(declared), Ok(()));
    let view = local.admin_view();
    assert_eq!(view["command"], json!(["node", "server.js", "stdio"]));
    assert_eq!(view["env"], json!(["MODE", "TOKEN"]));
    assert_eq!(view["url"], Value::Null);
    assert!(!view.to_string().contains("GITHUB_TOKEN"));
    let stored = serde_json::to_string(&local).unwrap();
    assert_eq!(serde_json::from_str::<McpServer>(&stored).unwrap(), local);

    let refused = |v: Value, param: &str| {
        let e = server(v.clone()).check(declared).unwrap_err();
        assert_eq!(e.param, param, "{v}");
    };
    refused(json!({"name": "s"}), "url");
    refused(
        json!({"name": "s", "url": "http://h/mcp", "command": ["node"]}),
        "url",
    );
    refused(
        json!({"name": "s", "url": "http://h/mcp", "env": {"A": "b"}}),
        "env",
    );
    refused(
        json!({"name": "s", "command": ["node"], "headers": {"A": "b"}}),
        "headers",
    );
    refused(json!({"name": "s", "command": ["node", ""]}), "command");
    refused(
        json!({"name": "s", "command": ["node", "a\u{0}b"]}),
        "command",
    );
    refused(
        json!({"name": "s", "command": vec!["a"; MAX_ARGS + 1]}),
        "command",
    );
    for bad in ["MG_ADMIN_API_KEY", "aws_secret", "1A", "A-B", ""] {
        refused(
            json!({"name": "s", "command": ["node"], "env": {bad: "x"}}),
            "env",
        );
    }
    refused(
        json!({"name": "s", "command": ["node"], "env": {"T": "env:OTHER"}}),
        "env",
    );
}

#[test]
fn a_patch_moves_a_server_between_a_url_and_a_command() {
    let s = server(json!({"name": "s", "url": "http://h/mcp", "headers": {"A": "b"}}));
    let patch = |v: Value| serde_json::from_value::<McpServerPatch>(v).unwrap();
    let local = s.patched(
        patch(json!({"url": null, "headers": {"A": null}, "command": ["node", "x.js"], "env": {"K": "v"}})),
        2_000,
    );
    assert_eq!(local.check(declared), Ok(()));
    assert_eq!(local.command, ["node", "x.js"]);
    assert_eq!(local.env["K"].expose(), "v");
    let back = local.patched(
        patch(json!({"command": null, "env": {"K": null}, "url": "http://h/mcp/"})),
        3_000,
    );
    assert_eq!(back.check(declared), Ok(()));
    assert_eq!(back.url, "http://h/mcp");
    // Half a move is refused, not guessed.
    let both = s.patched(patch(json!({"command": ["node"]})), 4_000);
    assert_eq!(both.check(declared).unwrap_err().param, "url");
}
