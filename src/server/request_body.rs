//! The request body as both bridges consume it: chunk by chunk, with small bodies read up front
//! so the app's first read needs no round trip between threads. Reads are counted against the
//! request's body limit (`BodyWatch`, put in the request's extensions by the limits layer), and
//! a body that stops arriving while it is waited for is given up after `BODY_STALL`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, HeaderValue};
use http::{Extensions, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::limits::{self, BodyWatch};
use super::response::{ResponseBody, ResponseHead};

/// Bodies up to this size, when their size is known, are read before the app is called.
pub const PREREAD_LIMIT: u64 = 64 * 1024;

/// How long a read of the request body may wait for the client's next bytes (not the whole
/// body's time: a slow upload that keeps moving is fine). uvicorn and granian have no such
/// bound; nginx's `client_body_timeout` has the same default. Past it the app sees the client
/// gone (`http.disconnect`, or `wsgi.input` raising), the client gets 408 and the connection
/// closes.
pub const BODY_STALL: Duration = Duration::from_secs(60);

/// Why no more body can be read.
#[derive(Debug)]
pub enum BodyError {
    /// The client went away or broke the framing.
    Broken(hyper::Error),
    /// Past `--limit-max-body`.
    TooLarge,
    /// Nothing arrived for `BODY_STALL`.
    Stalled,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Broken(err) => write!(f, "the request body could not be read: {err}"),
            Self::TooLarge => f.write_str("the request body exceeds --limit-max-body"),
            Self::Stalled => write!(
                f,
                "the request body stopped arriving (no data for {} s)",
                BODY_STALL.as_secs()
            ),
        }
    }
}

enum Source {
    /// Fully read already; `None` once handed out.
    Buffered(Option<Bytes>),
    Streaming(Incoming),
}

pub struct RequestBody {
    source: Source,
    watch: Option<BodyWatch>,
}

impl RequestBody {
    /// `extensions` are the request's: they carry its body limit.
    pub async fn prepare(body: Incoming, extensions: &Extensions) -> Result<Self, BodyError> {
        let watch = extensions.get::<BodyWatch>().cloned();
        if body.is_end_stream() {
            return Ok(Self {
                source: Source::Buffered(Some(Bytes::new())),
                watch,
            });
        }
        let mut this = Self {
            source: Source::Streaming(body),
            watch,
        };
        let Source::Streaming(incoming) = &this.source else {
            unreachable!()
        };
        match incoming.size_hint().exact() {
            Some(len) if len <= PREREAD_LIMIT => {
                let mut buf = BytesMut::with_capacity(len as usize);
                while let Some(data) = this.next_chunk().await? {
                    buf.extend_from_slice(&data);
                }
                this.source = Source::Buffered(Some(buf.freeze()));
                Ok(this)
            }
            _ => Ok(this),
        }
    }

    /// The whole body when it was read up front and not yet taken.
    pub fn take_buffered(&mut self) -> Option<Bytes> {
        match &mut self.source {
            Source::Buffered(data) => data.take(),
            Source::Streaming(_) => None,
        }
    }

    /// Next chunk of data; `Ok(None)` at the end. Trailers are skipped.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        let body = match &mut self.source {
            Source::Buffered(data) => return Ok(data.take()),
            Source::Streaming(body) => body,
        };
        loop {
            let frame = match tokio::time::timeout(BODY_STALL, body.frame()).await {
                Ok(None) => return Ok(None),
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(err))) => {
                    if let Some(watch) = &self.watch {
                        watch.broken();
                    }
                    return Err(BodyError::Broken(err));
                }
                Err(_) => {
                    if let Some(watch) = &self.watch {
                        watch.stalled();
                    }
                    // Dropping the body tells hyper nobody reads it any more.
                    self.source = Source::Buffered(None);
                    return Err(BodyError::Stalled);
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            if let Some(watch) = &self.watch {
                if !watch.spend(data.len()) {
                    return Err(BodyError::TooLarge);
                }
            }
            return Ok(Some(data));
        }
    }

    /// True when no data is left to read (known without waiting).
    pub fn is_end(&self) -> bool {
        match &self.source {
            Source::Buffered(data) => data.is_none(),
            Source::Streaming(body) => body.is_end_stream(),
        }
    }
}

/// The answer when the body could not be read before the app was called (cut short, broken
/// chunked framing, too large): the client's fault, never a 500.
pub fn unreadable(err: &BodyError) -> Response<ResponseBody> {
    let (status, text) = match err {
        BodyError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "Content Too Large: the request body exceeds the server's limit (--limit-max-body)\n",
        ),
        BodyError::Broken(_) => (
            StatusCode::BAD_REQUEST,
            "Bad Request: the request body ended early or is malformed\n",
        ),
        BodyError::Stalled => return limits::body_stalled().into_response(),
    };
    let mut response = ResponseHead::plain(status, text).into_response(None);
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_408_text_names_the_stall_bound() {
        let text = limits::body_stalled().text;
        assert!(text.contains(&format!("no data for {} s", BODY_STALL.as_secs())));
    }
}
