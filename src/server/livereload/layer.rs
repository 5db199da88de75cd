//! Tower layer in front of the reload gate: answers the event stream itself and splices the
//! live-reload script (and the failing reload's overlay) into HTML pages.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::{LiveHub, events, inject};
use crate::server::conn_info::ConnInfo;
use crate::server::response::ResponseBody;

#[derive(Clone)]
pub struct LiveReloadLayer {
    hub: Option<Arc<LiveHub>>,
    trusted: bool,
}

impl LiveReloadLayer {
    /// `hub` None: live reload and error pages are both off, requests pass untouched.
    pub fn new(hub: Option<Arc<LiveHub>>, conn: &ConnInfo) -> Self {
        let trusted = hub.as_ref().is_some_and(|hub| hub.trusts(conn.client));
        Self { hub, trusted }
    }
}

impl<S> Layer<S> for LiveReloadLayer {
    type Service = LiveReload<S>;

    fn layer(&self, inner: S) -> LiveReload<S> {
        LiveReload {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct LiveReload<S> {
    inner: S,
    layer: LiveReloadLayer,
}

impl<S, B> Service<Request<B>> for LiveReload<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(hub) = self.layer.hub.clone() else {
            return Box::pin(self.inner.call(req));
        };
        let trusted = self.layer.trusted;
        if hub.livereload && hub.is_events_path(req.uri().path()) {
            return Box::pin(std::future::ready(Ok(events::response(&hub, trusted))));
        }
        if !inject::browser_navigation(req.headers()) {
            return Box::pin(self.inner.call(req));
        }
        let method = req.method().clone();
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await?;
            // Read once the response exists: a request held through a failing reload shows it.
            match hub.snippet(trusted) {
                Some(snippet) => Ok(inject::into_response(response, &method, &snippet).await),
                None => Ok(response),
            }
        })
    }
}
