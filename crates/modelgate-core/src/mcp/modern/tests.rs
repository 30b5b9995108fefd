use super::*;

const SERVED: [&str; 1] = [MODERN];

fn params(version: &str) -> Map<String, Value> {
    let v = json!({"name": "docs_search", "_meta": {VERSION_KEY: version, CAPABILITIES_KEY: {}}});
    v.as_object().cloned().unwrap()
}

fn routing<'a>(version: &'a str, method: &'a str, name: Option<&'a str>) -> Routing<'a> {
    Routing {
        version: Some(version),
        method: Some(method),
        name,
        duplicated: None,
    }
}

#[test]
fn a_request_whose_headers_say_what_its_body_says_passes() {
    let r = routing(MODERN, "tools/call", Some("docs_search"));
    assert_eq!(
        check(&r, "tools/call", &params(MODERN), &SERVED),
        Ok(MODERN.into())
    );
    let wrapped = encode_header_value("docs_search ");
    assert!(wrapped.starts_with("=?base64?"));
    let p = json!({"name": "docs_search ", "_meta": {VERSION_KEY: MODERN, CAPABILITIES_KEY: {}}});
    let r = routing(MODERN, "tools/call", Some(&wrapped));
    assert!(check(&r, "tools/call", p.as_object().unwrap(), &SERVED).is_ok());
}

#[test]
fn each_disagreement_is_a_header_mismatch() {
    let code = |r: Routing<'_>, method: &str| {
        check(&r, method, &params(MODERN), &SERVED)
            .unwrap_err()
            .code
    };
    assert_eq!(
        code(routing(MODERN, "tools/list", None), "tools/call"),
        HEADER_MISMATCH
    );
    assert_eq!(
        code(
            routing(MODERN, "tools/call", Some("docs_other")),
            "tools/call"
        ),
        HEADER_MISMATCH
    );
    assert_eq!(
        code(routing(MODERN, "tools/call", None), "tools/call"),
        HEADER_MISMATCH
    );
    assert_eq!(
        code(
            routing("2025-11-25", "tools/call", Some("docs_search")),
            "tools/call"
        ),
        HEADER_MISMATCH
    );
    let twice = Routing {
        duplicated: Some("mcp-method"),
        ..routing(MODERN, "tools/call", Some("docs_search"))
    };
    assert_eq!(code(twice, "tools/call"), HEADER_MISMATCH);
    // A malformed wrapper never matches.
    assert_eq!(
        code(
            routing(MODERN, "tools/call", Some("=?base64?!!?=")),
            "tools/call"
        ),
        HEADER_MISMATCH
    );
}

#[test]
fn the_envelope_comes_first_and_the_version_last() {
    let r = routing(MODERN, "tools/list", None);
    let bare = Map::new();
    assert_eq!(
        check(&r, "tools/list", &bare, &SERVED).unwrap_err().code,
        jsonrpc::INVALID_PARAMS
    );
    let r = routing("2099-01-01", "tools/call", Some("docs_search"));
    let e = check(&r, "tools/call", &params("2099-01-01"), &SERVED).unwrap_err();
    assert_eq!(e.code, UNSUPPORTED_VERSION);
    assert_eq!(
        e.data,
        Some(json!({"supported": [MODERN], "requested": "2099-01-01"}))
    );
    assert_eq!(
        e.answer(&json!(4))["error"]["data"]["requested"],
        "2099-01-01"
    );
}

#[test]
fn statuses_follow_the_spec_table() {
    assert_eq!(http_status(HEADER_MISMATCH), 400);
    assert_eq!(http_status(UNSUPPORTED_VERSION), 400);
    assert_eq!(http_status(jsonrpc::INVALID_PARAMS), 400);
    assert_eq!(http_status(jsonrpc::METHOD_NOT_FOUND), 404);
    assert_eq!(http_status(jsonrpc::INTERNAL_ERROR), 200);
}

#[test]
fn header_values_round_trip() {
    for v in ["plain", " edge", "ünï", "=?base64?abc?=", "line\nbreak", ""] {
        assert_eq!(
            decode_header_value(&encode_header_value(v)).as_deref(),
            Some(v)
        );
    }
    assert_eq!(encode_header_value("plain"), "plain");
    // Not canonical (trailing bits set).
    assert_eq!(decode_header_value("=?base64?YR==?="), None);
}

#[test]
fn outgoing_requests_carry_the_gateways_envelope_never_the_clients() {
    let client = json!({"jsonrpc": "2.0", "id": "mg-1", "method": "tools/call", "params": {
        "name": "search", "arguments": {},
        "_meta": {VERSION_KEY: MODERN, CAPABILITIES_KEY: {"sampling": {}, "experimental": {"x": {}}},
                  "progressToken": 3,
                  "io.modelcontextprotocol/logLevel": "info"}}});
    let (body, headers) = outgoing(&client, MODERN, Some("00-abc-def-01"));
    let meta = &body["params"]["_meta"];
    // What the client can be asked goes on; nothing else of its own.
    assert_eq!(meta[CAPABILITIES_KEY], json!({"sampling": {}}));
    assert_eq!(meta[VERSION_KEY], MODERN);
    assert_eq!(meta["progressToken"], 3);
    assert_eq!(meta["traceparent"], "00-abc-def-01");
    assert_eq!(meta[CLIENT_INFO_KEY]["name"], "modelgate");
    assert_eq!(
        headers,
        vec![
            (NAME_HEADER, "search".to_owned()),
            (METHOD_HEADER, "tools/call".to_owned())
        ]
    );
    let (body, headers) = outgoing(&client, "2025-11-25", None);
    assert_eq!(
        body["params"]["_meta"],
        json!({"progressToken": 3, "io.modelcontextprotocol/logLevel": "info"})
    );
    assert!(headers.is_empty());
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    assert_eq!(outgoing(&list, "2025-11-25", None).0, list);
    let (body, _) = outgoing(&list, MODERN, None);
    assert_eq!(body["params"]["_meta"][CAPABILITIES_KEY], json!({}));
}

#[test]
fn every_result_says_it_is_complete_unless_it_says_otherwise() {
    let mut r = json!({"tools": []});
    complete(&mut r);
    assert_eq!(r["resultType"], "complete");
    let mut r = json!({"resultType": "input_required"});
    complete(&mut r);
    assert_eq!(r["resultType"], "input_required");
}
