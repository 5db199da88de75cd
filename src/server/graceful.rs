//! Graceful shutdown for connections that can be upgraded (WebSockets).
//!
//! hyper-util's `GracefulShutdown` only watches connection types it knows, and neither hyper's
//! `http1::UpgradeableConnection` nor hyper-util's `auto::UpgradeableConnection` is among them
//! (hyper-util 0.1.21). This is the same
//! contract for the types the listener serves: `watch` a connection, `count` those still open,
//! `shutdown` to ask them all to finish their current request and wait until they have.
//! An upgraded connection leaves hyper (its future completes), so a WebSocket is not counted
//! here: the WebSocket session closes itself on shutdown.

use std::future::Future;
use std::pin::Pin;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::rt::{Read, Write};
use hyper::server::conn::{http1, http2};
use hyper::service::{HttpService, Service};
use hyper_util::server::conn::auto;
use tokio::sync::watch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A hyper connection that can be told to stop after its current request.
pub trait GracefulConnection: Future {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulConnection for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B> GracefulConnection for http1::Connection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::Connection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> GracefulConnection for http2::Connection<I, S, E>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    E: Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> GracefulConnection for auto::UpgradeableConnection<'_, I, S, E>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    E: auto::HttpServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

pub struct GracefulShutdown {
    /// Every watched connection holds a receiver until it ends: the receiver count is the
    /// number of open connections, and `closed()` resolves when the last one is gone.
    stop: watch::Sender<bool>,
}

impl Default for GracefulShutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl GracefulShutdown {
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
        }
    }

    /// A handle that counts as an open connection from now on (a TLS handshake in progress
    /// counts too) and watches the connection once there is one.
    pub fn watcher(&self) -> Watcher {
        Watcher {
            stop: self.stop.subscribe(),
        }
    }

    /// The connection, finishing its current request once `shutdown` is called.
    pub fn watch<C: GracefulConnection>(
        &self,
        connection: C,
    ) -> impl Future<Output = C::Output> + use<C> {
        self.watcher().watch(connection)
    }

    /// Connections still open.
    pub fn count(&self) -> usize {
        self.stop.receiver_count()
    }

    /// Asks every connection to stop after its current request; resolves once all have ended.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        self.stop.closed().await;
    }
}

pub struct Watcher {
    stop: watch::Receiver<bool>,
}

impl Watcher {
    pub fn watch<C: GracefulConnection>(
        self,
        connection: C,
    ) -> impl Future<Output = C::Output> + use<C> {
        let mut stop = self.stop;
        async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => return result,
                _ = stop.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            let result = connection.await;
            // Counted as open until here.
            drop(stop);
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll};

    /// A connection that ends only after being asked to shut down.
    struct Pending(Arc<AtomicBool>);

    impl Future for Pending {
        type Output = hyper::Result<()>;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if self.0.load(Ordering::Acquire) {
                Poll::Ready(Ok(()))
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    impl GracefulConnection for Pending {
        fn graceful_shutdown(self: Pin<&mut Self>) {
            self.0.store(true, Ordering::Release);
        }
    }

    #[tokio::test]
    async fn counts_open_connections_and_stops_them() {
        let graceful = GracefulShutdown::new();
        let asked = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(graceful.watch(Pending(asked.clone())));
        assert_eq!(graceful.count(), 1);
        graceful.shutdown().await;
        assert!(asked.load(Ordering::Acquire));
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_finished_connection_is_no_longer_counted() {
        let graceful = GracefulShutdown::new();
        graceful.watch(std::future::ready(Ok(()))).await.unwrap();
        assert_eq!(graceful.count(), 0);
    }

    impl GracefulConnection for std::future::Ready<hyper::Result<()>> {
        fn graceful_shutdown(self: Pin<&mut Self>) {}
    }
}
