//! The request head, checked before the body is read: a request without a
//! valid key (or, on the admin API, an admin key) is refused from its
//! headers, so nobody without a key can make the gateway buffer a body.
//! The checked key travels on in the request's extensions (which only the
//! runtime can set), so handling the request does not look it up again.

use http::Method;

use super::proxy::bearer_hash;
use super::{Gateway, Peer, Response};
use crate::auth;
use crate::domain::ApiKey;
use crate::error::{AuthError, GatewayError};
use crate::ports::Ports;

/// The key the head carried, checked (status, expiry, IP).
#[derive(Debug, Clone)]
pub(super) struct CheckedKey(pub(super) ApiKey);

/// The head carried an admin key.
#[derive(Debug, Clone, Copy)]
pub(super) struct CheckedAdmin;

/// What a route needs from the head before its body is read.
enum Needs {
    Key,
    Admin,
    Nothing,
}

fn needs(method: &Method, path: &str) -> Needs {
    let path = path.trim_end_matches('/');
    if path == "/admin/api" || path.starts_with("/admin/api/") || path == "/metrics" {
        Needs::Admin
    } else if method == Method::POST
        && matches!(
            path,
            "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings" | "/v1/responses"
        )
    {
        Needs::Key
    } else {
        Needs::Nothing
    }
}

impl<P: Ports> Gateway<P> {
    /// Check the credentials a route needs from the request head alone,
    /// before the runtime reads the body. `Err` is the answer to send (the
    /// body need not be read); on `Ok` the runtime reads the body and calls
    /// [`Gateway::handle`] with this head.
    pub async fn check_head(
        &self,
        head: &mut http::request::Parts,
        peer: Peer,
    ) -> Result<(), Response<P>> {
        let peer = self.client_peer(&head.headers, peer);
        let checked = match needs(&head.method, head.uri.path()) {
            Needs::Nothing => return Ok(()),
            Needs::Key => self.key_from(&head.headers, peer).await.map(|k| {
                head.extensions.insert(CheckedKey(k));
            }),
            Needs::Admin => self.admin_from(&head.headers, peer).await.map(|()| {
                head.extensions.insert(CheckedAdmin);
            }),
        };
        checked.map_err(|e| self.reject(&e))
    }

    /// The checked key of a request: from its head's check, else looked up.
    pub(super) async fn key_of(
        &self,
        req: &http::Request<bytes::Bytes>,
        peer: Peer,
    ) -> Result<ApiKey, GatewayError> {
        match req.extensions().get::<CheckedKey>() {
            Some(CheckedKey(k)) => Ok(k.clone()),
            None => self.key_from(req.headers(), peer).await,
        }
    }

    /// Whether a request carries an admin key: from its head's check, else
    /// checked now.
    pub(super) async fn admin_of(
        &self,
        req: &http::Request<bytes::Bytes>,
        peer: Peer,
    ) -> Result<(), GatewayError> {
        if req.extensions().get::<CheckedAdmin>().is_some() {
            return Ok(());
        }
        self.admin_from(req.headers(), peer).await
    }

    async fn key_from(
        &self,
        headers: &http::HeaderMap,
        peer: Peer,
    ) -> Result<ApiKey, GatewayError> {
        self.checked_key(&bearer_hash(headers)?, peer).await
    }

    async fn admin_from(&self, headers: &http::HeaderMap, peer: Peer) -> Result<(), GatewayError> {
        let hash = bearer_hash(headers)?;
        if let Some(admin) = &self.config().admin_key_hash
            && auth::ct_eq(admin.expose(), &hash)
        {
            return Ok(());
        }
        if self.checked_key(&hash, peer).await?.admin {
            Ok(())
        } else {
            Err(AuthError::NotAdmin.into())
        }
    }
}
