//! The tower stack a connection serves: access log → input limits → reload gate → the app
//! bridge.

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
use super::limits::{ConnState, LimitsLayer, LimitsService};
use super::response::ResponseBody;
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

pub type ConnectionService = AccessLog<LimitsService<GateService<AppService>>>;

/// What every connection needs to build its service stack.
pub struct StackConfig {
    pub bridge: Bridge,
    pub gate: Arc<Gate>,
    pub access_log: bool,
}

impl StackConfig {
    pub fn for_connection(&self, conn: ConnInfo, state: Arc<ConnState>) -> ConnectionService {
        let conn = Arc::new(conn);
        let app = AppService {
            bridge: self.bridge.clone(),
            conn: conn.clone(),
        };
        let gated = GateLayer::new(self.gate.clone()).layer(app);
        let limited = LimitsLayer::new(state).layer(gated);
        AccessLogLayer::new(conn, self.access_log).layer(limited)
    }
}
