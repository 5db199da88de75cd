//! The server-sent-events stream pages listen on (`/__hmr_serve/events`). Answered by the server
//! itself, never by the app: a stream stays open for the whole session, so it must not count as a
//! request a reload waits for, and it ends when the server shuts down or restarts.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::LiveHub;
use crate::server::response::{BodySource, ResponseBody, ResponseHead, STREAM_BUFFER};

pub const PATH: &str = "/__hmr_serve/events";

/// A comment line now and then, so a page that went away is noticed (the write fails).
const KEEPALIVE: Duration = Duration::from_secs(15);

/// One event in the text/event-stream format; each line of `data` gets its own `data:` field.
/// `id` is the generation the event brings pages to (see the script in mod.rs).
pub fn encode(id: &str, event: &str, data: &str) -> Bytes {
    let mut out = format!("id: {id}\nevent: {event}\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.trim_end_matches('\r'));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

pub fn response(hub: &LiveHub, trusted: bool) -> Response<ResponseBody> {
    if !trusted {
        return ResponseHead::plain(
            StatusCode::FORBIDDEN,
            "live reload events are only served to local clients (see --show-errors-to-all)",
        )
        .into_response(None);
    }
    // Subscribed before the generation is read: an event sent in between is either counted in
    // `hello` or received (at worst both: one needless reload).
    let mut events = hub.events.subscribe();
    let hello = encode(&hub.generation_id(hub.generation()), "hello", "{}");
    let mut shutdown = hub.shutdown.clone();
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    // How long a browser waits before reconnecting after the stream ended (restart, shutdown).
    let _ = tx.try_send(Ok(Bytes::from_static(b"retry: 500\n: hmr-serve\n\n")));
    let _ = tx.try_send(Ok(hello));
    tokio::spawn(async move {
        loop {
            let chunk = tokio::select! {
                event = events.recv() => match event {
                    Ok(bytes) => bytes,
                    // Missed events: a reload (an id no page has) is the safe answer.
                    Err(RecvError::Lagged(_)) => encode("", "reload", "{}"),
                    Err(RecvError::Closed) => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
                () = tx.closed() => break,
                () = tokio::time::sleep(KEEPALIVE) => Bytes::from_static(b": keepalive\n\n"),
            };
            if tx.send(Ok(chunk)).await.is_err() {
                break;
            }
        }
    });
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    ResponseHead {
        status: StatusCode::OK,
        headers,
        body: BodySource::Stream(rx),
    }
    .into_response(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_data_becomes_several_fields() {
        assert_eq!(
            encode("1", "reload", "{}"),
            "id: 1\nevent: reload\ndata: {}\n\n"
        );
        assert_eq!(
            encode("2", "failed", "a\r\nb"),
            "id: 2\nevent: failed\ndata: a\ndata: b\n\n"
        );
    }
}
