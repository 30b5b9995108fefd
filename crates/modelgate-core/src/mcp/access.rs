//! Which MCP servers and tools a key may use: its `allowed_tools`.

/// Whether a key with the allowlist `allowed` may use `server` at all
/// (`tool`: `None`), or its tool exposed as `tool`: an empty allowlist
/// allows everything; an entry names a whole server or one
/// `{server}_{tool}`.
pub fn allows(allowed: &[String], server: &str, tool: Option<&str>) -> bool {
    let of_server = |entry: &str| {
        entry
            .strip_prefix(server)
            .is_some_and(|rest| rest.starts_with('_'))
    };
    allowed.is_empty()
        || allowed.iter().any(|entry| {
            entry == server
                || match tool {
                    Some(t) => entry == t,
                    None => of_server(entry),
                }
        })
}

/// Whether a key with the allowlist `allowed` may use all of `server`
/// (its prompts and resources too, which no tool entry covers).
pub fn allows_server(allowed: &[String], server: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|entry| entry == server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowlist_names_whole_servers_or_single_tools() {
        assert!(allows(&[], "github", None) && allows(&[], "github", Some("github_x")));
        let key = ["docs".to_owned(), "github_create_issue".to_owned()];
        assert!(allows(&key, "docs", None) && allows(&key, "docs", Some("docs_search")));
        assert!(allows(&key, "github", None), "one of its tools is allowed");
        assert!(allows(&key, "github", Some("github_create_issue")));
        assert!(!allows(&key, "github", Some("github_delete_repo")));
        assert!(
            !allows(&key, "git", None),
            "a prefix of a name is not the name"
        );
        assert!(!allows(&key, "doc", Some("doc_s")));
        assert!(!allows(&key, "other", None));
        assert!(allows_server(&key, "docs") && allows_server(&[], "github"));
        assert!(
            !allows_server(&key, "github"),
            "one tool is not the whole server"
        );
    }
}
