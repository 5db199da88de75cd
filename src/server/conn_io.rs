//! The connection's socket as hyper reads and writes it. Two jobs hyper does not do:
//!
//! - Keep-alive timeout: once idle (no request in progress, nothing received since the last
//!   response ended) for `--timeout-keep-alive`, reads report the end of input, which hyper
//!   takes as the client hanging up. (HTTP/2 connections, told apart here by their preface,
//!   are closed with GOAWAY instead: see `http_versions::CloseWhenIdle`.)
//! - Both framings: hyper drops the Content-Length of a request that also has
//!   Transfer-Encoding, so a head starting while no request is in progress is read here too
//!   (with httparse, as hyper does) and the limits layer told when it has both. A head pipelined
//!   behind another request is not seen here; hyper frames it by Transfer-Encoding and closes
//!   the connection after it, so nothing is smuggled either way.
//! - Readable refusals: when hyper rejects a request head it answers a bare status, or closes
//!   without a word (for most syntax errors). Its bare answer is held back here, and once the
//!   connection has failed the listener writes a plain-text answer saying what was wrong
//!   (`close_lingering`), on the socket this wrapper hands back when hyper drops it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::limits::ConnState;

/// Where the socket goes when hyper is done with it, and whether the client may still be
/// waiting for an answer to a head hyper refused (nothing written since it started arriving).
pub type Leftover<I> = Arc<Mutex<Option<(I, bool)>>>;

pub struct ConnIo<I> {
    io: Option<I>,
    conn: Arc<ConnState>,
    timer: Pin<Box<Sleep>>,
    leftover: Leftover<I>,
    written: u64,
    /// `written` when the bytes of the latest head started arriving.
    written_at_head: Option<u64>,
    heads: HeadScan,
}

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The bytes of a head arriving while no request is in progress, kept until it is complete.
struct HeadScan {
    buf: Vec<u8>,
    /// Collecting a head now.
    active: bool,
    /// No bytes read yet: the first ones may be the HTTP/2 preface.
    first: bool,
    /// HTTP/2: no heads to scan, ever.
    off: bool,
}

impl HeadScan {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            active: false,
            first: true,
            off: false,
        }
    }

    /// `data` just arrived; `starts_head` when it begins a head with no request in progress.
    fn feed(&mut self, conn: &ConnState, data: &[u8], starts_head: bool) {
        if self.off || data.is_empty() {
            return;
        }
        if starts_head {
            self.buf.clear();
            self.active = true;
        }
        if !self.active {
            return;
        }
        let scanned = self.buf.len().saturating_sub(3);
        self.buf.extend_from_slice(data);
        if self.first {
            let n = self.buf.len().min(HTTP2_PREFACE.len());
            if self.buf[..n] != HTTP2_PREFACE[..n] {
                self.first = false;
            } else if n == HTTP2_PREFACE.len() {
                conn.mark_http2();
                self.off = true;
                self.buf = Vec::new();
                return;
            }
        }
        let limits = conn.limits();
        if self.buf.len() > limits.hyper_buffer() {
            // hyper refuses a head this big by itself.
            self.stop();
            return;
        }
        // Parse only once an empty line has arrived: a head trickling in byte by byte is not
        // re-parsed on every byte.
        let tail = &self.buf[scanned..];
        if !tail.windows(2).any(|w| w == b"\n\n") && !tail.windows(3).any(|w| w == b"\n\r\n") {
            return;
        }
        match both_framings(&self.buf, limits.hyper_max_headers()) {
            Some(true) => {
                conn.mark_both_framings();
                self.stop();
            }
            Some(false) => self.stop(),
            None => {}
        }
    }

    fn stop(&mut self) {
        self.active = false;
        self.first = false;
        self.buf.clear();
        if self.buf.capacity() > 16 * 1024 {
            self.buf = Vec::new();
        }
    }
}

/// Whether the complete head at the start of `buf` has both Content-Length and
/// Transfer-Encoding; None while it is incomplete. A head httparse rejects counts as neither:
/// hyper refuses it too.
fn both_framings(buf: &[u8], max_headers: usize) -> Option<bool> {
    // Room for the usual head on the stack; a bigger one is parsed again with room for all.
    let mut few = [const { std::mem::MaybeUninit::uninit() }; 64];
    match parse_framing(buf, &mut few) {
        Err(httparse::Error::TooManyHeaders) if max_headers > few.len() => {
            let mut all = vec![std::mem::MaybeUninit::uninit(); max_headers];
            parse_framing(buf, &mut all).unwrap_or(Some(false))
        }
        result => result.unwrap_or(Some(false)),
    }
}

fn parse_framing<'b>(
    buf: &'b [u8],
    headers: &mut [std::mem::MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<bool>, httparse::Error> {
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, headers)?
    {
        httparse::Status::Complete(_) => {
            let has = |name: &str| {
                req.headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(name))
            };
            Ok(Some(has("content-length") && has("transfer-encoding")))
        }
        httparse::Status::Partial => Ok(None),
    }
}

impl<I> ConnIo<I> {
    pub fn new(io: I, conn: Arc<ConnState>, leftover: Leftover<I>) -> Self {
        Self {
            io: Some(io),
            conn,
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            leftover,
            written: 0,
            written_at_head: None,
            heads: HeadScan::new(),
        }
    }

    fn io(&mut self) -> &mut I {
        self.io.as_mut().expect("the socket is only taken on drop")
    }

    /// A head has been arriving with no request made of it and nothing written since: if the
    /// connection fails now, it failed on that head, and the client has had no answer.
    fn owes_answer(&self) -> bool {
        self.written_at_head == Some(self.written) && self.conn.between_requests_receiving()
    }

    /// hyper's own answer to a head it could not parse: a 4xx with an empty body, written while
    /// no request is in progress but a new head has started to arrive.
    fn is_bare_refusal(&self, buf: &[u8]) -> bool {
        self.conn.between_requests_receiving()
            && (buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.0 4"))
            && buf
                .windows(19)
                .any(|w| w.eq_ignore_ascii_case(b"content-length: 0\r\n"))
    }
}

impl<I> Drop for ConnIo<I> {
    fn drop(&mut self) {
        let silent = self.owes_answer();
        if let Some(io) = self.io.take() {
            *self.leftover.lock().unwrap_or_else(|e| e.into_inner()) = Some((io, silent));
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ConnIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(this.io()).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let data = &buf.filled()[before..];
                if !data.is_empty() {
                    let starts_head = this.conn.mark_received();
                    if starts_head {
                        this.written_at_head = Some(this.written);
                    }
                    let between_requests = this.conn.between_requests_receiving();
                    this.heads
                        .feed(&this.conn, data, starts_head && between_requests);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let Some(deadline) = this.conn.idle_deadline() else {
                    return Poll::Pending;
                };
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Ok(())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ConnIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.is_bare_refusal(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        let written = Pin::new(self.io()).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.written += n as u64;
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs
            .first()
            .is_some_and(|first| self.is_bare_refusal(first))
        {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let written = Pin::new(self.io()).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.written += n as u64;
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.owes_answer() {
            // Closing now would send the end of the stream before the refusal; the socket is
            // closed after it (or when dropped).
            return Poll::Ready(Ok(()));
        }
        Pin::new(self.io()).poll_shutdown(cx)
    }
}

/// How long a client gets to read the last answer, and how much more of what it still sends
/// is read and dropped meanwhile: closing a socket with unread input resets the connection,
/// and the reset can destroy the answer before the client reads it (a refused body, bytes
/// after a request framed to close the connection).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// Writes `answer` if any, ends the sending side, and reads what the client still sends until
/// it closes (bounded), before the socket is closed.
pub async fn close_lingering<I: AsyncRead + AsyncWrite + Unpin>(mut io: I, answer: Option<&[u8]>) {
    let _ = tokio::time::timeout(LINGER, async {
        if let Some(answer) = answer {
            if io.write_all(answer).await.is_err() {
                return;
            }
        }
        if io.shutdown().await.is_err() {
            return;
        }
        let mut sink = vec![0u8; 16 * 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::both_framings;

    #[test]
    fn finds_both_framings_in_a_complete_head_only() {
        let both = b"POST / HTTP/1.1\r\nHost: t\r\ncontent-length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(both_framings(both, 200), Some(true));
        assert_eq!(both_framings(&both[..both.len() - 2], 200), None);
        let one = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(both_framings(one, 200), Some(false));
        assert_eq!(both_framings(b"G(T / HTTP/1.1\r\n\r\n", 200), Some(false));
        let mut many = b"POST / HTTP/1.1\r\n".to_vec();
        for i in 0..150 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(both_framings(&many, 200), Some(true));
        assert_eq!(both_framings(&many, 100), Some(false));
    }
}
