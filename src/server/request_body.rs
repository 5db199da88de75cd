//! The request body as both bridges consume it: chunk by chunk, with small bodies read up front
//! so the app's first read needs no round trip between threads.

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// Bodies up to this size, when their size is known, are read before the app is called.
pub const PREREAD_LIMIT: u64 = 64 * 1024;

pub enum RequestBody {
    /// Fully read already; `None` once handed out.
    Buffered(Option<Bytes>),
    Streaming(Incoming),
}

impl RequestBody {
    pub async fn prepare(body: Incoming) -> Result<Self, hyper::Error> {
        if body.is_end_stream() {
            return Ok(Self::Buffered(Some(Bytes::new())));
        }
        match body.size_hint().exact() {
            Some(len) if len <= PREREAD_LIMIT => {
                let mut buf = BytesMut::with_capacity(len as usize);
                let mut body = body;
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame?.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                Ok(Self::Buffered(Some(buf.freeze())))
            }
            _ => Ok(Self::Streaming(body)),
        }
    }

    /// The whole body when it was read up front and not yet taken.
    pub fn take_buffered(&mut self) -> Option<Bytes> {
        match self {
            Self::Buffered(data) => data.take(),
            Self::Streaming(_) => None,
        }
    }

    /// Next chunk of data; `Ok(None)` at the end. Trailers are skipped.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        match self {
            Self::Buffered(data) => Ok(data.take()),
            Self::Streaming(body) => loop {
                match body.frame().await {
                    None => return Ok(None),
                    Some(frame) => {
                        if let Ok(data) = frame?.into_data() {
                            if !data.is_empty() {
                                return Ok(Some(data));
                            }
                        }
                    }
                }
            },
        }
    }
}

impl RequestBody {
    /// True when no data is left to read (known without waiting).
    pub fn is_end(&self) -> bool {
        match self {
            Self::Buffered(data) => data.is_none(),
            Self::Streaming(body) => body.is_end_stream(),
        }
    }
}
