//! Splicing a snippet into an HTML response before its `</body>`. Only whole, uncompressed
//! bodies of a known length are touched; the Content-Length is fixed up. Anything else (a
//! compressed or streaming body, a fragment without `</body>`, a HEAD answer) goes out as it is.

use bytes::Bytes;
use http::header::{
    ACCEPT, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue,
};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::server::response::{Aborted, BodySource, ResponseBody, ResponseHead};

/// A page bigger than this is sent as it is rather than buffered.
const MAX_PAGE: u64 = 16 * 1024 * 1024;

/// A browser loading a page asks for HTML; API clients, `fetch()` and test clients (`*/*`) get
/// exactly what the app sent.
pub fn browser_navigation(request: &HeaderMap) -> bool {
    request.get_all(ACCEPT).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("text/html"))
    })
}

/// Whether the head allows rewriting the body at all.
pub fn eligible(method: &Method, status: StatusCode, headers: &HeaderMap) -> bool {
    if method == Method::HEAD
        || status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        )
        || headers.contains_key(CONTENT_RANGE)
    {
        return false;
    }
    let is_html = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("text/html")
        });
    let encoded = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    is_html && !encoded
}

/// The body length the response announces, if it does.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Where the last `</body` starts (ASCII case-insensitive).
fn body_close(html: &[u8]) -> Option<usize> {
    const TAG: &[u8] = b"</body";
    html.windows(TAG.len())
        .rposition(|w| w.eq_ignore_ascii_case(TAG))
}

/// The page with `snippet` before its `</body>`, or None when it has none.
pub fn splice(html: &[u8], snippet: &[u8]) -> Option<Vec<u8>> {
    let at = body_close(html)?;
    let mut out = Vec::with_capacity(html.len() + snippet.len());
    out.extend_from_slice(&html[..at]);
    out.extend_from_slice(snippet);
    out.extend_from_slice(&html[at..]);
    Some(out)
}

fn whole(bytes: Bytes) -> ResponseBody {
    ResponseHead {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: BodySource::Full(bytes),
    }
    .into_response(None)
    .into_body()
}

fn aborted() -> ResponseBody {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Err(Aborted));
    ResponseHead {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: BodySource::Stream(rx),
    }
    .into_response(None)
    .into_body()
}

/// The response with `snippet` spliced in, when it is an HTML page that allows it.
pub async fn into_response(
    response: Response<ResponseBody>,
    method: &Method,
    snippet: &[u8],
) -> Response<ResponseBody> {
    if !eligible(method, response.status(), response.headers()) {
        return response;
    }
    let known = response
        .body()
        .size_hint()
        .exact()
        .or_else(|| declared_length(response.headers()));
    if known.is_none_or(|len| len > MAX_PAGE) {
        return response; // streaming without a length: left alone
    }
    let (mut parts, body) = response.into_parts();
    let page = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The app stopped mid-body: the client sees the connection cut, as without us.
        Err(Aborted) => return Response::from_parts(parts, aborted()),
    };
    let page = match splice(&page, snippet) {
        Some(spliced) => Bytes::from(spliced),
        None => page,
    };
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(page.len()));
    Response::from_parts(parts, whole(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn splices_before_the_last_body_close() {
        let page = b"<html><body><p>a</p></BODY></html>";
        let out = splice(page, b"<script>x</script>").unwrap();
        assert_eq!(
            out,
            b"<html><body><p>a</p><script>x</script></BODY></html>".to_vec()
        );
        assert!(splice(b"<p>fragment</p>", b"<script>").is_none());
    }

    #[test]
    fn only_browsers_asking_for_html_get_the_snippet() {
        let browser = headers(&[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")]);
        assert!(browser_navigation(&browser));
        assert!(!browser_navigation(&headers(&[("accept", "*/*")])));
        assert!(!browser_navigation(&HeaderMap::new()));
    }

    #[test]
    fn only_plain_html_pages_qualify() {
        let ok = StatusCode::OK;
        let html = headers(&[("content-type", "text/html; charset=utf-8")]);
        assert!(eligible(&Method::GET, ok, &html));
        assert!(eligible(&Method::GET, StatusCode::NOT_FOUND, &html));
        assert!(!eligible(&Method::HEAD, ok, &html));
        assert!(!eligible(&Method::GET, StatusCode::NOT_MODIFIED, &html));
        let gzip = headers(&[("content-type", "text/html"), ("content-encoding", "gzip")]);
        assert!(!eligible(&Method::GET, ok, &gzip));
        let json = headers(&[("content-type", "application/json")]);
        assert!(!eligible(&Method::GET, ok, &json));
        let xhtml_like = headers(&[("content-type", "text/htmlx")]);
        assert!(!eligible(&Method::GET, ok, &xhtml_like));
    }

    #[tokio::test]
    async fn content_length_follows_the_new_body() {
        let page = "<html><body>hi</body></html>";
        let response = ResponseHead {
            status: StatusCode::OK,
            headers: headers(&[("content-type", "text/html"), ("content-length", "28")]),
            body: BodySource::Full(Bytes::from_static(page.as_bytes())),
        }
        .into_response(None);
        let out = into_response(response, &Method::GET, b"<i>x</i>").await;
        let length: usize = out.headers()[CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = out.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "<html><body>hi<i>x</i></body></html>");
        assert_eq!(length, body.len());
    }

    #[tokio::test]
    async fn a_stream_without_length_is_left_alone() {
        let (tx, rx) = mpsc::channel(2);
        tx.try_send(Ok(Bytes::from_static(b"<body></body>")))
            .unwrap();
        drop(tx);
        let response = ResponseHead {
            status: StatusCode::OK,
            headers: headers(&[("content-type", "text/html")]),
            body: BodySource::Stream(rx),
        }
        .into_response(None);
        let out = into_response(response, &Method::GET, b"<i>x</i>").await;
        assert!(!out.headers().contains_key(CONTENT_LENGTH));
        let body = out.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "<body></body>");
    }
}
