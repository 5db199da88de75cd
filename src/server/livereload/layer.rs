//! The live-reload layer, in front of the reload gate: answers the event stream itself and
//! splices the live-reload script (and the failing reload's overlay) into HTML pages.

use std::sync::Arc;

use http::Request;

use super::{LiveHub, events, inject};
use crate::server::conn_info::ConnInfo;
use crate::server::intercept::{Decision, Intercept, Intercepting};

pub type LiveReloadService<S> = Intercepting<S, LiveReload>;

#[derive(Clone)]
pub struct LiveReload {
    hub: Option<Arc<LiveHub>>,
    trusted: bool,
}

impl LiveReload {
    /// `hub` None: live reload and error pages are both off, requests pass untouched.
    pub fn new(hub: Option<Arc<LiveHub>>, conn: &ConnInfo) -> Self {
        let trusted = hub.as_ref().is_some_and(|hub| hub.trusts(conn.client));
        Self { hub, trusted }
    }
}

impl Intercept for LiveReload {
    fn decide<B>(&self, req: Request<B>) -> Decision<B> {
        let Some(hub) = self.hub.clone() else {
            return Decision::Pass(req);
        };
        let trusted = self.trusted;
        if hub.livereload && hub.is_events_path(req.uri().path()) {
            return Decision::respond(events::response(&hub, trusted));
        }
        if !inject::browser_navigation(req.headers()) {
            return Decision::Pass(req);
        }
        let method = req.method().clone();
        // Before the app renders the page (see LiveHub::generation).
        let generation = hub.generation();
        Decision::PassThen(
            req,
            Box::new(move |response| {
                Box::pin(async move {
                    // Read once the response exists: a request held through a failing reload
                    // shows it.
                    match hub.snippet(trusted, generation) {
                        Some(snippet) => {
                            Ok(inject::into_response(response, &method, &snippet).await)
                        }
                        None => Ok(response),
                    }
                })
            }),
        )
    }
}
