//! "API3": third-party OpenAI-compatible APIs that authenticate with an
//! `x-api-key` header instead of a bearer token (see `BackendKind::auth`).
//! Paths are OpenAI's, under a base URL that includes `/v1`.

use crate::request::Endpoint;

/// Same paths as OpenAI.
pub(super) fn url(base: &str, endpoint: Option<Endpoint>) -> String {
    super::compat::versioned_url(base, endpoint)
}
