//! llama.cpp's `llama-server`. The base URL is the server root; it honours
//! `stream_options.include_usage` and adds a `timings` object, which passes
//! through.

use crate::request::Endpoint;

/// `{root}/v1/chat/completions`, `{root}/v1/completions`, `{root}/v1/models`.
pub(super) fn url(base: &str, endpoint: Option<Endpoint>) -> String {
    super::compat::root_url(base, endpoint)
}
