//! Deployments: the upstreams that serve one public model name, each with
//! its own backend, URL, upstream model and key, a `weight` and a
//! `priority` tier (see [`crate::routing`] for how one is chosen).
//!
//! Which deployments serve a model, including those of a model written
//! before deployments existed, is [`crate::serving`]'s.

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::cost::Prices;
use crate::secret::Secret;

fn one() -> u32 {
    1
}

/// One upstream serving a model (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Unique within the model; what usage records, logs and the admin API
    /// call it (never its URL). Default: `{backend}-{position}`.
    #[serde(default)]
    pub name: String,
    /// Which protocol it speaks.
    pub backend: BackendKind,
    /// Its base URL. Admin-only.
    pub base_url: String,
    /// The model name it knows (default: the model's `upstream_model`).
    #[serde(default)]
    pub upstream_model: String,
    /// Its key, or `env:NAME`. Never serialized.
    #[serde(default, skip_serializing)]
    pub api_key: Option<Secret>,
    /// Share of traffic relative to the others of its tier (default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// Tier: 0 first; a higher tier serves only when every deployment of
    /// the tiers before it is unavailable.
    #[serde(default)]
    pub priority: u32,
    /// Whether the native server polls its readiness signal.
    #[serde(default)]
    pub health_check: bool,
    /// What its tokens cost (`None`: the model's prices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<Prices>,
    /// How long it may take to send a response head, streamed or not,
    /// before the request fails over to another deployment (`None`: the
    /// gateway's `MG_FIRST_BYTE_TIMEOUT_SECS` / `..._STREAM_SECS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_secs: Option<u64>,
}

impl Deployment {
    /// Whether a key is set (what the admin API shows instead of it).
    pub fn has_api_key(&self) -> bool {
        self.api_key
            .as_ref()
            .is_some_and(|k| !k.expose().is_empty())
    }
}

/// A deployment as stored: with its key.
#[derive(Serialize)]
struct Stored<'a> {
    #[serde(flatten)]
    deployment: &'a Deployment,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'a str>,
}

/// The stored form of a model's explicit deployments (`None`: none).
pub fn to_stored(list: &[Deployment]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let stored: Vec<Stored<'_>> = list
        .iter()
        .map(|d| Stored {
            deployment: d,
            api_key: d.api_key.as_ref().map(Secret::expose),
        })
        .collect();
    serde_json::to_string(&stored).ok()
}

/// Read the stored form back.
pub fn from_stored(text: Option<&str>) -> Result<Vec<Deployment>, serde_json::Error> {
    match text {
        None | Some("") => Ok(vec![]),
        Some(t) => serde_json::from_str(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stored_but_never_shown() {
        let d = Deployment {
            name: "o".into(),
            backend: BackendKind::Openai,
            base_url: "https://o/v1".into(),
            upstream_model: "gpt".into(),
            api_key: Some("sk-secret".into()),
            weight: 1,
            priority: 0,
            health_check: false,
            prices: None,
            first_byte_timeout_secs: None,
        };
        assert!(!serde_json::to_string(&d).unwrap().contains("sk-secret"));
        let stored = to_stored(std::slice::from_ref(&d)).unwrap();
        assert_eq!(from_stored(Some(&stored)).unwrap()[0].api_key, d.api_key);
    }
}
