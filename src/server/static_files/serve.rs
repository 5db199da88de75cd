//! One file as a response: its headers, 304 and Range handling, and the body read with tokio's
//! file I/O (small files in one piece, bigger ones streamed in chunks, never held whole).

use std::io::SeekFrom;
use std::path::Path;

use bytes::BytesMut;
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderValue,
    LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, Method, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::range::{self, Wanted};
use super::validators::Validators;
use crate::server::response::{Aborted, BodySource, ResponseBody, ResponseHead, STREAM_BUFFER};

/// Bodies up to this size are read in one go; bigger ones are streamed in chunks of it.
const CHUNK: u64 = 256 * 1024;

/// How the request asked, as far as serving a file goes.
pub struct Ask<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The live-reload layer will rewrite an HTML body for this client: the page sent is not the
    /// file, so it carries no validators (a 304 would bring back a stale overlay or script).
    pub rewritten_html: bool,
}

pub fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = match (mime.type_(), mime.get_param(mime_guess::mime::CHARSET)) {
        (mime_guess::mime::TEXT, None) => format!("{mime}; charset=utf-8"),
        _ if mime.essence_str() == "application/javascript" => {
            "text/javascript; charset=utf-8".to_owned()
        }
        _ => mime.to_string(),
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

pub fn is_html(path: &Path) -> bool {
    mime_guess::from_path(path)
        .first()
        .is_some_and(|m| m.essence_str() == "text/html")
}

fn head(status: StatusCode, headers: HeaderMap) -> Response<ResponseBody> {
    ResponseHead {
        status,
        headers,
        body: BodySource::Full(bytes::Bytes::new()),
    }
    .into_response(None)
}

pub async fn file(path: &Path, ask: Ask<'_>) -> Response<ResponseBody> {
    // Metadata of the opened file, so length and validators describe what is read.
    let opened = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(_) => return not_found(),
    };
    let metadata = match opened.metadata().await {
        Ok(metadata) if metadata.is_file() => metadata,
        _ => return not_found(),
    };
    let len = metadata.len();
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, content_type(path));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // A development server: browsers may keep a copy but must ask whether it is still current.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let validators = (!ask.rewritten_html).then(|| Validators::of(&metadata));
    if let Some(v) = &validators {
        if let Ok(tag) = HeaderValue::from_str(&v.etag) {
            headers.insert(ETAG, tag);
        }
        if let Ok(date) = HeaderValue::from_str(&v.last_modified) {
            headers.insert(LAST_MODIFIED, date);
        }
        if v.not_modified(ask.headers) {
            headers.remove(CONTENT_TYPE);
            return head(StatusCode::NOT_MODIFIED, headers);
        }
    }
    let range_allowed = validators
        .as_ref()
        .is_none_or(|v| v.range_allowed(ask.headers));
    let wanted = match ask.headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(header) if range_allowed => range::parse(header, len),
        _ => Wanted::Whole,
    };
    let (status, start, count) = match wanted {
        Wanted::Whole => (StatusCode::OK, 0, len),
        Wanted::Part { start, end } => {
            let value = format!("bytes {start}-{end}/{len}");
            headers.insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&value).expect("digits are a valid header"),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Wanted::Unsatisfiable => {
            let mut refusal =
                ResponseHead::plain(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable");
            let value = format!("bytes */{len}");
            refusal.headers.insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&value).expect("digits are a valid header"),
            );
            return refusal.into_response(None);
        }
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(count));
    if ask.method == Method::HEAD {
        return head(status, headers);
    }
    let body = match body(opened, start, count).await {
        Some(body) => body,
        None => return crate::server::response::internal_error(),
    };
    ResponseHead {
        status,
        headers,
        body,
    }
    .into_response(None)
}

/// `count` bytes from `start`. A file that shrank meanwhile ends the stream with an error, so
/// the connection is cut instead of a short body passing for the whole.
async fn body(mut file: tokio::fs::File, start: u64, count: u64) -> Option<BodySource> {
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.ok()?;
    }
    if count <= CHUNK {
        let mut buffer = BytesMut::zeroed(count as usize);
        file.read_exact(&mut buffer).await.ok()?;
        return Some(BodySource::Full(buffer.freeze()));
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    // `take`: never more than announced, even if the file grew meanwhile.
    let mut file = file.take(count);
    tokio::spawn(async move {
        let mut remaining = count;
        while remaining > 0 {
            let mut buffer = BytesMut::with_capacity(remaining.min(CHUNK) as usize);
            let chunk = match file.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => Err(Aborted),
                Ok(read) => {
                    remaining -= read as u64;
                    Ok(buffer.freeze())
                }
            };
            let failed = chunk.is_err();
            // The client went away: stop reading.
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    Some(BodySource::Stream(rx))
}

pub fn not_found() -> Response<ResponseBody> {
    ResponseHead::plain(StatusCode::NOT_FOUND, "Not Found").into_response(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_from_the_extension() {
        let of = |name: &str| content_type(Path::new(name)).to_str().unwrap().to_owned();
        assert_eq!(of("a.css"), "text/css; charset=utf-8");
        assert_eq!(of("a.html"), "text/html; charset=utf-8");
        assert_eq!(of("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(of("a.png"), "image/png");
        assert_eq!(of("a.json"), "application/json");
        assert_eq!(of("noext"), "application/octet-stream");
        assert!(is_html(Path::new("x/index.HTML")));
        assert!(!is_html(Path::new("x/index.htm.txt")));
    }
}
