//! The request head, checked before the body is read: its route comes from
//! the route table, and a request for no route, with the wrong method, or
//! without the key (or admin key) its route needs is refused from its
//! headers, so nobody without a key can make the gateway buffer a body.
//! The checked key travels on in the request's extensions (which only the
//! runtime can set), so handling the request does not look it up again.

use super::route::{ANTHROPIC_VERSION, Credential, ErrorShape, Route};
use super::{Gateway, Peer, Response};
use crate::auth;
use crate::domain::ApiKey;
use crate::error::{AuthError, GatewayError, RequestError};
use crate::ports::Ports;
use crate::request::Endpoint;

/// The key the head carried, checked (status, expiry, IP).
#[derive(Debug, Clone)]
pub(super) struct CheckedKey(pub(super) ApiKey);

/// The head carried an admin key.
#[derive(Debug, Clone, Copy)]
pub(super) struct CheckedAdmin;

/// What the head check decided for the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Whether to read the request's body: only for a route that takes
    /// one. Otherwise the runtime answers without buffering a byte of it.
    pub reads_body: bool,
    /// The route's body limit, bytes: the runtime refuses a body past it
    /// while reading (413).
    pub body_limit: usize,
    /// The shape of the request's errors, for [`Gateway::reject`].
    pub shape: ErrorShape,
}

impl<P: Ports> Gateway<P> {
    /// Decide the route from the request head and check the credentials it
    /// needs, before the runtime reads the body. `Err` is the answer to send
    /// (an unknown route, a wrong method, a missing or bad key, a body
    /// announced over the limit; the body need not be read); on `Ok` the runtime reads the body if told to and
    /// calls [`Gateway::handle`] with this head.
    pub async fn check_head(
        &self,
        head: &mut http::request::Parts,
        peer: Peer,
    ) -> Result<Admitted, Response<P>> {
        let route = Route::resolve(&head.method, head.uri.path())
            .map_err(|e| self.reject(&e.into(), ErrorShape::OpenAi))?;
        let shape = ErrorShape::of(Some(&route), &head.headers);
        let peer = self.client_peer(&head.headers, peer);
        let checked = match route.credential() {
            Credential::None => Ok(()),
            Credential::ClientKey => self.key_from(&head.headers, peer).await.map(|k| {
                head.extensions.insert(CheckedKey(k));
            }),
            Credential::Admin => self.admin_from(&head.headers, peer).await.map(|()| {
                head.extensions.insert(CheckedAdmin);
            }),
        };
        checked.map_err(|e| self.reject(&e, shape))?;
        if shape == ErrorShape::Anthropic
            && matches!(route, Route::Proxy(_) | Route::CountTokens)
            && !head.headers.contains_key(ANTHROPIC_VERSION)
        {
            let missing = RequestError::invalid("anthropic-version: header is required", None);
            return Err(self.reject(&missing.into(), shape));
        }
        let reads_body = route.takes_body(&head.method);
        let limit = self.body_limit(&route);
        let announced = head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if reads_body && announced.is_some_and(|n| n > limit as u64) {
            return Err(self.reject(&RequestError::BodyTooLarge { limit }.into(), shape));
        }
        head.extensions.insert(route);
        Ok(Admitted {
            reads_body,
            body_limit: limit,
            shape,
        })
    }

    /// The largest body `route` takes.
    pub(super) fn body_limit(&self, route: &Route) -> usize {
        match route {
            Route::Proxy(Endpoint::Messages) | Route::CountTokens => {
                self.config().max_messages_body_bytes
            }
            _ => self.config().max_body_bytes,
        }
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

/// SHA-256 of the request's key: `x-api-key` (Anthropic's header, which
/// wins when both are sent, as it does at Anthropic), else the bearer token.
pub(super) fn bearer_hash(headers: &http::HeaderMap) -> Result<String, AuthError> {
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let token = api_key
        .or_else(|| auth::bearer(headers.get(http::header::AUTHORIZATION)))
        .ok_or(AuthError::Missing)?;
    Ok(auth::hash_key(token))
}
