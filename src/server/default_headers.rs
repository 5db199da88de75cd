//! Headers every response carries: `server: hmr-serve` (`--no-server-header` drops it) and the
//! `--header NAME:VALUE` ones. A header the app set itself is left alone. `Date` is hyper's
//! (see `--no-date-header` in the listener).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Response;
use http::header::{HeaderName, HeaderValue, SERVER};
use tower::{Layer, Service};

/// The headers to add, in order; parsed once at start.
#[derive(Debug, Default)]
pub struct DefaultHeaders(Vec<(HeaderName, HeaderValue)>);

impl DefaultHeaders {
    /// `server_header`: add `server: hmr-serve`; `extra`: `--header` pairs. Errors name the
    /// header that is not valid HTTP.
    pub fn new(server_header: bool, extra: &[(String, String)]) -> Result<Self, String> {
        let mut headers = Vec::new();
        if server_header && !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("server")) {
            headers.push((SERVER, HeaderValue::from_static("hmr-serve")));
        }
        for (name, value) in extra {
            let parsed_name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("--header {name:?}: not a valid header name"))?;
            let parsed_value = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("--header {name}: {value:?} is not a valid header value"))?;
            headers.push((parsed_name, parsed_value));
        }
        Ok(Self(headers))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn apply<B>(&self, mut response: Response<B>) -> Response<B> {
        let headers = response.headers_mut();
        let mut added: Vec<&HeaderName> = Vec::new();
        for (name, value) in &self.0 {
            // Repeated `--header` names all go out; a name the app already set is the app's.
            if added.contains(&name) || !headers.contains_key(name) {
                headers.append(name.clone(), value.clone());
                added.push(name);
            }
        }
        response
    }
}

#[derive(Clone)]
pub struct DefaultHeadersLayer(Arc<DefaultHeaders>);

impl DefaultHeadersLayer {
    pub fn new(headers: Arc<DefaultHeaders>) -> Self {
        Self(headers)
    }
}

impl<S> Layer<S> for DefaultHeadersLayer {
    type Service = DefaultHeadersService<S>;

    fn layer(&self, inner: S) -> DefaultHeadersService<S> {
        DefaultHeadersService {
            inner,
            headers: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct DefaultHeadersService<S> {
    inner: S,
    headers: Arc<DefaultHeaders>,
}

impl<S, Req, B> Service<Req> for DefaultHeadersService<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Future: Unpin,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = WithHeaders<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        WithHeaders {
            inner: self.inner.call(req),
            headers: self.headers.clone(),
        }
    }
}

/// The inner response future, with the headers added once it resolves (no extra allocation).
pub struct WithHeaders<F> {
    inner: F,
    headers: Arc<DefaultHeaders>,
}

impl<F, B, E> Future for WithHeaders<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll(cx) {
            Poll::Ready(Ok(response)) => Poll::Ready(Ok(this.headers.apply(response))),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_server_and_extra_headers_but_keeps_the_apps() {
        let extra = [
            ("X-Env".to_owned(), "dev".to_owned()),
            ("x-env".to_owned(), "two".to_owned()),
            ("x-app".to_owned(), "ours".to_owned()),
        ];
        let headers = DefaultHeaders::new(true, &extra).unwrap();
        let response = Response::builder()
            .header("x-app", "theirs")
            .body(())
            .unwrap();
        let response = headers.apply(response);
        let h = response.headers();
        assert_eq!(h["server"], "hmr-serve");
        let envs: Vec<_> = h.get_all("x-env").iter().collect();
        assert_eq!(envs, ["dev", "two"]);
        let apps: Vec<_> = h.get_all("x-app").iter().collect();
        assert_eq!(apps, ["theirs"]);
    }

    #[test]
    fn bad_header_names_are_reported() {
        let err = DefaultHeaders::new(false, &[("bad name".into(), "v".into())]).unwrap_err();
        assert!(err.contains("bad name"), "{err}");
        assert!(DefaultHeaders::new(false, &[]).unwrap().is_empty());
    }
}
