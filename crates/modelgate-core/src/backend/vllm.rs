//! vLLM's OpenAI-compatible server. The base URL is the server root
//! (`http://host:8000`); a base that already ends in `/v1` is accepted too.
//! vLLM's extra response fields (`stop_reason`, `prompt_logprobs`,
//! `kv_transfer_params`) and its in-band `data: {"error":...}` pass through.

use crate::request::Endpoint;

/// `{root}/v1/chat/completions`, `{root}/v1/completions`, `{root}/v1/models`.
pub(super) fn url(base: &str, endpoint: Option<Endpoint>) -> String {
    super::compat::root_url(base, endpoint)
}
