//! `--static /url=dir`: files served by the server itself, in front of the reload gate (a file
//! never waits for a reload) and behind the live-reload layer (HTML files get its script like
//! app pages). A mounted prefix owns its URLs: what is not a servable file there is a 404 (405
//! for methods other than GET and HEAD), never the app's; paths outside every mount pass on
//! untouched. Mounts answer with or without `--root-path` in front (see `root_path`).

pub mod range;
pub mod resolve;
pub mod serve;
pub mod validators;

use std::sync::Arc;

use http::header::{ALLOW, HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};

pub use self::resolve::Mounts;
use self::resolve::{Located, Resolved};
use super::intercept::{Decision, Intercept, Intercepting};
use super::livereload::inject;
use super::response::{ResponseBody, ResponseHead};
use super::root_path;

pub type StaticFilesService<S> = Intercepting<S, StaticFiles>;

#[derive(Clone)]
pub struct StaticFiles {
    mounts: Arc<Mounts>,
    /// The live-reload layer rewrites HTML pages for this connection's client.
    rewrites_html: bool,
    /// `--root-path`.
    root_path: Arc<str>,
}

impl StaticFiles {
    pub fn new(mounts: Arc<Mounts>, rewrites_html: bool, root_path: Arc<str>) -> Self {
        Self {
            mounts,
            rewrites_html,
            root_path,
        }
    }
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

impl Intercept for StaticFiles {
    fn decide<B>(&self, req: Request<B>) -> Decision<B> {
        if self.mounts.is_empty() {
            return Decision::Pass(req);
        }
        let path = root_path::strip(&self.root_path, req.uri().path());
        let (root, relative, trailing_slash) = match self.mounts.locate(path) {
            Located::Outside => return Decision::Pass(req),
            Located::Refused => return Decision::respond(serve::not_found()),
            Located::Inside {
                root,
                relative,
                trailing_slash,
            } => (root.to_owned(), relative, trailing_slash),
        };
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Decision::respond(method_not_allowed());
        }
        let rewrites_html = self.rewrites_html;
        let root_path = self.root_path.clone();
        // The body of a GET or HEAD is never read; dropping it lets hyper deal with it.
        let (parts, _body) = req.into_parts();
        Decision::Answer(Box::pin(async move {
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
        }))
    }
}
