//! The upstream HTTP port on the Workers `fetch` API. The response body is
//! a stream read chunk by chunk as it arrives, never buffered here.

use bytes::Bytes;
use futures_util::StreamExt;
use modelgate_core::ports::{ByteStream, HttpClient, TransportError, TransportErrorKind};
use worker::{Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

/// `fetch` as an [`HttpClient`].
#[derive(Debug, Default)]
pub(crate) struct FetchHttp;

/// A streamed `fetch` response body.
pub(crate) struct FetchBody(Option<worker::ByteStream>);

impl ByteStream for FetchBody {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, TransportError>> {
        let stream = self.0.as_mut()?;
        match stream.next().await? {
            Ok(chunk) => Some(Ok(Bytes::from(chunk))),
            Err(e) => Some(Err(TransportError {
                kind: TransportErrorKind::Broken,
                detail: e.to_string(),
            })),
        }
    }
}

fn connect_error(e: worker::Error) -> TransportError {
    // The runtime's message for a failed fetch names no URL.
    TransportError {
        kind: TransportErrorKind::Connect,
        detail: e.to_string(),
    }
}

impl HttpClient for FetchHttp {
    type Body = FetchBody;

    async fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<FetchBody>, TransportError> {
        let (parts, body) = req.into_parts();
        let headers = Headers::new();
        for (name, value) in &parts.headers {
            if let Ok(v) = value.to_str() {
                headers.set(name.as_str(), v).map_err(connect_error)?;
            }
        }
        let mut init = RequestInit::new();
        // Never follow a redirect (the upstream key would go along): the
        // core answers a 3xx as an upstream error.
        init.with_method(Method::from(parts.method.as_str().to_owned()))
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if !body.is_empty() {
            init.with_body(Some(js_sys_bytes(&body)));
        }
        let request =
            Request::new_with_init(&parts.uri.to_string(), &init).map_err(connect_error)?;
        let mut resp = Fetch::Request(request)
            .send()
            .await
            .map_err(connect_error)?;
        let mut out = http::Response::builder().status(resp.status_code());
        for (name, value) in resp.headers().entries() {
            out = out.header(name, value);
        }
        let stream = resp.stream().ok();
        out.body(FetchBody(stream)).map_err(|e| TransportError {
            kind: TransportErrorKind::Broken,
            detail: e.to_string(),
        })
    }
}

fn js_sys_bytes(body: &[u8]) -> wasm_bindgen::JsValue {
    worker::js_sys::Uint8Array::from(body).into()
}
