//! Resources as clients of `/mcp` name them: the server before the URI's
//! scheme (`{server}+{uri}`, still a URI), in listings and in the links a
//! tool's result carries (`resource_link`, an embedded `resource`), so
//! that a client reads a linked resource back through the gateway.

use serde_json::Value;

/// What separates the server from a resource's own URI.
pub const SEPARATOR: char = '+';

/// `uri` of `server` as clients of `/mcp` see it.
pub fn exposed(server: &str, uri: &str) -> String {
    format!("{server}{SEPARATOR}{uri}")
}

/// Rename the resource links in a tool call's `result`.
pub fn rename(result: &mut Value, server: &str) {
    let Some(content) = result.get_mut("content").and_then(Value::as_array_mut) else {
        return;
    };
    for block in content {
        let uri = match block.get("type").and_then(Value::as_str) {
            Some("resource_link") => block.get_mut("uri"),
            Some("resource") => block.pointer_mut("/resource/uri"),
            _ => None,
        };
        if let Some(uri) = uri
            && let Some(own) = uri.as_str()
        {
            *uri = Value::String(exposed(server, own));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn links_and_embedded_resources_name_their_server() {
        let mut result = json!({"content": [
            {"type": "text", "text": "see file:///guide.md"},
            {"type": "resource_link", "uri": "file:///guide.md", "name": "guide"},
            {"type": "resource", "resource": {"uri": "config://settings", "text": "x"}},
            {"type": "resource_link"},
        ]});
        rename(&mut result, "docs");
        assert_eq!(result["content"][0]["text"], "see file:///guide.md");
        assert_eq!(result["content"][1]["uri"], "docs+file:///guide.md");
        assert_eq!(
            result["content"][2]["resource"]["uri"],
            "docs+config://settings"
        );
        assert_eq!(result["content"][3], json!({"type": "resource_link"}));
        let mut error = json!({"isError": true});
        rename(&mut error, "docs");
        assert_eq!(error, json!({"isError": true}));
    }
}
