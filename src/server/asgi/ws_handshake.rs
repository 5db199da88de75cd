//! The WebSocket handshake over HTTP (RFC 6455), without Python: recognising an upgrade
//! request, checking it, the subprotocols it offers, and the responses that answer it (101 with
//! the accept key, or 400). `Handshake` is what the app decided, on its way back to the
//! connection.

use http::header::{
    CONNECTION, HeaderMap, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Method, Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::ws_session::deflate_offer::Agreement;
use crate::server::response::{BodySource, ResponseBody, ResponseHead};

/// What a request asks to be upgraded to.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    None,
    WebSocket,
    /// Something else (h2c, or websocket while WebSockets are off): served as plain HTTP.
    Unsupported,
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Like uvicorn: an upgrade is asked for by `Connection: upgrade` plus an `Upgrade` header.
pub fn upgrade_requested(headers: &HeaderMap) -> Upgrade {
    if !has_token(headers, CONNECTION, "upgrade") || !headers.contains_key(UPGRADE) {
        return Upgrade::None;
    }
    if has_token(headers, UPGRADE, "websocket") {
        Upgrade::WebSocket
    } else {
        Upgrade::Unsupported
    }
}

/// The client's key when the request is a valid RFC 6455 handshake; otherwise why not.
pub fn handshake_key<B>(req: &Request<B>) -> Result<HeaderValue, &'static str> {
    if req.method() != Method::GET {
        return Err("the handshake must be a GET request");
    }
    if req.version() != http::Version::HTTP_11 {
        return Err("the handshake needs HTTP/1.1");
    }
    let version = req.headers().get(SEC_WEBSOCKET_VERSION);
    if version.map(|v| v.as_bytes()) != Some(b"13") {
        return Err("unsupported or missing Sec-WebSocket-Version (13 is supported)");
    }
    let key = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .ok_or("missing Sec-WebSocket-Key header")?;
    // A base64-encoded 16-byte nonce is 24 characters ending in "==".
    let bytes = key.as_bytes();
    let base64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    if bytes.len() != 24 || !bytes[..22].iter().all(base64) || &bytes[22..] != b"==" {
        return Err("invalid Sec-WebSocket-Key header");
    }
    Ok(key.clone())
}

/// The subprotocols the client offers, in its order of preference.
pub fn subprotocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The app's answer to the handshake.
pub enum Handshake {
    Accept {
        subprotocol: Option<String>,
        headers: HeaderMap,
    },
    Respond(ResponseHead),
}

pub fn switching_protocols(
    key: &HeaderValue,
    subprotocol: Option<String>,
    deflate: Option<&Agreement>,
    mut headers: HeaderMap,
) -> Result<ResponseHead, &'static str> {
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Some(agreement) = deflate {
        headers.insert(SEC_WEBSOCKET_EXTENSIONS, agreement.header_value());
    }
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = derive_accept_key(key.as_bytes());
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    if let Some(subprotocol) = subprotocol {
        let value = HeaderValue::from_str(&subprotocol)
            .map_err(|_| "the accepted subprotocol is not a valid header value")?;
        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    Ok(ResponseHead {
        status: StatusCode::SWITCHING_PROTOCOLS,
        headers,
        body: BodySource::Full(bytes::Bytes::new()),
    })
}

pub fn bad_request(reason: &str) -> Response<ResponseBody> {
    let text = format!("Failed to open a WebSocket connection: {reason}.\n");
    let mut head = ResponseHead::plain(StatusCode::BAD_REQUEST, "");
    head.headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    // The client expected to switch protocols: it is not waiting to send another request.
    head.headers
        .insert(CONNECTION, HeaderValue::from_static("close"));
    head.body = BodySource::Full(bytes::Bytes::from(text));
    head.into_response(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method("GET").uri("/ws");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    const VALID: &[(&str, &str)] = &[
        ("Connection", "keep-alive, Upgrade"),
        ("Upgrade", "WebSocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn recognises_upgrade_requests() {
        assert_eq!(
            upgrade_requested(request(VALID).headers()),
            Upgrade::WebSocket
        );
        let plain = request(&[("Connection", "keep-alive")]);
        assert_eq!(upgrade_requested(plain.headers()), Upgrade::None);
        // An Upgrade header without the Connection token is no upgrade (RFC 9110 7.8).
        let no_token = request(&[("Upgrade", "websocket")]);
        assert_eq!(upgrade_requested(no_token.headers()), Upgrade::None);
        let h2c = request(&[
            ("Connection", "Upgrade, HTTP2-Settings"),
            ("Upgrade", "h2c"),
        ]);
        assert_eq!(upgrade_requested(h2c.headers()), Upgrade::Unsupported);
    }

    #[test]
    fn validates_the_handshake() {
        assert!(handshake_key(&request(VALID)).is_ok());
        let without = |skip: &str| {
            let headers: Vec<_> = VALID.iter().copied().filter(|(n, _)| *n != skip).collect();
            handshake_key(&request(&headers))
        };
        assert_eq!(
            without("Sec-WebSocket-Key"),
            Err("missing Sec-WebSocket-Key header")
        );
        assert!(without("Sec-WebSocket-Version").is_err());
        let mut bad_key = VALID.to_vec();
        bad_key[3] = ("Sec-WebSocket-Key", "short");
        assert_eq!(
            handshake_key(&request(&bad_key)),
            Err("invalid Sec-WebSocket-Key header")
        );
        let mut post = request(VALID);
        *post.method_mut() = Method::POST;
        assert!(handshake_key(&post).is_err());
    }

    #[test]
    fn accept_key_follows_rfc_6455() {
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let mut extra = HeaderMap::new();
        extra.insert("x-extra", HeaderValue::from_static("1"));
        let head = switching_protocols(&key, Some("chat".into()), None, extra).unwrap();
        assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
        // The example from RFC 6455 section 1.3.
        assert_eq!(
            head.headers[SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(head.headers[SEC_WEBSOCKET_PROTOCOL], "chat");
        assert_eq!(head.headers[UPGRADE], "websocket");
        assert_eq!(head.headers["x-extra"], "1");
        assert!(!head.headers.contains_key(SEC_WEBSOCKET_EXTENSIONS));
        assert!(
            switching_protocols(&key, Some("bad\nvalue".into()), None, HeaderMap::new()).is_err()
        );
        let agreement = Agreement {
            server_no_context_takeover: true,
            ..Agreement::default()
        };
        let head = switching_protocols(&key, None, Some(&agreement), HeaderMap::new()).unwrap();
        assert_eq!(
            head.headers[SEC_WEBSOCKET_EXTENSIONS],
            "permessage-deflate; server_no_context_takeover"
        );
    }

    #[test]
    fn subprotocols_keep_the_client_order() {
        let req = request(&[
            ("Sec-WebSocket-Protocol", "graphql-ws, chat"),
            ("Sec-WebSocket-Protocol", " v2 "),
        ]);
        assert_eq!(
            subprotocols(req.headers()),
            vec!["graphql-ws", "chat", "v2"]
        );
    }
}
