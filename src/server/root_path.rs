//! `--root-path` as the server's own endpoints (the live-reload event stream, `--static` mounts)
//! see it. The app gets it in its scope (ASGI `root_path`, WSGI `SCRIPT_NAME`); these endpoints
//! answer at their own paths (what a proxy that strips the prefix forwards, the setup uvicorn's
//! flag is for) and also with the root path in front (a direct visit to the server), and the
//! URLs they hand the browser carry it.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Characters that could end a quoted attribute or a JavaScript string, or start a query.
const UNSAFE_IN_URL: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'\'')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'`')
    .add(b'#')
    .add(b'?');

/// `path` with the root path taken off its front, when it is there (as a whole segment).
pub fn strip<'a>(root: &str, path: &'a str) -> &'a str {
    if root.is_empty() {
        return path;
    }
    match path.strip_prefix(root) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// `path` (absolute, the server's own) as the browser must ask for it: behind the root path.
pub fn public(root: &str, path: &str) -> String {
    format!("{}{path}", utf8_percent_encode(root, UNSAFE_IN_URL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_root_only_as_a_whole_prefix_segment() {
        assert_eq!(strip("", "/static/a.css"), "/static/a.css");
        assert_eq!(strip("/api", "/api/static/a.css"), "/static/a.css");
        assert_eq!(strip("/api", "/static/a.css"), "/static/a.css");
        assert_eq!(strip("/api", "/apix/static"), "/apix/static");
        assert_eq!(strip("/api", "/api"), "/api");
    }

    #[test]
    fn public_urls_carry_the_root_escaped() {
        assert_eq!(public("", "/__hmr_serve/events"), "/__hmr_serve/events");
        assert_eq!(public("/api", "/x/"), "/api/x/");
        assert_eq!(public("/a'b</script>", "/x"), "/a%27b%3C/script%3E/x");
    }
}
