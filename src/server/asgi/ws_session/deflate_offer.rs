//! Negotiating permessage-deflate (RFC 7692 section 7.1) in the handshake: the client lists its
//! offers in `Sec-WebSocket-Extensions`, the server accepts the first one it can honour and
//! names the parameters it agreed to in the 101 response.

use http::HeaderMap;
use http::header::{HeaderValue, SEC_WEBSOCKET_EXTENSIONS};

const NAME: &str = "permessage-deflate";

/// What both sides agreed to for one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    /// The server starts every message with an empty compression context.
    pub server_no_context_takeover: bool,
    /// The client said it will reset its context; nothing to do on our side but confirm it.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server may use (9..=15; None: 15).
    pub server_max_window_bits: Option<u8>,
}

impl Agreement {
    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    pub fn header_value(&self) -> HeaderValue {
        let mut value = NAME.to_owned();
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            value.push_str(&format!("; server_max_window_bits={bits}"));
        }
        HeaderValue::from_str(&value).expect("ASCII tokens and digits")
    }

    pub fn window_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(15)
    }
}

/// The first permessage-deflate offer of the request that can be accepted; None when the client
/// offers none (or only ones with parameters we must decline).
pub fn negotiate(headers: &HeaderMap) -> Option<Agreement> {
    headers
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(accept)
}

/// One offer, `name; param; param=value`: accepted when every parameter is known, given once
/// and valid.
fn accept(offer: &str) -> Option<Agreement> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let mut agreement = Agreement::default();
    let mut seen: Vec<String> = Vec::new();
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim()))),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) => agreement.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => agreement.client_no_context_takeover = true,
            // zlib cannot write raw deflate with a 256-byte window, so 8 is declined.
            ("server_max_window_bits", Some(value)) => {
                agreement.server_max_window_bits = Some(window_bits(value, 9)?);
            }
            // We inflate with the largest window, so whatever the client uses is fine and the
            // response need not mention it.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(value)) => {
                window_bits(value, 8)?;
            }
            _ => return None,
        }
        seen.push(name);
    }
    Some(agreement)
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// A window size as RFC 7692 writes it: a decimal without leading zeros.
fn window_bits(value: &str, min: u8) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (min..=15).contains(&bits).then_some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(values: &[&str]) -> Option<Agreement> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        negotiate(&headers)
    }

    #[test]
    fn plain_offer_is_accepted_with_defaults() {
        let agreement = offer(&["permessage-deflate"]).unwrap();
        assert_eq!(agreement, Agreement::default());
        assert_eq!(agreement.header_value(), "permessage-deflate");
        assert_eq!(agreement.window_bits(), 15);
    }

    #[test]
    fn the_python_websockets_client_offer() {
        let agreement = offer(&["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(agreement.header_value(), "permessage-deflate");
    }

    #[test]
    fn server_parameters_are_confirmed() {
        let agreement = offer(&[
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=\"10\"; client_max_window_bits=12",
        ])
        .unwrap();
        assert!(agreement.server_no_context_takeover);
        assert_eq!(agreement.window_bits(), 10);
        assert_eq!(
            agreement.header_value(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        );
    }

    #[test]
    fn unacceptable_offers_fall_back_to_the_next_one() {
        // A window of 8, an unknown parameter, a duplicate, a value where none belongs.
        for bad in [
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; mystery",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
        ] {
            assert_eq!(offer(&[bad]), None, "{bad}");
            let fallback = offer(&[bad, "permessage-deflate; server_max_window_bits=11"]);
            assert_eq!(fallback.unwrap().server_max_window_bits, Some(11), "{bad}");
        }
    }

    #[test]
    fn other_extensions_are_ignored() {
        assert_eq!(offer(&["x-webkit-deflate-frame"]), None);
        assert_eq!(offer(&[]), None);
        assert!(offer(&["x-foo, permessage-deflate"]).is_some());
    }
}
