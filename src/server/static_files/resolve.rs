//! From a request path to a file inside a mounted directory, refusing everything that could name
//! a file outside it: `.` and `..` segments (raw or percent-encoded), encoded slashes,
//! backslashes, NUL bytes, and symlinks whose target leaves the directory.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode;

/// One `--static /url=dir`.
pub struct Mount {
    /// Decoded segments of the URL prefix (`/assets/v1` → `["assets", "v1"]`).
    prefix: Vec<Vec<u8>>,
    /// Canonical (symlinks resolved), so a resolved file can be checked to lie under it.
    root: PathBuf,
}

pub struct Mounts(Vec<Mount>);

/// Where a request path points.
#[derive(Debug, PartialEq)]
pub enum Located<'a> {
    /// Under no mount: the app's.
    Outside,
    /// Under a mount, but shaped to escape it (or otherwise unusable): 404.
    Refused,
    /// A path relative to the mount's root (no `..`, no separators other than its own).
    Inside {
        root: &'a Path,
        relative: PathBuf,
        trailing_slash: bool,
    },
}

/// What a located path is on disk.
#[derive(Debug)]
pub enum Resolved {
    File(PathBuf),
    /// A directory with an `index.html`, asked for without the trailing slash.
    AddSlash,
    NotFound,
}

fn decoded_segments(path: &str) -> Vec<Vec<u8>> {
    path.split('/')
        .map(|segment| percent_decode(segment.as_bytes()).collect())
        .collect()
}

/// A segment that stays one file name once decoded.
fn is_plain_name(segment: &[u8]) -> bool {
    segment != b"." && segment != b".." && !segment.iter().any(|&b| matches!(b, b'/' | b'\\' | 0))
}

impl Mounts {
    /// `mounts`: (URL prefix, directory) pairs. Errors name the bad one.
    pub fn new(mounts: &[(String, String)]) -> Result<Self, String> {
        let mut out: Vec<Mount> = Vec::with_capacity(mounts.len());
        for (url, dir) in mounts {
            let trimmed = url.trim_end_matches('/');
            if !url.starts_with('/') || trimmed.is_empty() {
                return Err(format!(
                    "--static {url}={dir}: the URL prefix must start with / and not be / alone"
                ));
            }
            let prefix: Vec<Vec<u8>> = decoded_segments(trimmed).into_iter().skip(1).collect();
            if prefix.iter().any(|s| s.is_empty() || !is_plain_name(s)) {
                return Err(format!(
                    "--static {url}={dir}: the URL prefix must not hold empty, . or .. segments"
                ));
            }
            if out.iter().any(|m| m.prefix == prefix) {
                return Err(format!("--static {url}: this URL prefix is mounted twice"));
            }
            let root = std::fs::canonicalize(dir)
                .map_err(|e| format!("--static {url}={dir}: cannot use the directory: {e}"))?;
            if !root.is_dir() {
                return Err(format!("--static {url}={dir}: not a directory"));
            }
            out.push(Mount { prefix, root });
        }
        // Longest prefix first: `/static/vendor` wins over `/static` for its own URLs.
        out.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `path`: the request target's path, still percent-encoded, without the query.
    pub fn locate(&self, path: &str) -> Located<'_> {
        let segments = decoded_segments(path);
        // segments[0] is what precedes the leading `/`: empty for every origin-form target.
        let Some((first, segments)) = segments.split_first() else {
            return Located::Outside;
        };
        if !first.is_empty() {
            return Located::Outside;
        }
        let Some(mount) = self
            .0
            .iter()
            .find(|m| segments.len() >= m.prefix.len() && segments[..m.prefix.len()] == m.prefix)
        else {
            return Located::Outside;
        };
        let rest = &segments[mount.prefix.len()..];
        let mut relative = PathBuf::new();
        for segment in rest {
            if segment.is_empty() {
                continue; // `a//b` is `a/b`, as for nginx
            }
            if !is_plain_name(segment) {
                return Located::Refused;
            }
            relative.push(OsStr::from_bytes(segment));
        }
        Located::Inside {
            root: &mount.root,
            relative,
            // `/static` alone is the directory asked for without its slash.
            trailing_slash: rest.last().is_some_and(|s| s.is_empty()),
        }
    }
}

/// The canonical form of `path` and its metadata, if it exists and stays under `root`.
async fn inside(root: &Path, path: &Path) -> Option<(PathBuf, Metadata)> {
    let real = tokio::fs::canonicalize(path).await.ok()?;
    if !real.starts_with(root) {
        return None; // a symlink that leads out of the mounted directory
    }
    let metadata = tokio::fs::metadata(&real).await.ok()?;
    Some((real, metadata))
}

/// Only regular files are served: opening a FIFO or a device could block or never end.
pub async fn resolve(root: &Path, relative: &Path, trailing_slash: bool) -> Resolved {
    let Some((real, metadata)) = inside(root, &root.join(relative)).await else {
        return Resolved::NotFound;
    };
    if metadata.is_file() {
        return if trailing_slash {
            Resolved::NotFound
        } else {
            Resolved::File(real)
        };
    }
    if !metadata.is_dir() {
        return Resolved::NotFound;
    }
    match inside(root, &real.join("index.html")).await {
        Some((index, metadata)) if metadata.is_file() => {
            if trailing_slash {
                Resolved::File(index)
            } else {
                Resolved::AddSlash
            }
        }
        _ => Resolved::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn mounts(dir: &Path, prefixes: &[&str]) -> Mounts {
        let pairs: Vec<(String, String)> = prefixes
            .iter()
            .map(|p| (p.to_string(), dir.display().to_string()))
            .collect();
        Mounts::new(&pairs).unwrap()
    }

    fn relative(located: Located<'_>) -> (String, bool) {
        match located {
            Located::Inside {
                relative,
                trailing_slash,
                ..
            } => (relative.display().to_string(), trailing_slash),
            other => panic!("not inside: {other:?}"),
        }
    }

    #[test]
    fn paths_under_the_prefix_are_relative_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let m = mounts(dir.path(), &["/static"]);
        assert_eq!(
            relative(m.locate("/static/a/b.css")),
            ("a/b.css".into(), false)
        );
        assert_eq!(relative(m.locate("/static/a/")), ("a".into(), true));
        assert_eq!(relative(m.locate("/static")), ("".into(), false));
        assert_eq!(relative(m.locate("/static/")), ("".into(), true));
        assert_eq!(relative(m.locate("/static//a")), ("a".into(), false));
        assert_eq!(
            relative(m.locate("/static/a%20b.txt")),
            ("a b.txt".into(), false)
        );
        assert_eq!(relative(m.locate("/st%61tic/x")), ("x".into(), false));
    }

    #[test]
    fn other_paths_belong_to_the_app() {
        let dir = tempfile::tempdir().unwrap();
        let m = mounts(dir.path(), &["/static/"]);
        assert_eq!(m.locate("/"), Located::Outside);
        assert_eq!(m.locate("/staticfoo/x"), Located::Outside);
        assert_eq!(m.locate("/api/static/x"), Located::Outside);
        assert_eq!(m.locate("*"), Located::Outside);
        assert_eq!(m.locate("//static/x"), Located::Outside);
        // An encoded slash keeps the prefix from matching: one segment `static/x`.
        assert_eq!(m.locate("/static%2fx"), Located::Outside);
    }

    #[test]
    fn escaping_shapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = mounts(dir.path(), &["/static"]);
        for path in [
            "/static/../secret",
            "/static/a/../../secret",
            "/static/%2e%2e/secret",
            "/static/%2E%2e/secret",
            "/static/.%2e/secret",
            "/static/./x",
            "/static/a%2f..%2f..%2fsecret",
            "/static/..%5csecret",
            "/static/a\\..\\secret",
            "/static/x%00.css",
            "/static/%2fetc%2fpasswd",
        ] {
            assert_eq!(m.locate(path), Located::Refused, "{path}");
        }
    }

    #[test]
    fn the_longest_prefix_wins() {
        let outer = tempfile::tempdir().unwrap();
        let inner = tempfile::tempdir().unwrap();
        let pairs = vec![
            ("/static".to_string(), outer.path().display().to_string()),
            (
                "/static/vendor".to_string(),
                inner.path().display().to_string(),
            ),
        ];
        let m = Mounts::new(&pairs).unwrap();
        let Located::Inside { root, .. } = m.locate("/static/vendor/x.js") else {
            panic!()
        };
        assert_eq!(root, fs::canonicalize(inner.path()).unwrap());
    }

    #[test]
    fn bad_mounts_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let bad = |url: &str, dir: &str| Mounts::new(&[(url.into(), dir.into())]).err().unwrap();
        assert!(bad("/", &d).contains("not be / alone"));
        assert!(bad("static", &d).contains("must start with /"));
        assert!(bad("/a/../b", &d).contains(".."));
        assert!(bad("/s", "/definitely/not/here").contains("cannot use the directory"));
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        assert!(bad("/s", &file.display().to_string()).contains("not a directory"));
        let twice = Mounts::new(&[("/s".into(), d.clone()), ("/s/".into(), d)]);
        assert!(twice.err().unwrap().contains("twice"));
    }

    #[tokio::test]
    async fn files_directories_and_symlinks_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("docs")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::write(root.join("a.css"), "a").unwrap();
        fs::write(root.join("docs/index.html"), "<p>").unwrap();
        fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("out.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("a.css"), root.join("in.css")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        let root = fs::canonicalize(&root).unwrap();
        let at = |rel: &str, slash: bool| {
            let root = root.clone();
            let rel = PathBuf::from(rel);
            async move { resolve(&root, &rel, slash).await }
        };
        assert!(matches!(at("a.css", false).await, Resolved::File(_)));
        assert!(matches!(at("a.css", true).await, Resolved::NotFound));
        assert!(matches!(at("in.css", false).await, Resolved::File(_)));
        assert!(matches!(at("out.txt", false).await, Resolved::NotFound));
        assert!(matches!(
            at("up/secret.txt", false).await,
            Resolved::NotFound
        ));
        assert!(matches!(at("missing", false).await, Resolved::NotFound));
        assert!(matches!(at("docs", false).await, Resolved::AddSlash));
        match at("docs", true).await {
            Resolved::File(path) => assert!(path.ends_with("docs/index.html")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(at("empty", true).await, Resolved::NotFound));
        assert!(matches!(at("", false).await, Resolved::NotFound));
    }
}
