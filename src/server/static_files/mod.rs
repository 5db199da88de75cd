//! `--static /url=dir`: files served by the server itself, in front of the reload gate (a file
//! never waits for a reload) and behind the live-reload layer (HTML files get its script like
//! app pages). A mounted prefix owns its URLs: what is not a servable file there is a 404 (405
//! for methods other than GET and HEAD), never the app's; paths outside every mount pass on
//! untouched. Mounts answer with or without `--root-path` in front (see `root_path`).

pub mod range;
pub mod resolve;
pub mod serve;
pub mod validators;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{ALLOW, HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};

pub use self::resolve::Mounts;
use self::resolve::{Located, Resolved};
use super::livereload::inject;
use super::response::{ResponseBody, ResponseHead};
use super::root_path;

#[derive(Clone)]
pub struct StaticLayer {
    mounts: Arc<Mounts>,
    /// The live-reload layer rewrites HTML pages for this connection's client.
    rewrites_html: bool,
    /// `--root-path`.
    root_path: Arc<str>,
}

impl StaticLayer {
    pub fn new(mounts: Arc<Mounts>, rewrites_html: bool, root_path: Arc<str>) -> Self {
        Self {
            mounts,
            rewrites_html,
            root_path,
        }
    }
}

impl<S> Layer<S> for StaticLayer {
    type Service = StaticFiles<S>;

    fn layer(&self, inner: S) -> StaticFiles<S> {
        StaticFiles {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct StaticFiles<S> {
    inner: S,
    layer: StaticLayer,
}

fn method_not_allowed() -> Response<ResponseBody> {
    let mut head = ResponseHead::plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    head.headers
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    head.into_response(None)
}

/// `/dir` → `/dir/`, the query kept, as Starlette's StaticFiles(html=True) does; behind the
/// root path, as the browser has to ask for it.
fn add_slash(uri: &http::Uri, root: &str) -> Response<ResponseBody> {
    let path = root_path::public(root, root_path::strip(root, uri.path()));
    let target = match uri.query() {
        Some(query) => format!("{path}/?{query}"),
        None => format!("{path}/"),
    };
    let mut head = ResponseHead::plain(StatusCode::TEMPORARY_REDIRECT, "Temporary Redirect");
    match HeaderValue::from_str(&target) {
        Ok(location) => {
            head.headers.insert(LOCATION, location);
            head.into_response(None)
        }
        Err(_) => serve::not_found(),
    }
}

impl<S, B> Service<Request<B>> for StaticFiles<S>
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
        let mounts = self.layer.mounts.clone();
        if mounts.is_empty() {
            return Box::pin(self.inner.call(req));
        }
        let path = root_path::strip(&self.layer.root_path, req.uri().path());
        let (root, relative, trailing_slash) = match mounts.locate(path) {
            Located::Outside => return Box::pin(self.inner.call(req)),
            Located::Refused => return Box::pin(std::future::ready(Ok(serve::not_found()))),
            Located::Inside {
                root,
                relative,
                trailing_slash,
            } => (root.to_owned(), relative, trailing_slash),
        };
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Box::pin(std::future::ready(Ok(method_not_allowed())));
        }
        let rewrites_html = self.layer.rewrites_html;
        let root_path = self.layer.root_path.clone();
        // The body of a GET or HEAD is never read; dropping it lets hyper deal with it.
        let (parts, _body) = req.into_parts();
        Box::pin(async move {
            let response = match resolve::resolve(&root, &relative, trailing_slash).await {
                Resolved::NotFound => serve::not_found(),
                Resolved::AddSlash => add_slash(&parts.uri, &root_path),
                Resolved::File(path) => {
                    let ask = serve::Ask {
                        method: &parts.method,
                        headers: &parts.headers,
                        rewritten_html: rewrites_html
                            && serve::is_html(&path)
                            && inject::browser_navigation(&parts.headers),
                    };
                    serve::file(&path, ask).await
                }
            };
            Ok(response)
        })
    }
}
