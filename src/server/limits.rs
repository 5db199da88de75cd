//! HTTP input limits: what hyper does not check by itself, answered with a short plain-text
//! 4xx/5xx before the request reaches the gate or the app.
//!
//! hyper already rejects (with a bare status and no body) malformed request lines and headers,
//! obs-fold, bare CR, invalid or differing Content-Length values, a Transfer-Encoding whose last
//! coding is not `chunked` or on HTTP/1.0, heads larger than its read buffer and URIs over 64 KiB.
//! A request carrying both Content-Length and Transfer-Encoding it frames by the latter (dropping
//! Content-Length) and closes the connection after; the connection's I/O wrapper sees such a head
//! on the wire and this layer answers it 400 instead, as h11 does (RFC 9112 6.1: a request
//! smuggling guard). This layer adds the configurable limits (URI, header count and bytes, body
//! size, concurrency), 501 for transfer codings other than `chunked`, and the bookkeeping the
//! connection-level timeouts and the per-address cap on connections still sending their first
//! head need.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::response::{ResponseBody, ResponseHead};

/// Header lines beyond the configured count that hyper still parses (so the answer is this
/// layer's 431 with a body rather than hyper's bare one).
const HEADER_COUNT_SLACK: usize = 100;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Request body bytes (Content-Length or the de-chunked total); None: unlimited.
    pub max_body: Option<u64>,
    /// Bytes of the request target.
    pub max_uri: usize,
    /// Bytes of the header section (names, values and their separators).
    pub max_head: usize,
    pub max_headers: usize,
    /// Connections served at once; requests on further ones get 503. None: unlimited.
    pub concurrency: Option<usize>,
    /// An idle connection (no request in progress, nothing received since) is closed after this.
    pub keep_alive: Duration,
    /// A request head must arrive within this long of the connection waiting for it.
    pub header_timeout: Duration,
    /// Connections one client address may have open that have not yet sent a complete first
    /// head (slowloris); more are answered 503 and closed at once.
    pub heads_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: Some(100 * 1024 * 1024),
            max_uri: 16 * 1024,
            max_head: 64 * 1024,
            max_headers: 100,
            concurrency: None,
            keep_alive: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            heads_per_address: 256,
        }
    }
}

impl Limits {
    /// hyper's own hard limit on header lines: a little above ours.
    pub fn hyper_max_headers(&self) -> usize {
        self.max_headers + HEADER_COUNT_SLACK
    }

    /// hyper's read buffer: room for a head at our limits even with generous whitespace, so the
    /// checks below (with a readable answer) run before hyper's bare 431.
    pub fn hyper_buffer(&self) -> usize {
        (2 * self.max_head + self.max_uri + 8 * 1024).max(8 * 1024)
    }

    /// hyper's timer covers idle keep-alive waiting as well as a slow head.
    pub fn hyper_header_timeout(&self) -> Duration {
        self.header_timeout.max(self.keep_alive)
    }
}

/// State shared by all connections: the limits, admitted connections, heads in progress per
/// client address.
pub struct Shared {
    pub limits: Limits,
    admitted: AtomicUsize,
    heads: Mutex<HashMap<IpAddr, usize>>,
}

impl Shared {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            admitted: AtomicUsize::new(0),
            heads: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection from `ip` as sending its first head; None when that address
    /// already has its share of such connections.
    pub fn begin_head(self: &Arc<Self>, ip: IpAddr) -> Option<HeadSlot> {
        let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        let count = heads.entry(ip).or_insert(0);
        if *count >= self.limits.heads_per_address {
            return None;
        }
        *count += 1;
        Some(HeadSlot {
            shared: self.clone(),
            ip,
        })
    }

    fn try_admit(&self) -> bool {
        let Some(max) = self.limits.concurrency else {
            return true;
        };
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }
}

/// A connection that has not sent its first complete head yet; released on drop.
pub struct HeadSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for HeadSlot {
    fn drop(&mut self) {
        let mut heads = self.shared.heads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = heads.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                heads.remove(&self.ip);
            }
        }
    }
}

/// The plain response the listener writes to a connection over its address's head cap, before
/// closing it.
pub fn too_many_heads() -> Vec<u8> {
    let text = "Service Unavailable: too many connections from your address still sending \
                their request head\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

/// The answer to a head hyper refused (the connection failed with `err`), when the client is
/// owed one: a complete HTTP/1.1 response with a plain-text body, closing the connection.
pub fn refusal_for(err: &hyper::Error) -> Option<Vec<u8>> {
    let detail = err.to_string();
    let (status, text) = if err.is_parse_version_h2() {
        (
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "HTTP Version Not Supported: this server speaks HTTP/1.1 only".to_owned(),
        )
    } else if err.is_parse_too_large() && detail.contains("URI") {
        (
            StatusCode::URI_TOO_LONG,
            "URI Too Long: the request target exceeds the server's limit".to_owned(),
        )
    } else if err.is_parse_too_large() {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large: the request head exceeds the server's limit \
             (--h11-max-incomplete-event-size)"
                .to_owned(),
        )
    } else if err.is_parse() {
        (StatusCode::BAD_REQUEST, format!("Bad Request: {detail}"))
    } else if err.is_timeout() {
        (
            StatusCode::REQUEST_TIMEOUT,
            "Request Timeout: the request head took too long to arrive (--timeout-header-read)"
                .to_owned(),
        )
    } else {
        return None;
    };
    let reason = status.canonical_reason().unwrap_or("");
    Some(
        format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{text}\n",
            status.as_u16(),
            text.len() + 1
        )
        .into_bytes(),
    )
}

/// One connection's state, shared by its service (every clone) and its I/O wrapper.
pub struct ConnState {
    shared: Arc<Shared>,
    admitted: AtomicBool,
    head: Mutex<Option<HeadSlot>>,
    /// Requests whose response has not ended (0 or 1 on HTTP/1.1).
    in_progress: AtomicUsize,
    /// Bytes arrived since the connection last went idle: a head is on its way.
    receiving: AtomicBool,
    /// Upgraded (101): no longer HTTP, never idle-closed.
    upgraded: AtomicBool,
    /// The connection opened with the HTTP/2 preface.
    http2: AtomicBool,
    /// The head of the next request carried both Content-Length and Transfer-Encoding.
    both_framings: AtomicBool,
    /// Woken when the last open request of an HTTP/2 connection ends (its idle timer starts).
    idle_waker: Mutex<Option<Waker>>,
    /// When the connection last went idle, in ms since `epoch`.
    idle_since_ms: AtomicU64,
    epoch: Instant,
}

impl ConnState {
    pub fn new(shared: Arc<Shared>, head: Option<HeadSlot>) -> Arc<Self> {
        Arc::new(Self {
            shared,
            admitted: AtomicBool::new(false),
            head: Mutex::new(head),
            in_progress: AtomicUsize::new(0),
            receiving: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            both_framings: AtomicBool::new(false),
            idle_waker: Mutex::new(None),
            idle_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Bytes arrived; true when they start a new head (none arrived since the connection
    /// last went idle).
    pub fn mark_received(&self) -> bool {
        !self.receiving.swap(true, Ordering::AcqRel)
    }

    /// A head is arriving that no request was made of yet: what hyper writes now is its own
    /// refusal of that head.
    pub fn between_requests_receiving(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) == 0 && self.receiving.load(Ordering::Acquire)
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// When this HTTP/1 connection is to be closed for idling; None while it is busy or a head
    /// is arriving (hyper's header timeout covers that), and for HTTP/2 (`http2_idle_deadline`).
    pub fn idle_deadline(&self) -> Option<Instant> {
        if self.receiving.load(Ordering::Acquire) || self.http2.load(Ordering::Acquire) {
            return None;
        }
        self.idle_until()
    }

    /// When this HTTP/2 connection is to be closed (GOAWAY) for having had no open stream for
    /// `--timeout-keep-alive`. HTTP/2 frames (PING, SETTINGS, WINDOW_UPDATE) keep arriving on
    /// an idle connection, so only open requests count as activity. None while a request is
    /// open (`cx` is then woken when the last one ends) and for HTTP/1 connections.
    pub fn http2_idle_deadline(&self, cx: &Context<'_>) -> Option<Instant> {
        if !self.http2.load(Ordering::Acquire) {
            return None;
        }
        if let Some(deadline) = self.idle_until() {
            return Some(deadline);
        }
        *self.idle_waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        // A request that ended between the check and the registration woke nobody.
        self.idle_until()
    }

    fn idle_until(&self) -> Option<Instant> {
        if self.in_progress.load(Ordering::Acquire) > 0 || self.upgraded.load(Ordering::Acquire) {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.epoch + since + self.shared.limits.keep_alive)
    }

    /// The connection began with the HTTP/2 preface.
    pub fn mark_http2(&self) {
        self.http2.store(true, Ordering::Release);
    }

    /// The head arriving now has both Content-Length and Transfer-Encoding (seen on the wire:
    /// hyper hands the request on without its Content-Length).
    pub fn mark_both_framings(&self) {
        self.both_framings.store(true, Ordering::Release);
    }

    fn request_started(&self) {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        self.head.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn response_ended(&self) {
        let elapsed = self.epoch.elapsed().as_millis() as u64;
        self.idle_since_ms.store(elapsed, Ordering::Release);
        self.receiving.store(false, Ordering::Release);
        if self.in_progress.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waker = self
                .idle_waker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    fn admit(&self) -> bool {
        if self.admitted.load(Ordering::Acquire) {
            return true;
        }
        if self.shared.try_admit() {
            self.admitted.store(true, Ordering::Release);
            return true;
        }
        false
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        if self.shared.limits.concurrency.is_some() && *self.admitted.get_mut() {
            self.shared.admitted.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// How much request body is still allowed, and whether reading it failed: shared between the
/// limits layer (which answers 413, or 400 for a body cut short, in place of the app) and the
/// body reader (which reports). Put in the request's extensions.
#[derive(Clone)]
pub struct BodyWatch(Arc<WatchInner>);

struct WatchInner {
    max: u64,
    read: AtomicU64,
    /// 0: fine; `EXCEEDED` or `BROKEN` once reading stopped for that reason.
    outcome: AtomicUsize,
    notify: Notify,
}

const EXCEEDED: usize = 1;
const BROKEN: usize = 2;
const STALLED: usize = 3;

impl BodyWatch {
    fn new(max: Option<u64>) -> Self {
        Self(Arc::new(WatchInner {
            max: max.unwrap_or(u64::MAX),
            read: AtomicU64::new(0),
            outcome: AtomicUsize::new(0),
            notify: Notify::new(),
        }))
    }

    fn stop(&self, outcome: usize) {
        let _ = self
            .0
            .outcome
            .compare_exchange(0, outcome, Ordering::AcqRel, Ordering::Acquire);
        self.0.notify.notify_waiters();
    }

    /// Counts `len` more bytes read; false (and the layer is told) once over the limit.
    pub fn spend(&self, len: usize) -> bool {
        let total = self.0.read.fetch_add(len as u64, Ordering::AcqRel) + len as u64;
        if total <= self.0.max {
            return true;
        }
        self.stop(EXCEEDED);
        false
    }

    /// The body ended early (the client stopped sending, or sent broken chunked framing).
    pub fn broken(&self) {
        self.stop(BROKEN);
    }

    /// No body data arrived for `request_body::BODY_STALL` while the app waited for it.
    pub fn stalled(&self) {
        self.stop(STALLED);
    }

    async fn stopped(&self) -> Rejection {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.outcome() {
                Some(rejection) => return rejection,
                None => notified.await,
            }
        }
    }

    /// Why reading stopped, if it did.
    fn outcome(&self) -> Option<Rejection> {
        match self.0.outcome.load(Ordering::Acquire) {
            EXCEEDED => Some(too_large()),
            BROKEN => Some(Rejection::new(
                StatusCode::BAD_REQUEST,
                "Bad Request: the request body ended early or is malformed\n",
            )),
            STALLED => Some(body_stalled()),
            _ => None,
        }
    }
}

/// Why a request is refused: status and the text sent back.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub text: &'static str,
}

impl Rejection {
    const fn new(status: StatusCode, text: &'static str) -> Self {
        Self { status, text }
    }

    /// The answer, closing the connection: what follows the head on the wire is not trusted.
    pub fn into_response(self) -> Response<ResponseBody> {
        let mut response = ResponseHead::plain(self.status, self.text).into_response(None);
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

fn uri_len(uri: &Uri) -> usize {
    let origin = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    origin + authority + scheme
}

/// The checks on a parsed head, in the order a client most needs to hear about them.
pub fn check_head<B>(limits: &Limits, req: &Request<B>) -> Result<(), Rejection> {
    if uri_len(req.uri()) > limits.max_uri.min(limits.max_head) {
        return Err(Rejection::new(
            StatusCode::URI_TOO_LONG,
            "URI Too Long: the request target exceeds the server's limit\n",
        ));
    }
    let headers = req.headers();
    if headers.len() > limits.max_headers {
        return Err(Rejection::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large: too many header lines\n",
        ));
    }
    let head_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if head_bytes > limits.max_head {
        return Err(Rejection::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large: the header section exceeds the server's limit\n",
        ));
    }
    // hyper made sure `chunked` is the last coding; any other one would have to be decoded too.
    for value in headers.get_all(TRANSFER_ENCODING) {
        let Ok(value) = value.to_str() else {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "Bad Request: invalid Transfer-Encoding\n",
            ));
        };
        let unsupported = value
            .split(',')
            .map(str::trim)
            .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("chunked"));
        if unsupported {
            return Err(Rejection::new(
                StatusCode::NOT_IMPLEMENTED,
                "Not Implemented: only the chunked transfer coding is supported\n",
            ));
        }
    }
    if let Some(max) = limits.max_body {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return Err(too_large());
        }
    }
    Ok(())
}

fn too_large() -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Content Too Large: the request body exceeds the server's limit (--limit-max-body)\n",
    )
}

/// 408 for a request body that stopped arriving (see `request_body::BODY_STALL`).
pub fn body_stalled() -> Rejection {
    Rejection::new(
        StatusCode::REQUEST_TIMEOUT,
        "Request Timeout: the request body stopped arriving (no data for 60 s)\n",
    )
}

/// 400 for a head with both Content-Length and Transfer-Encoding: two framings a proxy in
/// front could read differently (RFC 9112 6.1).
fn both_framings() -> Rejection {
    Rejection::new(
        StatusCode::BAD_REQUEST,
        "Bad Request: both Content-Length and Transfer-Encoding are set\n",
    )
}

fn too_busy() -> Rejection {
    Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable: too many concurrent connections (--limit-concurrency)\n",
    )
}

#[derive(Clone)]
pub struct LimitsLayer {
    conn: Arc<ConnState>,
}

impl LimitsLayer {
    pub fn new(conn: Arc<ConnState>) -> Self {
        Self { conn }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = LimitsService<S>;

    fn layer(&self, inner: S) -> LimitsService<S> {
        LimitsService {
            inner,
            conn: self.conn.clone(),
        }
    }
}

#[derive(Clone)]
pub struct LimitsService<S> {
    inner: S,
    conn: Arc<ConnState>,
}

impl<S, B> Service<Request<B>> for LimitsService<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let conn = self.conn.clone();
        conn.request_started();
        let track = move |response: Response<ResponseBody>| {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                conn.upgraded.store(true, Ordering::Release);
            }
            response.map(|body| TrackedBody { body, conn })
        };
        let limits = &self.conn.shared.limits;
        // Taken on every request, so it can only apply to the one whose head set it. A request
        // hyper framed by Transfer-Encoding still has that header.
        let both = self.conn.both_framings.swap(false, Ordering::AcqRel)
            && req.headers().contains_key(TRANSFER_ENCODING);
        let refused = if !self.conn.admit() {
            Some(too_busy())
        } else if both {
            Some(both_framings())
        } else {
            check_head(limits, &req).err()
        };
        if let Some(rejection) = refused {
            let response = track(rejection.into_response());
            return Box::pin(async move { Ok(response) });
        }
        let watch = BodyWatch::new(limits.max_body);
        req.extensions_mut().insert(watch.clone());
        let future = self.inner.call(req);
        Box::pin(async move {
            // A body that grows past the limit or breaks off is answered here even while the
            // app still waits for it; the app sees a disconnect (ASGI) or the end of its input
            // (WSGI), and whatever it answers goes nowhere.
            let response = tokio::select! {
                biased;
                rejection = watch.stopped() => rejection.into_response(),
                response = future => match watch.outcome() {
                    // The app's answer to a body it could not read (a WSGI app's error page
                    // for the `OSError` its read raised) is no answer for the client.
                    Some(rejection) => rejection.into_response(),
                    None => response?,
                },
            };
            Ok(track(response))
        })
    }
}

/// The response body, telling the connection when the exchange is over (hyper drops the body
/// once it has sent it, or when the connection dies).
pub struct TrackedBody {
    body: ResponseBody,
    conn: Arc<ConnState>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.conn.response_ended();
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = <ResponseBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method("POST").uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn status(limits: &Limits, req: &Request<()>) -> Option<u16> {
        check_head(limits, req).err().map(|r| r.status.as_u16())
    }

    #[test]
    fn heads_within_the_limits_pass() {
        let limits = Limits::default();
        let req = request("/a?b=c", &[("content-length", "10"), ("x-a", "b")]);
        assert_eq!(status(&limits, &req), None);
        let chunked = request("/", &[("transfer-encoding", "chunked")]);
        assert_eq!(status(&limits, &chunked), None);
    }

    #[test]
    fn each_limit_has_its_status() {
        let limits = Limits {
            max_body: Some(100),
            max_uri: 50,
            max_head: 200,
            max_headers: 5,
            ..Limits::default()
        };
        let long_uri = format!("/{}", "a".repeat(60));
        assert_eq!(status(&limits, &request(&long_uri, &[])), Some(414));
        let many: Vec<(String, String)> = (0..6).map(|i| (format!("x-{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(status(&limits, &request("/", &many)), Some(431));
        let big = "v".repeat(250);
        assert_eq!(
            status(&limits, &request("/", &[("x-big", &big)])),
            Some(431)
        );
        assert_eq!(
            status(&limits, &request("/", &[("content-length", "101")])),
            Some(413)
        );
        assert_eq!(
            status(&limits, &request("/", &[("content-length", "100")])),
            None
        );
        let gzip = request("/", &[("transfer-encoding", "gzip, chunked")]);
        assert_eq!(status(&limits, &gzip), Some(501));
    }

    #[test]
    fn the_body_budget_runs_out_once_past_the_limit() {
        let budget = BodyWatch::new(Some(10));
        assert!(budget.spend(6));
        assert!(budget.spend(4));
        assert!(!budget.spend(1));
    }

    #[test]
    fn heads_per_address_are_capped_and_released() {
        let shared = Shared::new(Limits {
            heads_per_address: 2,
            ..Limits::default()
        });
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let first = shared.begin_head(ip).unwrap();
        let _second = shared.begin_head(ip).unwrap();
        assert!(shared.begin_head(ip).is_none());
        assert!(shared.begin_head("127.0.0.3".parse().unwrap()).is_some());
        drop(first);
        assert!(shared.begin_head(ip).is_some());
    }
}
