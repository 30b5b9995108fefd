//! OpenAI itself (and any API that copies it exactly): the base URL includes
//! `/v1`, the key goes in `Authorization: Bearer`.

use crate::request::Endpoint;

/// `{base}/chat/completions`, `{base}/completions`, `{base}/models`.
pub(super) fn url(base: &str, endpoint: Option<Endpoint>) -> String {
    super::compat::versioned_url(base, endpoint)
}
