//! The tower stack a connection serves: default headers → proxy headers → access log →
//! input limits → live reload → static files → reload gate → the app bridge.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use tower::{Layer, Service};

use super::access_log::{AccessLog, AccessLogLayer};
use super::asgi::AsgiBridge;
use super::conn_info::ConnInfo;
use super::default_headers::{DefaultHeaders, DefaultHeadersLayer, DefaultHeadersService};
use super::intercept::Intercepting;
use super::limits::{ConnState, LimitsLayer, LimitsService};
use super::livereload::LiveHub;
use super::livereload::layer::{LiveReload, LiveReloadService};
use super::proxy_headers::{ProxyHeaders, ProxyHeadersLayer, TrustedHosts};
use super::response::ResponseBody;
use super::static_files::{Mounts, StaticFiles, StaticFilesService};
use super::wsgi::WsgiBridge;
use crate::reload::gate::{Gate, GateLayer, GateService};

#[derive(Clone)]
pub enum Bridge {
    Asgi(Arc<AsgiBridge>),
    Wsgi(Arc<WsgiBridge>),
}

#[derive(Clone)]
pub struct AppService {
    bridge: Bridge,
    conn: Arc<ConnInfo>,
}

impl Service<Request<Incoming>> for AppService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let conn = self.conn.clone();
        match &self.bridge {
            Bridge::Asgi(bridge) => {
                let bridge = bridge.clone();
                Box::pin(async move { Ok(bridge.handle(req, conn).await) })
            }
            Bridge::Wsgi(bridge) => {
                let bridge = bridge.clone();
                Box::pin(async move { Ok(bridge.handle(req, conn).await) })
            }
        }
    }
}

pub type ConnectionService = DefaultHeadersService<
    ProxyHeaders<
        AccessLog<LimitsService<LiveReloadService<StaticFilesService<GateService<AppService>>>>>,
    >,
>;

/// What every connection needs to build its service stack.
pub struct StackConfig {
    pub bridge: Bridge,
    pub gate: Arc<Gate>,
    pub access_log: bool,
    pub default_headers: Arc<DefaultHeaders>,
    /// `None`: `--no-proxy-headers`.
    pub trusted_proxies: Option<Arc<TrustedHosts>>,
    /// Live reload and error-page banners; None when both are off.
    pub live: Option<Arc<LiveHub>>,
    /// `--static` mounts (maybe none).
    pub statics: Arc<Mounts>,
    /// `--root-path`, without a trailing slash: the static mounts answer behind it too.
    pub root_path: Arc<str>,
}

impl StackConfig {
    pub fn for_connection(&self, conn: ConnInfo, state: Arc<ConnState>) -> ConnectionService {
        let conn = Arc::new(conn);
        let app = AppService {
            bridge: self.bridge.clone(),
            conn: conn.clone(),
        };
        let gated = GateLayer::new(self.gate.clone()).layer(app);
        let rewrites_html = self
            .live
            .as_ref()
            .is_some_and(|hub| hub.trusts(conn.client));
        let statics = Intercepting::new(
            gated,
            StaticFiles::new(self.statics.clone(), rewrites_html, self.root_path.clone()),
        );
        let live = Intercepting::new(statics, LiveReload::new(self.live.clone(), &conn));
        let limited = LimitsLayer::new(state).layer(live);
        let logged = AccessLogLayer::new(conn.clone(), self.access_log).layer(limited);
        let proxied = ProxyHeadersLayer::new(conn, self.trusted_proxies.clone()).layer(logged);
        DefaultHeadersLayer::new(self.default_headers.clone()).layer(proxied)
    }
}
