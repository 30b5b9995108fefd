//! How a model is served: its deployments (the explicit ones, or those its
//! backend fields and fallback URLs describe), how each serves the
//! Responses API, and the checks of deployments an admin wrote.
//!
//! A model written before deployments existed (one backend and fallback
//! URLs) is served as deployments too: `primary`, then `fallback-1`,
//! `fallback-2`, ... each a tier below the one before, which is the order
//! it was always tried in. A model with explicit deployments keeps the
//! first one in its own backend fields as well, so everything that reads a
//! model's backend (the import of model lists, older readers) still can.

use std::borrow::Cow;

use crate::backend::{MessagesApi, ResponsesApi};
use crate::deployment::Deployment;
use crate::domain::Model;
use crate::error::RequestError;

/// Most deployments one model may have.
const MAX_DEPLOYMENTS: usize = 64;
/// Largest weight (weights are relative; this bounds the sums).
const MAX_WEIGHT: u32 = 10_000;
/// Deepest priority tier.
const MAX_PRIORITY: u32 = 1_000;

impl Model {
    /// The deployments that serve this model: its explicit ones, or those
    /// its backend fields and fallback URLs describe.
    pub fn deployments(&self) -> Cow<'_, [Deployment]> {
        if !self.deployments.is_empty() {
            return Cow::Borrowed(&self.deployments);
        }
        let urls = std::iter::once(&self.base_url).chain(&self.fallback_urls);
        Cow::Owned(
            urls.zip(0u32..)
                .map(|(url, tier)| Deployment {
                    name: if tier == 0 {
                        "primary".into()
                    } else {
                        format!("fallback-{tier}")
                    },
                    backend: self.backend,
                    base_url: url.clone(),
                    upstream_model: self.upstream_model.clone(),
                    api_key: self.api_key.clone(),
                    weight: 1,
                    priority: tier,
                    health_check: false,
                    prices: None,
                    first_byte_timeout_secs: None,
                })
                .collect(),
        )
    }

    /// How `d` serves `/v1/responses` for this model.
    pub fn responses_api_of(&self, d: &Deployment) -> ResponsesApi {
        self.responses_api
            .unwrap_or_else(|| d.backend.default_responses_api())
    }

    /// How `d` serves `/v1/messages` for this model.
    pub fn messages_api_of(&self, d: &Deployment) -> MessagesApi {
        self.messages_api
            .unwrap_or_else(|| d.backend.default_messages_api())
    }

    /// Complete and check explicit deployments as an admin wrote them, and
    /// mirror the first into the model's own backend fields.
    pub fn normalize_deployments(&mut self) -> Result<(), RequestError> {
        if self.deployments.is_empty() {
            return Ok(());
        }
        let bad = |msg: String| RequestError::invalid(msg, Some("deployments"));
        if !self.fallback_urls.is_empty() {
            return Err(RequestError::invalid(
                "A model has either 'fallback_urls' or 'deployments', not both.",
                Some("fallback_urls"),
            ));
        }
        if self.deployments.len() > MAX_DEPLOYMENTS {
            return Err(bad(format!(
                "A model has at most {MAX_DEPLOYMENTS} deployments."
            )));
        }
        for (i, d) in self.deployments.iter_mut().enumerate() {
            if d.name.is_empty() {
                d.name = format!("{}-{}", d.backend.as_str(), i + 1);
            }
            if d.upstream_model.is_empty() {
                d.upstream_model.clone_from(&self.upstream_model);
            }
            d.base_url = d.base_url.trim_end_matches('/').to_owned();
            d.api_key = d.api_key.take().filter(|k| !k.expose().is_empty());
            let name_ok = d.name.len() <= 64
                && d.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !name_ok {
                return Err(bad(format!(
                    "Deployment name '{}' must be at most 64 letters, digits, '.', '_' or '-'.",
                    d.name.escape_debug()
                )));
            }
            if !(1..=MAX_WEIGHT).contains(&d.weight) {
                return Err(bad(format!(
                    "Deployment '{}': 'weight' must be 1..{MAX_WEIGHT}.",
                    d.name
                )));
            }
            if d.priority > MAX_PRIORITY {
                return Err(bad(format!(
                    "Deployment '{}': 'priority' must be 0..{MAX_PRIORITY}.",
                    d.name
                )));
            }
            crate::request::valid_model(&d.upstream_model).map_err(|_| {
                bad(format!(
                    "Deployment '{}': 'upstream_model' must be a model name.",
                    d.name
                ))
            })?;
        }
        let mut names: Vec<&str> = self.deployments.iter().map(|d| d.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(format!("Two deployments are named '{}'.", w[0])));
        }
        let first = &self.deployments[0];
        self.backend = first.backend;
        self.base_url.clone_from(&first.base_url);
        self.upstream_model.clone_from(&first.upstream_model);
        self.api_key.clone_from(&first.api_key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendKind;
    use crate::deployment::{from_stored, to_stored};

    fn model() -> Model {
        Model {
            id: "mdl_1".into(),
            name: "m".into(),
            backend: BackendKind::Vllm,
            base_url: "http://a".into(),
            fallback_urls: vec!["http://b".into(), "http://c".into()],
            upstream_model: "up".into(),
            api_key: Some("k".into()),
            enabled: true,
            stream_usage: true,
            responses_api: None,
            messages_api: None,
            deployments: vec![],
            prices: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn deployment(backend: BackendKind, url: &str) -> Deployment {
        Deployment {
            name: String::new(),
            backend,
            base_url: url.into(),
            upstream_model: String::new(),
            api_key: None,
            weight: 1,
            priority: 0,
            health_check: false,
            prices: None,
            first_byte_timeout_secs: None,
        }
    }

    #[test]
    fn fallback_urls_become_tiers() {
        let m = model();
        let d = m.deployments();
        let tiers: Vec<(&str, &str, u32)> = d
            .iter()
            .map(|d| (d.name.as_str(), d.base_url.as_str(), d.priority))
            .collect();
        assert_eq!(
            tiers,
            [
                ("primary", "http://a", 0),
                ("fallback-1", "http://b", 1),
                ("fallback-2", "http://c", 2)
            ]
        );
        assert!(
            d.iter()
                .all(|d| d.upstream_model == "up" && d.has_api_key())
        );
    }

    #[test]
    fn explicit_deployments_are_completed_and_mirrored() {
        let mut m = model();
        m.fallback_urls.clear();
        let mut second = deployment(BackendKind::Openai, "https://o/v1/");
        second.upstream_model = "gpt".into();
        second.api_key = Some("".into());
        m.deployments = vec![deployment(BackendKind::Ollama, "http://x/"), second];
        m.normalize_deployments().unwrap();
        let names: Vec<&str> = m.deployments.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["ollama-1", "openai-2"]);
        assert_eq!(m.deployments[0].upstream_model, "up");
        assert_eq!(m.deployments[1].base_url, "https://o/v1");
        assert!(m.deployments[1].api_key.is_none());
        assert_eq!(
            (m.backend, m.base_url.as_str()),
            (BackendKind::Ollama, "http://x")
        );
        assert_eq!(m.responses_api_of(&m.deployments[1]), ResponsesApi::Native);
        let stored = to_stored(&m.deployments).unwrap();
        assert_eq!(from_stored(Some(&stored)).unwrap(), m.deployments);
    }

    #[test]
    fn bad_deployments_are_refused() {
        type Change = fn(&mut Model);
        let cases: [(Change, &str); 5] = [
            (|m| m.deployments[0].weight = 0, "weight"),
            (|m| m.deployments[0].priority = 5_000, "priority"),
            (|m| m.deployments[0].name = "a b".into(), "name"),
            (|m| m.deployments[1].name = "vllm-1".into(), "Two"),
            (|m| m.fallback_urls = vec!["http://b".into()], "either"),
        ];
        for (change, needle) in cases {
            let mut m = model();
            m.fallback_urls.clear();
            m.deployments = vec![
                deployment(BackendKind::Vllm, "http://a"),
                deployment(BackendKind::Vllm, "http://b"),
            ];
            change(&mut m);
            let err = m.normalize_deployments().unwrap_err();
            assert!(format!("{err:?}").contains(needle), "{needle}: {err:?}");
        }
    }
}
