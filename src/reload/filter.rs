//! Which changed paths deserve a reload: user globs on top of a fixed list of paths that are
//! never source code (caches, VCS metadata, virtualenvs, editor scratch files).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Directory names whose contents are tool output or installed packages, never the app's code.
/// Reloading on them would loop (bytecode caches) or storm (package installs).
const IGNORED_DIRS: &[&str] = &[
    "__pycache__",
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "env",
    "site-packages",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
];

/// Files a first-party module read while it imported (data it was built from): watched whatever
/// the includes. Shared with the engine, which adds to it as modules run.
pub type DataFiles = Arc<RwLock<HashSet<PathBuf>>>;

pub struct PathFilter {
    /// Longest first, so a path is judged relative to the innermost root that holds it.
    roots: Vec<PathBuf>,
    /// Roots every file of which counts, whatever the includes (`--static` directories).
    open_roots: Vec<PathBuf>,
    include_names: GlobSet,
    include_paths: GlobSet,
    exclude_names: GlobSet,
    exclude_paths: GlobSet,
    data_files: DataFiles,
}

impl PathFilter {
    /// roots: the watched directories (absolute). includes: globs; empty means the default
    /// `["*.py"]`. excludes: globs. A glob without `/` matches the file name, one with `/` the
    /// path relative to its root.
    pub fn new(
        roots: &[PathBuf],
        includes: &[String],
        excludes: &[String],
    ) -> Result<Self, globset::Error> {
        let mut roots = roots.to_vec();
        roots.sort_by_key(|root| std::cmp::Reverse(root.components().count()));
        let default_includes = ["*.py".to_owned()];
        let includes = if includes.is_empty() {
            &default_includes[..]
        } else {
            includes
        };
        let (include_names, include_paths) = build_sets(includes)?;
        let (exclude_names, exclude_paths) = build_sets(excludes)?;
        Ok(Self {
            roots,
            open_roots: Vec::new(),
            include_names,
            include_paths,
            exclude_names,
            exclude_paths,
            data_files: DataFiles::default(),
        })
    }

    /// Accepts the files of `data_files` too, as the set grows.
    pub fn with_data_files(mut self, data_files: DataFiles) -> Self {
        self.data_files = data_files;
        self
    }

    /// Adds roots whose files are all accepted (the includes do not apply; the excludes, the
    /// ignored directories and editor scratch files still do).
    pub fn with_open_roots(mut self, open: &[PathBuf]) -> Self {
        for root in open {
            if !self.roots.contains(root) {
                self.roots.push(root.clone());
            }
        }
        self.roots
            .sort_by_key(|root| std::cmp::Reverse(root.components().count()));
        self.open_roots = open.to_vec();
        self
    }

    /// Whether a change to this path is interesting.
    pub fn accepts(&self, path: &Path) -> bool {
        let Some(relative) = self.relative(path) else {
            return false;
        };
        let Some(name) = relative.file_name() else {
            return false;
        };
        if has_ignored_dir(relative) || is_scratch_file(name) {
            return false;
        }
        let included = self.open_roots.iter().any(|root| path.starts_with(root))
            || self.include_names.is_match(name)
            || self.include_paths.is_match(relative)
            || self
                .data_files
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(path);
        included && !self.exclude_names.is_match(name) && !self.exclude_paths.is_match(relative)
    }

    /// Whether a directory may hold accepted files, so walks can skip caches and virtualenvs
    /// (which can hold tens of thousands of files) instead of filtering every file in them.
    pub fn may_contain(&self, dir: &Path) -> bool {
        self.relative(dir)
            .is_some_and(|relative| !has_ignored_dir(relative))
    }

    fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        self.roots
            .iter()
            .find_map(|root| path.strip_prefix(root).ok())
    }
}

fn build_sets(globs: &[String]) -> Result<(GlobSet, GlobSet), globset::Error> {
    let mut names = GlobSetBuilder::new();
    let mut paths = GlobSetBuilder::new();
    for glob in globs {
        // Relative paths never start with `./`, so a glob written that way would never match.
        let glob = glob.strip_prefix("./").unwrap_or(glob);
        if glob.contains('/') {
            // `*` must stay inside one directory so that only `**` spans several.
            paths.add(GlobBuilder::new(glob).literal_separator(true).build()?);
        } else {
            names.add(Glob::new(glob)?);
        }
    }
    Ok((names.build()?, paths.build()?))
}

/// Only components below the root count: a project may itself live under a directory named
/// `env` or `venv`.
fn has_ignored_dir(relative: &Path) -> bool {
    relative.components().any(|component| match component {
        Component::Normal(name) => IGNORED_DIRS.iter().any(|dir| name == OsStr::new(dir)),
        _ => false,
    })
}

/// Bytecode and the files editors write next to the real one while saving or as backups.
fn is_scratch_file(name: &OsStr) -> bool {
    // Bytes, not str: a non-UTF-8 name must still be judged, not silently accepted.
    let name = name.as_encoded_bytes();
    const SUFFIXES: &[&[u8]] = &[
        b".pyc",
        b".pyo",
        b".swp",
        b".swo",
        b".swx",
        b"~",
        b".tmp",
        b"___jb_tmp___",
        b"___jb_old___",
    ];
    SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
        || name.starts_with(b".#")
        || (name.len() >= 2 && name.starts_with(b"#") && name.ends_with(b"#"))
        || name == b"4913"
        || (name.starts_with(b".") && name.ends_with(b".kate-swp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(includes: &[&str], excludes: &[&str]) -> PathFilter {
        let owned = |globs: &[&str]| globs.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        PathFilter::new(
            &[PathBuf::from("/proj")],
            &owned(includes),
            &owned(excludes),
        )
        .unwrap()
    }

    fn accepts(filter: &PathFilter, path: &str) -> bool {
        filter.accepts(Path::new(path))
    }

    #[test]
    fn default_include_is_python_files_at_any_depth() {
        let f = filter(&[], &[]);
        assert!(accepts(&f, "/proj/app.py"));
        assert!(accepts(&f, "/proj/pkg/sub/mod.py"));
        assert!(!accepts(&f, "/proj/README.md"));
        assert!(!accepts(&f, "/proj/app.pyi"));
        assert!(!accepts(&f, "/proj/pkg"));
    }

    #[test]
    fn data_files_are_accepted_once_registered() {
        let data = DataFiles::default();
        let f = filter(&[], &[]).with_data_files(data.clone());
        assert!(!accepts(&f, "/proj/data/config.json"));
        data.write()
            .unwrap()
            .insert(PathBuf::from("/proj/data/config.json"));
        assert!(accepts(&f, "/proj/data/config.json"));
        assert!(!accepts(&f, "/proj/data/other.json"));
        assert!(!accepts(&f, "/other/config.json"));
    }

    #[test]
    fn paths_outside_every_root_are_rejected() {
        let f = filter(&[], &[]);
        assert!(!accepts(&f, "/other/app.py"));
        assert!(!accepts(&f, "/project/app.py"));
        assert!(!accepts(&f, "/proj"));
    }

    #[test]
    fn path_is_relative_to_the_innermost_root() {
        let f = PathFilter::new(
            &[PathBuf::from("/proj"), PathBuf::from("/proj/lib")],
            &["*.py".into(), "*/*.html".into()],
            &[],
        )
        .unwrap();
        // Relative to /proj/lib this is `x/page.html`; relative to /proj it would not match.
        assert!(accepts(&f, "/proj/lib/x/page.html"));
        assert!(accepts(&f, "/proj/x/page.html"));
        assert!(!accepts(&f, "/proj/lib/x/y/page.html"));
    }

    #[test]
    fn name_globs_match_the_file_name_only() {
        let f = filter(&["*.html", "settings*"], &[]);
        assert!(accepts(&f, "/proj/templates/deep/index.html"));
        assert!(accepts(&f, "/proj/conf/settings_local.py"));
        assert!(!accepts(&f, "/proj/settings/base.py"));
        assert!(!accepts(&f, "/proj/app.py"));
    }

    #[test]
    fn path_globs_match_the_relative_path() {
        let f = filter(&["templates/*.html"], &[]);
        assert!(accepts(&f, "/proj/templates/index.html"));
        assert!(!accepts(&f, "/proj/templates/sub/index.html"));
        assert!(!accepts(&f, "/proj/other/templates/index.html"));
    }

    #[test]
    fn double_star_spans_directories() {
        let f = filter(&["templates/**/*.html", "**/*.txt"], &[]);
        assert!(accepts(&f, "/proj/templates/index.html"));
        assert!(accepts(&f, "/proj/templates/a/b/c.html"));
        assert!(!accepts(&f, "/proj/static/a/b/c.html"));
        assert!(accepts(&f, "/proj/notes.txt"));
        assert!(accepts(&f, "/proj/a/b/notes.txt"));
    }

    #[test]
    fn leading_dot_slash_is_ignored() {
        let f = filter(&["./templates/*.html"], &[]);
        assert!(accepts(&f, "/proj/templates/index.html"));
    }

    #[test]
    fn excludes_win_over_includes() {
        let f = filter(
            &["*.py"],
            &["test_*.py", "migrations/**", "**/generated/*.py"],
        );
        assert!(accepts(&f, "/proj/app.py"));
        assert!(!accepts(&f, "/proj/tests/test_app.py"));
        assert!(!accepts(&f, "/proj/migrations/0001_initial.py"));
        assert!(!accepts(&f, "/proj/migrations/sub/0002.py"));
        assert!(accepts(&f, "/proj/app/migrations/0001_initial.py"));
        assert!(!accepts(&f, "/proj/a/b/generated/x.py"));
    }

    #[test]
    fn open_roots_take_every_file_but_still_honour_excludes() {
        let f = PathFilter::new(&[PathBuf::from("/proj")], &[], &["*.map".into()])
            .unwrap()
            .with_open_roots(&[PathBuf::from("/proj/static"), PathBuf::from("/assets")]);
        assert!(accepts(&f, "/proj/static/site.css"));
        assert!(accepts(&f, "/proj/static/img/logo.png"));
        assert!(accepts(&f, "/assets/app.js"));
        assert!(!accepts(&f, "/proj/README.md"));
        assert!(!accepts(&f, "/proj/static/app.js.map"));
        assert!(!accepts(&f, "/proj/static/node_modules/x.js"));
        assert!(!accepts(&f, "/proj/static/.site.css.swp"));
        assert!(accepts(&f, "/proj/app.py"));
    }

    #[test]
    fn invalid_glob_is_an_error() {
        let result = PathFilter::new(&[PathBuf::from("/proj")], &["[".into()], &[]);
        assert!(result.is_err());
    }

    #[test]
    fn ignored_directories_whatever_the_globs() {
        let f = filter(&["*", "**"], &[]);
        for dir in IGNORED_DIRS {
            assert!(!accepts(&f, &format!("/proj/{dir}/x.py")), "{dir}");
            assert!(!accepts(&f, &format!("/proj/a/{dir}/b/x.py")), "{dir}");
        }
        assert!(accepts(&f, "/proj/environment/x.py"));
        assert!(accepts(&f, "/proj/my_venv/x.py"));
    }

    #[test]
    fn ignored_names_above_the_root_do_not_count() {
        let f = PathFilter::new(&[PathBuf::from("/home/u/env/proj")], &[], &[]).unwrap();
        assert!(accepts(&f, "/home/u/env/proj/app.py"));
    }

    #[test]
    fn bytecode_and_editor_files_whatever_the_globs() {
        let f = filter(&["*", "**"], &[]);
        for name in [
            "app.pyc",
            "app.pyo",
            ".app.py.swp",
            ".app.py.swo",
            ".app.py.swx",
            "app.py~",
            ".#app.py",
            "#app.py#",
            "4913",
            "app.py.tmp",
            ".app.py.kate-swp",
            "app.py___jb_tmp___",
            "app.py___jb_old___",
        ] {
            assert!(!accepts(&f, &format!("/proj/pkg/{name}")), "{name}");
        }
        for name in ["app.py", "#", "49130", "tmp", "kate-swp", "#notes"] {
            assert!(accepts(&f, &format!("/proj/pkg/{name}")), "{name}");
        }
    }

    #[test]
    fn may_contain_prunes_ignored_directories() {
        let f = filter(&[], &[]);
        assert!(f.may_contain(Path::new("/proj")));
        assert!(f.may_contain(Path::new("/proj/pkg")));
        assert!(!f.may_contain(Path::new("/proj/.venv")));
        assert!(!f.may_contain(Path::new("/proj/pkg/__pycache__")));
        assert!(!f.may_contain(Path::new("/elsewhere")));
    }
}
