//! ETag and Last-Modified of a file, and the conditional request headers that use them
//! (RFC 9110 §13): If-None-Match / If-Modified-Since for 304s, If-Range for ranges.

use std::fs::Metadata;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE};

pub struct Validators {
    /// Strong, from modification time (nanoseconds) and size, like nginx's: a save changes it.
    pub etag: String,
    pub modified: SystemTime,
    pub last_modified: String,
}

impl Validators {
    pub fn of(metadata: &Metadata) -> Self {
        let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Self {
            etag: format!("\"{nanos:x}-{:x}\"", metadata.len()),
            modified,
            last_modified: httpdate::fmt_http_date(modified),
        }
    }

    /// Whether the client's copy is current (answer 304). If-None-Match, when sent, decides
    /// alone; If-Modified-Since is compared in whole seconds, the precision of HTTP dates.
    pub fn not_modified(&self, request: &HeaderMap) -> bool {
        let tags: Vec<&str> = request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !tags.is_empty() {
            return tags
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .any(|tag| tag == "*" || weak_eq(tag, &self.etag));
        }
        let Some(since) = request
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
        else {
            return false;
        };
        whole_seconds(self.modified) <= whole_seconds(since)
    }

    /// Whether a Range may be honoured: no If-Range, or one naming this very version (strong
    /// comparison for a tag, an exact date otherwise).
    pub fn range_allowed(&self, request: &HeaderMap) -> bool {
        let Some(value) = request.get(IF_RANGE).and_then(|v| v.to_str().ok()) else {
            return request.get(IF_RANGE).is_none();
        };
        let value = value.trim();
        if value.starts_with('"') || value.starts_with("W/") {
            return value == self.etag;
        }
        httpdate::parse_http_date(value)
            .is_ok_and(|date| whole_seconds(date) == whole_seconds(self.modified))
    }
}

fn whole_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// If-None-Match compares weakly: `W/"x"` matches `"x"`.
fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::Duration;

    fn validators() -> Validators {
        let modified = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        Validators {
            etag: "\"abc-10\"".into(),
            modified,
            last_modified: httpdate::fmt_http_date(modified),
        }
    }

    fn headers(pairs: &[(http::header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let v = validators();
        assert!(v.not_modified(&headers(&[(IF_NONE_MATCH, "\"abc-10\"")])));
        assert!(v.not_modified(&headers(&[(IF_NONE_MATCH, "\"x\", W/\"abc-10\"")])));
        assert!(v.not_modified(&headers(&[(IF_NONE_MATCH, "*")])));
        assert!(!v.not_modified(&headers(&[(IF_NONE_MATCH, "\"abc-11\"")])));
        assert!(!v.not_modified(&HeaderMap::new()));
    }

    #[test]
    fn if_modified_since_in_whole_seconds_and_overruled_by_tags() {
        let v = validators();
        let same = headers(&[(IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:20 GMT")]);
        assert!(v.not_modified(&same));
        let later = headers(&[(IF_MODIFIED_SINCE, "Wed, 15 Nov 2023 00:00:00 GMT")]);
        assert!(v.not_modified(&later));
        let earlier = headers(&[(IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:19 GMT")]);
        assert!(!v.not_modified(&earlier));
        assert!(!v.not_modified(&headers(&[(IF_MODIFIED_SINCE, "yesterday")])));
        let both = headers(&[
            (IF_NONE_MATCH, "\"old\""),
            (IF_MODIFIED_SINCE, "Wed, 15 Nov 2023 00:00:00 GMT"),
        ]);
        assert!(!v.not_modified(&both));
    }

    #[test]
    fn if_range_needs_this_exact_version() {
        let v = validators();
        assert!(v.range_allowed(&HeaderMap::new()));
        assert!(v.range_allowed(&headers(&[(IF_RANGE, "\"abc-10\"")])));
        assert!(!v.range_allowed(&headers(&[(IF_RANGE, "W/\"abc-10\"")])));
        assert!(!v.range_allowed(&headers(&[(IF_RANGE, "\"other\"")])));
        assert!(v.range_allowed(&headers(&[(IF_RANGE, "Tue, 14 Nov 2023 22:13:20 GMT")])));
        assert!(!v.range_allowed(&headers(&[(IF_RANGE, "Tue, 14 Nov 2023 22:13:21 GMT")])));
    }
}
