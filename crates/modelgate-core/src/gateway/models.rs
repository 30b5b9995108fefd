//! Models: the client listing (`/v1/models`) and the admin operations,
//! including the import from the backends' own model lists.

use std::collections::BTreeSet;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::admin::parse_body;
use super::{Gateway, Peer, Response, json_response};
use crate::backend::{BackendKind, Target};
use crate::config::{ModelSpec, SyncBackend};
use crate::deployment::Deployment;
use crate::domain::{Model, ModelPatch, NewModel};
use crate::error::{GatewayError, RequestError, UpstreamError};
use crate::ports::{ModelStore, Ports};
use crate::secret::{ENV_REF, Secret};

/// Time allowed for one backend's model list during a sync.
const SYNC_TIMEOUT_MS: i64 = 30_000;
/// Largest model list read.
const MAX_MODELS_BODY: usize = 16 * 1024 * 1024;

/// A model as the admin API shows it: everything but the upstream keys.
#[derive(Serialize)]
struct AdminModel<'a> {
    #[serde(flatten)]
    model: &'a Model,
    has_api_key: bool,
    deployments: Vec<AdminDeployment<'a>>,
}

#[derive(Serialize)]
struct AdminDeployment<'a> {
    #[serde(flatten)]
    deployment: &'a Deployment,
    has_api_key: bool,
}

fn admin_view(m: &Model) -> AdminModel<'_> {
    AdminModel {
        model: m,
        has_api_key: m.has_api_key(),
        deployments: m
            .deployments
            .iter()
            .map(|d| AdminDeployment {
                deployment: d,
                has_api_key: d.has_api_key(),
            })
            .collect(),
    }
}

/// A model as an OpenAI client sees it.
fn client_view(m: &Model) -> Value {
    json!({"id": m.name, "object": "model", "created": m.created_at / 1000, "owned_by": "modelgate"})
}

/// A model as Anthropic's `ModelInfo`.
fn anthropic_view(m: &Model) -> Value {
    json!({
        "id": m.name,
        "type": "model",
        "display_name": m.name,
        "created_at": crate::calendar::rfc3339(m.created_at),
    })
}

/// Whether a request is an Anthropic client's (the model routes answer in
/// its shape).
fn asks_anthropic(req: &http::Request<Bytes>) -> bool {
    req.headers().contains_key(super::route::ANTHROPIC_VERSION)
}

pub(super) fn check_url(
    url: &str,
    param: &str,
    allow_link_local: bool,
) -> Result<(), GatewayError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2048
        && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
    if !ok {
        return Err(RequestError::invalid(
            format!("'{param}' must be an http(s) URL."),
            Some(param),
        )
        .into());
    }
    if !crate::edge::upstream_url_allowed(url, allow_link_local) {
        return Err(RequestError::invalid(
            format!("'{param}' is a link-local or cloud metadata address (MG_ALLOW_LINK_LOCAL_UPSTREAMS)."),
            Some(param),
        )
        .into());
    }
    Ok(())
}

/// Check a model's fields the way both create and patch need (the upstream
/// key: [`Gateway::check_api_key`]).
fn check_model(m: &Model, allow_link_local: bool) -> Result<(), GatewayError> {
    crate::request::valid_model(&m.name)?;
    crate::request::valid_model(&m.upstream_model).map_err(|_| {
        RequestError::invalid(
            "'upstream_model' must be a model name.",
            Some("upstream_model"),
        )
    })?;
    check_url(&m.base_url, "base_url", allow_link_local)?;
    for u in &m.fallback_urls {
        check_url(u, "fallback_urls", allow_link_local)?;
    }
    for d in &m.deployments {
        check_url(&d.base_url, "deployments", allow_link_local)?;
    }
    Ok(())
}

/// The fields a model's explicit deployments own.
fn touches_backend_fields(p: &ModelPatch) -> bool {
    p.backend.is_some()
        || p.base_url.is_some()
        || p.fallback_urls.as_ref().is_some_and(|f| !f.is_empty())
        || p.upstream_model.is_some()
        || p.api_key.is_some()
}

/// Whether a patch would send the model's stored upstream key somewhere it
/// was not sent before: another backend, or a base or fallback URL that is
/// not one of the model's current ones.
fn moves_key(current: &Model, after: &Model, backend: Option<BackendKind>) -> bool {
    let known: Vec<&str> = std::iter::once(&current.base_url)
        .chain(&current.fallback_urls)
        .map(|u| u.trim_end_matches('/'))
        .collect();
    backend.is_some_and(|b| b != current.backend)
        || std::iter::once(&after.base_url)
            .chain(&after.fallback_urls)
            .any(|u| !known.contains(&u.trim_end_matches('/')))
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Upstream keys are write-only: one that followed a changed URL to a host
/// the admin controls would be read there. So it never follows.
fn key_must_be_given_again(param: &str) -> GatewayError {
    RequestError::invalid(
        "Changing the backend or an upstream URL would send the stored upstream key to \
         another place: give 'api_key' again with the change (null to have none).",
        Some(param),
    )
    .into()
}

impl<P: Ports> Gateway<P> {
    /// An upstream key as an admin may write it: no control characters, and
    /// an `env:NAME` reference only to a declared upstream secret, so that
    /// an admin key cannot read the deployment's other secrets through an
    /// upstream it controls. Refused when written, not when used.
    fn check_api_key(&self, key: Option<&Secret>) -> Result<(), GatewayError> {
        let Some(key) = key.map(Secret::expose) else {
            return Ok(());
        };
        if key.chars().any(char::is_control) {
            return Err(RequestError::invalid(
                "'api_key' must not contain control characters.",
                Some("api_key"),
            )
            .into());
        }
        match key.strip_prefix(ENV_REF) {
            Some(name) if !self.config().secret_declared(name) => Err(RequestError::invalid(
                format!(
                    "'api_key' refers to {ENV_REF}{name}, which is not a declared upstream secret (MG_UPSTREAM_SECRETS)."
                ),
                Some("api_key"),
            )
            .into()),
            _ => Ok(()),
        }
    }

    pub(super) async fn list_models(
        &self,
        req: &http::Request<Bytes>,
        peer: Peer,
    ) -> Result<Response<P>, GatewayError> {
        let key = self.key_of(req, peer).await?;
        let models = self.ports().store().list_models().await?;
        let usable = models.iter().filter(|m| {
            m.enabled && (key.allowed_models.is_empty() || key.allowed_models.contains(&m.name))
        });
        if !asks_anthropic(req) {
            let data: Vec<Value> = usable.map(client_view).collect();
            return Ok(json_response(
                StatusCode::OK,
                &json!({"object": "list", "data": data}),
            ));
        }
        // One page holds every model: a gateway has tens, not thousands.
        let data: Vec<Value> = usable.map(anthropic_view).collect();
        let first = data.first().map(|m| m["id"].clone());
        let last = data.last().map(|m| m["id"].clone());
        Ok(json_response(
            StatusCode::OK,
            &json!({"data": data, "has_more": false, "first_id": first, "last_id": last}),
        ))
    }

    pub(super) async fn get_model(
        &self,
        req: &http::Request<Bytes>,
        peer: Peer,
        name: &str,
    ) -> Result<Response<P>, GatewayError> {
        let key = self.key_of(req, peer).await?;
        let m = self.resolve_model(&key, name).await?;
        let view = if asks_anthropic(req) {
            anthropic_view(&m)
        } else {
            client_view(&m)
        };
        Ok(json_response(StatusCode::OK, &view))
    }

    pub(super) async fn admin_list_models(&self) -> Result<Response<P>, GatewayError> {
        let models = self.ports().store().list_models().await?;
        let data: Vec<AdminModel<'_>> = models.iter().map(admin_view).collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": data}),
        ))
    }

    pub(super) async fn admin_get_model(&self, id: &str) -> Result<Response<P>, GatewayError> {
        let m = self
            .ports()
            .store()
            .get_model(id)
            .await?
            .ok_or_else(|| RequestError::NotFound("Model".into()))?;
        Ok(json_response(StatusCode::OK, &admin_view(&m)))
    }

    /// A model record for `spec`, with a fresh id, checked like admin input.
    fn model_from_spec(&self, spec: ModelSpec) -> Result<Model, GatewayError> {
        let now = self.now_ms();
        let either = || {
            RequestError::invalid(
                "A model needs 'backend' and 'base_url', or 'deployments' (not both).",
                Some("deployments"),
            )
        };
        let (backend, base_url) = match (spec.backend, spec.base_url, spec.deployments.first()) {
            (Some(b), Some(u), None) => (b, u),
            (None, None, Some(d)) => (d.backend, d.base_url.clone()),
            _ => return Err(either().into()),
        };
        let mut model = Model {
            id: self.new_id("mdl_"),
            upstream_model: spec.upstream_model.unwrap_or_else(|| spec.name.clone()),
            name: spec.name,
            backend,
            base_url: base_url.trim_end_matches('/').to_owned(),
            fallback_urls: spec.fallback_urls,
            api_key: spec.api_key.filter(|k| !k.expose().is_empty()),
            enabled: spec.enabled.unwrap_or(true),
            stream_usage: spec.stream_usage.unwrap_or(true),
            responses_api: spec.responses_api,
            messages_api: spec.messages_api,
            deployments: spec.deployments,
            prices: spec.prices,
            created_at: now,
            updated_at: now,
        };
        model.normalize_deployments()?;
        check_model(&model, self.config().allow_link_local_upstreams)?;
        self.check_api_key(model.api_key.as_ref())?;
        for d in &model.deployments {
            self.check_api_key(d.api_key.as_ref())?;
        }
        Ok(model)
    }

    pub(super) async fn create_model(&self, body: &[u8]) -> Result<Response<P>, GatewayError> {
        let model = self.model_from_spec(parse_body(body)?)?;
        let m = self
            .ports()
            .store()
            .insert_model(NewModel { model })
            .await?;
        Ok(json_response(StatusCode::CREATED, &admin_view(&m)))
    }

    pub(super) async fn patch_model(
        &self,
        id: &str,
        body: &[u8],
    ) -> Result<Response<P>, GatewayError> {
        let mut patch: ModelPatch = parse_body(body)?;
        let store = self.ports().store();
        let current = store
            .get_model(id)
            .await?
            .ok_or_else(|| RequestError::NotFound("Model".into()))?;
        let explicit = patch
            .deployments
            .as_ref()
            .map_or(!current.deployments.is_empty(), |d| !d.is_empty());
        if explicit && touches_backend_fields(&patch) {
            return Err(RequestError::invalid(
                "This model is served by 'deployments': change them there.",
                Some("deployments"),
            )
            .into());
        }
        // Check the model as it would be after the patch.
        let mut after = current.clone();
        if let Some(n) = &patch.name {
            after.name.clone_from(n);
        }
        if let Some(u) = &patch.base_url {
            after.base_url.clone_from(u);
        }
        if let Some(u) = &patch.upstream_model {
            after.upstream_model.clone_from(u);
        }
        if let Some(f) = &patch.fallback_urls {
            after.fallback_urls.clone_from(f);
        }
        if let Some(k) = &patch.api_key {
            after.api_key.clone_from(k);
        } else if current.api_key.is_some() && moves_key(&current, &after, patch.backend) {
            return Err(key_must_be_given_again("api_key"));
        }
        if let Some(list) = &patch.deployments {
            after.deployments.clone_from(list);
            for d in after.deployments.iter_mut().filter(|d| d.api_key.is_none()) {
                let same = current.deployments.iter().find(|c| c.name == d.name);
                if same.is_some_and(|c| {
                    c.api_key.is_some()
                        && (c.backend != d.backend || !same_url(&c.base_url, &d.base_url))
                }) {
                    return Err(key_must_be_given_again("deployments"));
                }
                d.api_key = same.and_then(|c| c.api_key.clone());
            }
            if explicit {
                after.fallback_urls.clear();
            }
            after.normalize_deployments()?;
            for d in &after.deployments {
                self.check_api_key(d.api_key.as_ref())?;
            }
            // The first deployment is mirrored into the backend fields.
            patch.deployments = Some(after.deployments.clone());
            patch.backend = Some(after.backend);
            patch.base_url = Some(after.base_url.clone());
            patch.upstream_model = Some(after.upstream_model.clone());
            patch.api_key = Some(after.api_key.clone());
            patch.fallback_urls = Some(after.fallback_urls.clone());
        }
        check_model(&after, self.config().allow_link_local_upstreams)?;
        if let Some(k) = &patch.api_key {
            self.check_api_key(k.as_ref())?;
        }
        let m = store.update_model(id, patch, self.now_ms()).await?;
        self.inner.records.models_changed();
        let m = m.ok_or_else(|| RequestError::NotFound("Model".into()))?;
        Ok(json_response(StatusCode::OK, &admin_view(&m)))
    }

    /// Make the store hold `specs` (a declarative models file): models are
    /// matched by name, created or updated, and checked like admin input.
    /// Returns the names created and updated.
    pub async fn apply_model_specs(
        &self,
        specs: Vec<ModelSpec>,
    ) -> Result<(Vec<String>, Vec<String>), GatewayError> {
        let store = self.ports().store();
        let (mut created, mut updated) = (vec![], vec![]);
        for spec in specs {
            let model = self.model_from_spec(spec)?;
            match store.find_model(&model.name).await? {
                None => created.push(store.insert_model(NewModel { model }).await?.name),
                Some(current) => {
                    let patch = ModelPatch {
                        name: None,
                        backend: Some(model.backend),
                        base_url: Some(model.base_url),
                        fallback_urls: Some(model.fallback_urls),
                        upstream_model: Some(model.upstream_model),
                        api_key: Some(model.api_key),
                        enabled: Some(model.enabled),
                        stream_usage: Some(model.stream_usage),
                        responses_api: Some(model.responses_api),
                        messages_api: Some(model.messages_api),
                        deployments: Some(model.deployments),
                        prices: Some(model.prices),
                    };
                    store
                        .update_model(&current.id, patch, self.now_ms())
                        .await?;
                    self.inner.records.models_changed();
                    updated.push(model.name);
                }
            }
        }
        Ok((created, updated))
    }

    pub(super) async fn delete_model(&self, id: &str) -> Result<Response<P>, GatewayError> {
        let deleted = self.ports().store().delete_model(id).await?;
        self.inner.records.models_changed();
        if !deleted {
            return Err(RequestError::NotFound("Model".into()).into());
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"id": id, "deleted": true}),
        ))
    }

    /// Import the models each backend lists that are not configured yet.
    /// With a body, only that backend; without, the configured sync
    /// backends and every backend an existing model points at.
    pub(super) async fn sync_models(&self, body: &[u8]) -> Result<Response<P>, GatewayError> {
        let store = self.ports().store();
        let existing = store.list_models().await?;
        let backends: Vec<SyncBackend> = if body.iter().any(|b| !b.is_ascii_whitespace()) {
            let b: SyncBackend = parse_body(body)?;
            check_url(
                &b.base_url,
                "base_url",
                self.config().allow_link_local_upstreams,
            )?;
            self.check_api_key(b.api_key.as_ref())?;
            vec![b]
        } else {
            let mut seen = BTreeSet::new();
            self.config()
                .sync_backends
                .iter()
                .cloned()
                .chain(existing.iter().flat_map(|m| {
                    m.deployments()
                        .iter()
                        .map(|d| SyncBackend {
                            backend: d.backend,
                            base_url: d.base_url.clone(),
                            api_key: d.api_key.clone(),
                        })
                        .collect::<Vec<_>>()
                }))
                .filter(|b| seen.insert((b.backend.as_str(), b.base_url.clone())))
                .collect()
        };
        let mut names: BTreeSet<String> = existing.iter().map(|m| m.name.clone()).collect();
        let (mut created, mut errors) = (vec![], vec![]);
        for b in &backends {
            let listed = match self.fetch_model_names(b).await {
                Ok(l) => l,
                Err(e) => {
                    errors.push(json!({"backend": b.backend, "base_url": b.base_url, "error": e.body()["error"]["message"]}));
                    continue;
                }
            };
            for upstream in listed {
                if crate::request::valid_model(&upstream).is_err()
                    || !names.insert(upstream.clone())
                {
                    continue;
                }
                let spec = ModelSpec {
                    name: upstream.clone(),
                    backend: Some(b.backend),
                    base_url: Some(b.base_url.clone()),
                    upstream_model: Some(upstream),
                    api_key: b.api_key.clone(),
                    fallback_urls: vec![],
                    enabled: None,
                    stream_usage: None,
                    responses_api: None,
                    messages_api: None,
                    deployments: vec![],
                    prices: None,
                };
                let model = self.model_from_spec(spec)?;
                let m = store.insert_model(NewModel { model }).await?;
                created.push(m.name);
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"created": created, "errors": errors}),
        ))
    }

    async fn fetch_model_names(&self, b: &SyncBackend) -> Result<Vec<String>, GatewayError> {
        let key = self.resolve_key(b.api_key.as_ref())?;
        let target = Target {
            base_url: b.base_url.trim_end_matches('/'),
            model: "",
            api_key: key.as_deref(),
        };
        let req = b.backend.models_request(&target)?;
        let deadline = self.now_ms() + SYNC_TIMEOUT_MS;
        let resp = match self.until(deadline, self.send_upstream(req)).await {
            None => return Err(UpstreamError::Timeout.into()),
            Some(Err(e)) => return Err(UpstreamError::Connect { detail: e.detail }.into()),
            Some(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        let buf = self
            .read_limited(resp.into_body(), deadline, MAX_MODELS_BODY)
            .await?;
        if !(200..300).contains(&status) {
            return Err(crate::backend::upstream_error(status, &buf).into());
        }
        Ok(b.backend.parse_models(&buf)?)
    }
}
