//! Which HTTP versions a connection speaks (`--http`): HTTP/1.1 only, HTTP/2 only, or either,
//! told apart by the HTTP/2 connection preface (h2c with prior knowledge in cleartext; over TLS
//! the client picks by ALPN and then sends the preface or not). WebSocket upgrades exist on
//! HTTP/1.1 only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::rt::{Read, Write};
use hyper::server::conn::{http1, http2};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::time::{Instant, Sleep};

use super::graceful::{GracefulConnection, Watcher};
use super::limits::{ConnState, Limits};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersions {
    Http1,
    Http2,
    Both,
}

impl HttpVersions {
    /// `--http`: "1", "2" or "auto".
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "1" => Ok(Self::Http1),
            "2" => Ok(Self::Http2),
            "auto" => Ok(Self::Both),
            other => Err(format!(
                "unknown HTTP version {other:?} (expected 1, 2 or auto)"
            )),
        }
    }

    /// What TLS offers by ALPN, preferred first.
    pub fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Self::Http1 => vec![b"http/1.1".to_vec()],
            Self::Http2 => vec![b"h2".to_vec()],
            Self::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// hyper's connection builders, set up once for the listener.
#[derive(Clone)]
pub enum ConnBuilder {
    Http1(http1::Builder),
    Http2(http2::Builder<TokioExecutor>),
    Both(auto::Builder<TokioExecutor>),
}

/// Settings both versions share (the per-version ones come from `limits`).
pub struct Options {
    pub date_header: bool,
}

impl ConnBuilder {
    pub fn new(versions: HttpVersions, limits: &Limits, options: &Options) -> Self {
        match versions {
            HttpVersions::Http1 => {
                let mut builder = http1::Builder::new();
                configure_http1(&mut builder, limits, options);
                Self::Http1(builder)
            }
            HttpVersions::Http2 => {
                let mut builder = http2::Builder::new(TokioExecutor::new());
                builder
                    .timer(TokioTimer::new())
                    .max_header_list_size(http2_header_list(limits))
                    .auto_date_header(options.date_header);
                Self::Http2(builder)
            }
            HttpVersions::Both => {
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .keep_alive(true)
                    .header_read_timeout(limits.hyper_header_timeout())
                    .max_headers(limits.hyper_max_headers())
                    .max_buf_size(limits.hyper_buffer())
                    .auto_date_header(options.date_header);
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_header_list_size(http2_header_list(limits))
                    .auto_date_header(options.date_header);
                Self::Both(builder)
            }
        }
    }

    /// Serves one connection until it ends, stopping after its current requests once the
    /// graceful watcher says so, or (HTTP/2) once it has been idle for `--timeout-keep-alive`.
    pub fn serve<I, S, B>(
        &self,
        io: I,
        service: S,
        graceful: Watcher,
        state: Arc<ConnState>,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>
    where
        I: Read + Write + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        match self {
            Self::Http1(builder) => {
                let connection = builder.serve_connection(io, service).with_upgrades();
                let connection = graceful.watch(connection);
                Box::pin(async move { connection.await.map_err(Into::into) })
            }
            Self::Http2(builder) => {
                let connection = builder.serve_connection(io, service);
                let connection = graceful.watch(CloseWhenIdle::new(connection, state));
                Box::pin(async move { connection.await.map_err(Into::into) })
            }
            Self::Both(builder) => {
                let connection = builder
                    .serve_connection_with_upgrades(io, service)
                    .into_owned();
                Box::pin(graceful.watch(CloseWhenIdle::new(connection, state)))
            }
        }
    }
}

/// An HTTP/2 connection with no open stream for `--timeout-keep-alive` is shut down gracefully:
/// GOAWAY, a PING, and once the client answers it the final GOAWAY and the socket closes; a
/// client that does not answer within another `--timeout-keep-alive` is cut off (no stream is
/// open, nothing is lost). HTTP/1.1 idling is `ConnIo`'s, which reports the end of input
/// instead: for HTTP/2 that would look like a broken connection to the client, and the frames an
/// idle h2 client still sends would keep it open. (hyper's own HTTP/2 keep-alive pings only find
/// dead peers; an idle live one answers them.)
pub struct CloseWhenIdle<C> {
    connection: Pin<Box<C>>,
    state: Arc<ConnState>,
    timer: Pin<Box<Sleep>>,
    /// When the connection was asked to shut down (for idling, or by the graceful watcher).
    asked_at: Option<Instant>,
}

impl<C> CloseWhenIdle<C> {
    fn new(connection: C, state: Arc<ConnState>) -> Self {
        Self {
            connection: Box::pin(connection),
            state,
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            asked_at: None,
        }
    }

    /// When to act if the connection stays idle; None while a stream is open (`cx` is then
    /// woken when the last one ends) and for HTTP/1.
    fn deadline(&self, cx: &Context<'_>) -> Option<Instant> {
        let idle = self.state.http2_idle_deadline(cx)?;
        Some(match self.asked_at {
            Some(at) => idle.max(at + self.state.limits().keep_alive),
            None => idle,
        })
    }
}

impl<C, E> Future for CloseWhenIdle<C>
where
    C: GracefulConnection<Output = Result<(), E>>,
{
    type Output = Result<(), E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            if let Poll::Ready(output) = this.connection.as_mut().poll(cx) {
                return Poll::Ready(output);
            }
            let Some(deadline) = this.deadline(cx) else {
                return Poll::Pending;
            };
            if this.timer.deadline() != deadline {
                this.timer.as_mut().reset(deadline);
            }
            ready!(this.timer.as_mut().poll(cx));
            // A request may have come and gone since the timer was set.
            if this.deadline(cx) != Some(deadline) {
                continue;
            }
            if this.asked_at.is_some() {
                // Still there, idle, after being asked to go: dropped, which closes the socket.
                return Poll::Ready(Ok(()));
            }
            this.asked_at = Some(Instant::now());
            this.connection.as_mut().graceful_shutdown();
        }
    }
}

impl<C, E> GracefulConnection for CloseWhenIdle<C>
where
    C: GracefulConnection<Output = Result<(), E>>,
{
    fn graceful_shutdown(mut self: Pin<&mut Self>) {
        if self.asked_at.is_none() {
            self.asked_at = Some(Instant::now());
            self.connection.as_mut().graceful_shutdown();
        }
    }
}

fn configure_http1(builder: &mut http1::Builder, limits: &Limits, options: &Options) {
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // No `pipeline_flush`: hyper then holds a response back while unread input sits in its
        // buffer, and loses it when the connection closes before that input is read (an answer
        // to a request whose body the app or a limit left unread: 413, 401 before an upload).
        .header_read_timeout(limits.hyper_header_timeout())
        .max_headers(limits.hyper_max_headers())
        .max_buf_size(limits.hyper_buffer())
        .auto_date_header(options.date_header);
}

/// The decoded header list HTTP/2 accepts: room for a head at our limits, so the limits
/// layer (with a readable answer) sees it rather than the h2 stack resetting the stream.
fn http2_header_list(limits: &Limits) -> u32 {
    u32::try_from(limits.hyper_buffer()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag_and_offers_alpn_by_preference() {
        assert_eq!(HttpVersions::parse("auto"), Ok(HttpVersions::Both));
        assert_eq!(HttpVersions::parse("1"), Ok(HttpVersions::Http1));
        assert_eq!(HttpVersions::parse("2"), Ok(HttpVersions::Http2));
        assert!(HttpVersions::parse("3").is_err());
        assert_eq!(
            HttpVersions::Both.alpn(),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(HttpVersions::Http1.alpn(), vec![b"http/1.1".to_vec()]);
    }
}
