//! What the admin API shows of deployments (their state on this
//! instance), and the readiness checks the native server runs.

use futures_util::future::join_all;
use http::StatusCode;
use serde_json::{Value, json};

use super::{Gateway, Response, json_response};
use crate::backend::Target;
use crate::deployment::Deployment;
use crate::error::GatewayError;
use crate::ports::{ModelStore, Ports};

/// Time allowed for one readiness check.
const CHECK_TIMEOUT_MS: i64 = 5_000;

impl<P: Ports> Gateway<P> {
    /// `GET /admin/api/deployments`: every model's deployments, each with
    /// its settings (never its URL or key) and its state here.
    pub(super) async fn admin_deployments(&self) -> Result<Response<P>, GatewayError> {
        let models = self.ports().store().list_models().await?;
        let now = self.now_ms();
        let data: Vec<Value> = models
            .iter()
            .map(|m| {
                let list = m.deployments();
                let states = self.inner.router.states(&m.name, &list, now);
                let deployments: Vec<Value> = list
                    .iter()
                    .zip(states)
                    .map(|(d, s)| {
                        let mut v = json!(s);
                        v["backend"] = json!(d.backend);
                        v["weight"] = json!(d.weight);
                        v["priority"] = json!(d.priority);
                        v["health_check"] = json!(d.health_check);
                        v
                    })
                    .collect();
                json!({"model": m.name, "enabled": m.enabled, "deployments": deployments})
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "now": now, "data": data}),
        ))
    }

    /// Check every deployment that asks for it, at once, and take each
    /// result into the routing state: a failed check (no answer within
    /// five seconds, or a non-2xx answer) ejects the deployment until a
    /// check passes.
    pub async fn check_deployments(&self) -> Result<(), GatewayError> {
        let models = self.ports().store().list_models().await?;
        let checks = models.iter().filter(|m| m.enabled).flat_map(|m| {
            m.deployments()
                .iter()
                .filter(|d| d.health_check)
                .map(|d| (m.name.clone(), d.clone()))
                .collect::<Vec<_>>()
        });
        let results = join_all(checks.map(|(model, d)| async move {
            let ready = self.ready(&d).await;
            (model, d, ready)
        }))
        .await;
        let now = self.now_ms();
        for (model, d, ready) in results {
            if !ready {
                tracing::warn!(model = %model, deployment = %d.name, "deployment failed its readiness check");
            }
            self.inner.router.checked(&model, &d, ready, now);
        }
        Ok(())
    }

    async fn ready(&self, d: &Deployment) -> bool {
        let Ok(key) = self.resolve_key(d.api_key.as_ref()) else {
            return false;
        };
        let target = Target {
            base_url: &d.base_url,
            model: &d.upstream_model,
            api_key: key.as_deref(),
        };
        let Ok(req) = d.backend.health_request(&target) else {
            return false;
        };
        let deadline = self.now_ms() + CHECK_TIMEOUT_MS;
        match self.until(deadline, self.send_upstream(req)).await {
            Some(Ok(resp)) => resp.status().is_success(),
            _ => false,
        }
    }
}
