//! The `Range` request header (RFC 9110 §14.1.2, bytes only). A server may ignore a Range it
//! does not like: malformed headers, other units and multiple ranges get the whole file (200),
//! which every client handles.

/// What to send of a file of a known length.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    Whole,
    /// `start..=end`, both inside the file.
    Part {
        start: u64,
        end: u64,
    },
    /// 416: a well-formed range that no byte of the file satisfies.
    Unsatisfiable,
}

pub fn parse(header: &str, len: u64) -> Wanted {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return Wanted::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        // u64::from_str takes a leading `+`, which the grammar (1*DIGIT) does not.
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match number(last) {
            None => Wanted::Whole,
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if len == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        // `bytes=N-`: from N to the end.
        (false, true) => match number(first) {
            None => Wanted::Whole,
            Some(start) if start >= len => Wanted::Unsatisfiable,
            Some(start) => Wanted::Part {
                start,
                end: len - 1,
            },
        },
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= len {
                    Wanted::Unsatisfiable
                } else {
                    Wanted::Part {
                        start,
                        end: end.min(len - 1),
                    }
                }
            }
            _ => Wanted::Whole, // `bytes=5-2` is invalid, so ignored
        },
        (true, true) => Wanted::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, end: u64) -> Wanted {
        Wanted::Part { start, end }
    }

    #[test]
    fn closed_open_and_suffix_ranges() {
        assert_eq!(parse("bytes=0-9", 100), part(0, 9));
        assert_eq!(parse("bytes=10-10", 100), part(10, 10));
        assert_eq!(parse("bytes=90-200", 100), part(90, 99));
        assert_eq!(parse("bytes=5-", 100), part(5, 99));
        assert_eq!(parse("bytes=-10", 100), part(90, 99));
        assert_eq!(parse("bytes=-500", 100), part(0, 99));
        assert_eq!(parse("Bytes = 1 - 2 ", 100), part(1, 2));
    }

    #[test]
    fn ranges_no_byte_satisfies() {
        assert_eq!(parse("bytes=100-", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=100-200", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=-1", 0), Wanted::Unsatisfiable);
    }

    #[test]
    fn what_is_ignored_gets_the_whole_file() {
        for header in [
            "bytes=5-2",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=--1",
            "bytes=99999999999999999999-",
            "",
        ] {
            assert_eq!(parse(header, 100), Wanted::Whole, "{header:?}");
        }
    }
}
