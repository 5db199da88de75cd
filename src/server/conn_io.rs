//! The connection's socket as hyper reads and writes it. Two jobs hyper does not do:
//!
//! - Keep-alive timeout: once idle (no request in progress, nothing received since the last
//!   response ended) for `--timeout-keep-alive`, reads report the end of input, which hyper
//!   takes as the client hanging up.
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
                if buf.filled().len() > before && this.conn.mark_received() {
                    this.written_at_head = Some(this.written);
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
