//! Responses as the bridges hand them to hyper: a head, then either the whole body or a stream
//! fed by the app through a bounded channel.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use super::disconnect::DisconnectGuard;

/// How many chunks the app may produce ahead of the socket before `send` has to wait.
pub const STREAM_BUFFER: usize = 8;

/// The app stopped mid-body: hyper closes the connection instead of finishing the response.
#[derive(Debug)]
pub struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("response aborted by the application")
    }
}

impl std::error::Error for Aborted {}

pub type Chunk = Result<Bytes, Aborted>;

pub enum BodySource {
    Full(Bytes),
    Stream(mpsc::Receiver<Chunk>),
}

pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: BodySource,
}

impl ResponseHead {
    pub fn into_response(self, guard: Option<DisconnectGuard>) -> Response<ResponseBody> {
        let body = match self.body {
            BodySource::Full(bytes) => Kind::Full(Some(bytes)),
            BodySource::Stream(rx) => Kind::Stream(rx),
        };
        let mut response = Response::new(ResponseBody {
            kind: body,
            _guard: guard,
        });
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

enum Kind {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Chunk>),
}

pub struct ResponseBody {
    kind: Kind,
    /// Dropped with the body: the app learns the exchange is over (`http.disconnect`).
    _guard: Option<DisconnectGuard>,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

impl ResponseHead {
    /// A short plain-text response the server itself produces (errors, refusals).
    pub fn plain(status: StatusCode, text: &'static str) -> Self {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
        Self {
            status,
            headers,
            body: BodySource::Full(Bytes::from_static(text.as_bytes())),
        }
    }

    pub fn internal_error() -> Self {
        Self::plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }
}

pub fn internal_error() -> Response<ResponseBody> {
    ResponseHead::internal_error().into_response(None)
}

pub fn service_unavailable() -> Response<ResponseBody> {
    ResponseHead::plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response(None)
}
