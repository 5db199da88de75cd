//! Tower layer that writes one uvicorn-style access line per request when its response starts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, Version};
use tower::{Layer, Service};

use super::conn_info::ConnInfo;
use super::proxy_headers::Forwarded;
use crate::log::{self, Access, Level};

#[derive(Clone)]
pub struct AccessLogLayer {
    conn: Arc<ConnInfo>,
    enabled: bool,
}

impl AccessLogLayer {
    pub fn new(conn: Arc<ConnInfo>, enabled: bool) -> Self {
        Self { conn, enabled }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    layer: AccessLogLayer,
}

fn version_label(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

impl<S, B, RB> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !(self.layer.enabled && log::enabled(Level::Info)) {
            return Box::pin(self.inner.call(req));
        }
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        // Like uvicorn, the client a trusted proxy named, as `host:port`.
        let client = match req.extensions().get::<Forwarded>() {
            Some(Forwarded {
                client: Some((host, port)),
                ..
            }) => format!("{host}:{port}"),
            _ => self.layer.conn.client_label(),
        };
        let method = req.method().to_string();
        let version = version_label(req.version());
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            if let Ok(response) = &result {
                log::access(Access {
                    client,
                    method,
                    target,
                    version,
                    status: response.status().as_u16(),
                });
            }
            result
        })
    }
}
