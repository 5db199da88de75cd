//! The import map of a whole source tree, for `hmr-serve graph`: every `.py` file under some
//! roots, named as `import` would name it from its source root, parsed with the static pass
//! (`static_imports`) and its imports resolved to files the way the reload graph resolves them
//! (`graph.rs`: the module named, plus `module.name` for each `from module import name` that is
//! a module itself). Walking, reading and parsing run on every core, without the GIL: a tree of
//! thousands of files is mapped in well under a second.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rayon::prelude::*;

use super::filter::PathFilter;
use super::static_imports::{ImportRef, parse_imports};

/// One file's import of another: indices into `ProjectMap.files`, and the names the importer
/// takes from the imported module (`from m import a, b`; empty for a whole-module import).
type Edge = (usize, usize, bool, Vec<String>);

#[pyclass(frozen, get_all, module = "hmr_serve._core")]
pub struct ProjectMap {
    /// Every mapped file, absolute, sorted.
    pub files: Vec<String>,
    /// Each file's dotted module name; "" when it has none (outside every source root, or a
    /// path part that is not an identifier, such as `my-scripts/`).
    pub modules: Vec<String>,
    /// Whether each file is a package's `__init__.py`.
    pub packages: Vec<bool>,
    /// (importer, imported, lazy, names). Lazy: every import statement behind the edge runs
    /// only when a function is called (`static_imports::ImportRef::lazy`).
    pub edges: Vec<Edge>,
    /// (file index, message) for each file that could not be read or parsed: its own imports
    /// are unknown (others' imports of it still count).
    pub errors: Vec<(usize, String)>,
}

/// Maps every `.py` file under `roots` (absolute directories). Module names are relative to
/// the innermost of `source_roots` (absolute, in `sys.path` order) holding the file. `excludes`
/// are globs as for `--reload-exclude`; the directories the watcher ignores (virtualenvs,
/// `site-packages`, `node_modules`, VCS and cache directories) and any directory holding a
/// `pyvenv.cfg` are skipped.
#[pyfunction]
#[pyo3(signature = (roots, source_roots, excludes = Vec::new()))]
pub fn project_map(
    py: Python<'_>,
    roots: Vec<PathBuf>,
    source_roots: Vec<PathBuf>,
    excludes: Vec<String>,
) -> PyResult<ProjectMap> {
    let filter = PathFilter::new(&roots, &[], &excludes)
        .map_err(|err| PyValueError::new_err(format!("bad exclude glob: {err}")))?;
    Ok(py.detach(|| build(&filter, &roots, &source_roots)))
}

fn build(filter: &PathFilter, roots: &[PathBuf], source_roots: &[PathBuf]) -> ProjectMap {
    let mut paths: Vec<PathBuf> = roots
        .par_iter()
        .flat_map(|root| walk(filter, root))
        .collect();
    // Nested roots would list a file twice.
    paths.sort();
    paths.dedup();
    let named: Vec<(String, bool)> = paths
        .iter()
        .map(|path| module_of(path, source_roots))
        .collect();
    let by_name = index_by_name(&paths, &named, source_roots);
    let parsed: Vec<Result<Vec<ImportRef>, String>> = paths
        .par_iter()
        .zip(&named)
        .map(|(path, (module, is_package))| {
            let bytes = std::fs::read(path).map_err(|err| err.to_string())?;
            parse_imports(&String::from_utf8_lossy(&bytes), module, *is_package)
        })
        .collect();
    let mut edges = Vec::new();
    let mut errors = Vec::new();
    for (importer, result) in parsed.into_iter().enumerate() {
        match result {
            Ok(imports) => edges.extend(resolve(importer, &imports, &by_name)),
            Err(message) => errors.push((importer, message)),
        }
    }
    let (modules, packages) = named.into_iter().unzip();
    ProjectMap {
        files: paths
            .iter()
            .map(|path| path.to_string_lossy().into_owned())
            .collect(),
        modules,
        packages,
        edges,
        errors,
    }
}

/// The `.py` files under `dir`, each subdirectory walked on its own rayon task. Symlinked
/// directories are not entered (they can form cycles), as in the watcher's walk.
fn walk(filter: &PathFilter, dir: &Path) -> Vec<PathBuf> {
    // A virtualenv under any name (the filter knows only the usual ones by name).
    if !filter.may_contain(dir) || dir.join("pyvenv.cfg").exists() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => subdirs.push(path),
            Ok(kind) if filter.accepts(&path) && (kind.is_file() || path.is_file()) => {
                files.push(path)
            }
            _ => {}
        }
    }
    let nested: Vec<PathBuf> = subdirs
        .par_iter()
        .flat_map(|subdir| walk(filter, subdir))
        .collect();
    files.extend(nested);
    files
}

/// The dotted name `import` reaches `path` by from the innermost source root holding it, and
/// whether it is a package (`__init__.py`).
fn module_of(path: &Path, source_roots: &[PathBuf]) -> (String, bool) {
    let is_package = path.file_name().is_some_and(|name| name == "__init__.py");
    let innermost = source_roots
        .iter()
        .filter(|root| path.starts_with(root))
        .max_by_key(|root| root.components().count());
    let name = innermost
        .and_then(|root| path.strip_prefix(root).ok())
        .and_then(dotted_name)
        .unwrap_or_default();
    (name, is_package)
}

fn dotted_name(relative: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in relative.components() {
        let Component::Normal(part) = component else {
            return None;
        };
        parts.push(part.to_str()?);
    }
    let stem = parts.pop()?.strip_suffix(".py")?;
    if stem != "__init__" {
        parts.push(stem);
    }
    parts
        .iter()
        .all(|part| is_identifier(part))
        .then(|| parts.join("."))
}

fn is_identifier(part: &str) -> bool {
    let mut chars = part.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Module name → file. Where two files claim one name, the one Python finds wins: the earlier
/// source root (`sys.path` order), and in one directory the package (`pkg/__init__.py`) over
/// the plain module (`pkg.py`).
fn index_by_name(
    paths: &[PathBuf],
    named: &[(String, bool)],
    source_roots: &[PathBuf],
) -> HashMap<String, usize> {
    let rank = |index: usize| {
        let root = source_roots
            .iter()
            .enumerate()
            .filter(|(_, root)| paths[index].starts_with(root))
            .max_by_key(|(_, root)| root.components().count())
            .map_or(usize::MAX, |(position, _)| position);
        (root, !named[index].1)
    };
    let mut by_name: HashMap<String, usize> = HashMap::with_capacity(paths.len());
    for (index, (name, _)) in named.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        by_name
            .entry(name.clone())
            .and_modify(|held| {
                if rank(index) < rank(*held) {
                    *held = index;
                }
            })
            .or_insert(index);
    }
    by_name
}

/// The importer's edges: for each import, the module it names and each `from` name that is a
/// module itself, if mapped. An edge is lazy when every import behind it is; its names are
/// those of the imports that decide that.
fn resolve(importer: usize, imports: &[ImportRef], by_name: &HashMap<String, usize>) -> Vec<Edge> {
    // imported → (names from eager imports, names from lazy ones, any eager import)
    let mut found: Vec<(usize, Vec<String>, Vec<String>, bool)> = Vec::new();
    let mut add = |imported: usize, lazy: bool, names: &[String]| {
        if imported == importer {
            return;
        }
        let at = match found.iter().position(|entry| entry.0 == imported) {
            Some(at) => at,
            None => {
                found.push((imported, Vec::new(), Vec::new(), false));
                found.len() - 1
            }
        };
        let entry = &mut found[at];
        entry.3 |= !lazy;
        let list = if lazy { &mut entry.2 } else { &mut entry.1 };
        for name in names {
            if !list.contains(name) {
                list.push(name.clone());
            }
        }
    };
    for import in imports {
        if let Some(&imported) = by_name.get(&import.module) {
            add(imported, import.lazy, &import.names);
        }
        for name in &import.names {
            if let Some(&imported) = by_name.get(&format!("{}.{name}", import.module)) {
                add(imported, import.lazy, &[]);
            }
        }
    }
    found
        .into_iter()
        .map(|(imported, eager_names, lazy_names, eager)| {
            let names = if eager { eager_names } else { lazy_names };
            (importer, imported, !eager, names)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, source) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, source).unwrap();
        }
        dir
    }

    fn map(root: &Path, source_roots: &[&str], excludes: &[&str]) -> ProjectMap {
        let filter = PathFilter::new(
            &[root.to_owned()],
            &[],
            &excludes.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let roots: Vec<PathBuf> = source_roots.iter().map(|r| root.join(r)).collect();
        build(&filter, &[root.to_owned()], &roots)
    }

    /// (importer, imported, lazy, names) with paths relative to `root`, sorted.
    fn edges(map: &ProjectMap, root: &Path) -> Vec<(String, String, bool, Vec<String>)> {
        let rel = |i: usize| {
            Path::new(&map.files[i])
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        let mut out: Vec<_> = map
            .edges
            .iter()
            .map(|(a, b, lazy, names)| (rel(*a), rel(*b), *lazy, names.clone()))
            .collect();
        out.sort();
        out
    }

    fn e(a: &str, b: &str, lazy: bool, names: &[&str]) -> (String, String, bool, Vec<String>) {
        (
            a.into(),
            b.into(),
            lazy,
            names.iter().map(|n| n.to_string()).collect(),
        )
    }

    #[test]
    fn names_files_and_resolves_imports_like_the_reload_graph() {
        let dir = tree(&[
            ("pkg/__init__.py", "from .a import A\n"),
            (
                "pkg/a.py",
                "import os\nfrom pkg import b\nimport pkg.sub.d\nfrom .sub import e as ee\n\
                 def f():\n    from pkg import lazy\n",
            ),
            ("pkg/b.py", ""),
            ("pkg/lazy.py", ""),
            ("pkg/sub/__init__.py", ""),
            ("pkg/sub/d.py", "from .. import a, b\n"),
            ("pkg/sub/e.py", "from ..a import *\n"),
            ("ns/inner/m.py", "import pkg.a\n"),
            (
                "top.py",
                "import ns.inner.m\nimport importlib\nimportlib.import_module('pkg.b')\n",
            ),
        ]);
        let root = dir.path();
        let m = map(root, &["."], &[]);
        let module = |rel: &str| {
            let i = m
                .files
                .iter()
                .position(|f| f.ends_with(rel))
                .unwrap_or_else(|| panic!("{rel} not mapped"));
            (m.modules[i].as_str(), m.packages[i])
        };
        assert_eq!(module("pkg/__init__.py"), ("pkg", true));
        assert_eq!(module("pkg/sub/d.py"), ("pkg.sub.d", false));
        assert_eq!(module("ns/inner/m.py"), ("ns.inner.m", false));
        assert_eq!(module("top.py"), ("top", false));
        assert_eq!(
            edges(&m, root),
            vec![
                e("ns/inner/m.py", "pkg/a.py", false, &[]),
                e("pkg/__init__.py", "pkg/a.py", false, &["A"]),
                e("pkg/a.py", "pkg/__init__.py", false, &["b"]),
                e("pkg/a.py", "pkg/b.py", false, &[]),
                e("pkg/a.py", "pkg/lazy.py", true, &[]),
                e("pkg/a.py", "pkg/sub/__init__.py", false, &["e"]),
                e("pkg/a.py", "pkg/sub/d.py", false, &[]),
                e("pkg/a.py", "pkg/sub/e.py", false, &[]),
                e("pkg/sub/d.py", "pkg/__init__.py", false, &["a", "b"]),
                e("pkg/sub/d.py", "pkg/a.py", false, &[]),
                e("pkg/sub/d.py", "pkg/b.py", false, &[]),
                e("pkg/sub/e.py", "pkg/a.py", false, &[]),
                e("top.py", "ns/inner/m.py", false, &[]),
                e("top.py", "pkg/b.py", false, &[]),
            ]
        );
        assert!(m.errors.is_empty());
    }

    #[test]
    fn eager_import_wins_over_lazy_and_self_imports_are_dropped() {
        let dir = tree(&[
            ("pkg/__init__.py", "from pkg import x\n"),
            (
                "pkg/x.py",
                "def f():\n    from pkg import y\nfrom pkg import z\n",
            ),
        ]);
        let m = map(dir.path(), &["."], &[]);
        assert_eq!(
            edges(&m, dir.path()),
            vec![
                e("pkg/__init__.py", "pkg/x.py", false, &[]),
                e("pkg/x.py", "pkg/__init__.py", false, &["z"]),
            ]
        );
    }

    #[test]
    fn innermost_source_root_names_the_file_and_the_package_wins_over_a_module() {
        let dir = tree(&[
            ("src/app/__init__.py", ""),
            ("src/app/core.py", ""),
            ("src/app/core/__init__.py", ""),
            ("tests/test_core.py", "from app import core\n"),
            ("my-scripts/run.py", "import app\n"),
        ]);
        let root = dir.path();
        let m = map(root, &[".", "src"], &[]);
        let name = |rel: &str| {
            let i = m.files.iter().position(|f| f.ends_with(rel)).unwrap();
            m.modules[i].clone()
        };
        assert_eq!(name("src/app/core.py"), "app.core");
        assert_eq!(name("tests/test_core.py"), "tests.test_core");
        assert_eq!(name("my-scripts/run.py"), "");
        assert_eq!(
            edges(&m, root),
            vec![
                e("my-scripts/run.py", "src/app/__init__.py", false, &[]),
                e(
                    "tests/test_core.py",
                    "src/app/__init__.py",
                    false,
                    &["core"]
                ),
                e("tests/test_core.py", "src/app/core/__init__.py", false, &[]),
            ]
        );
    }

    #[test]
    fn skips_ignored_dirs_virtualenvs_and_excludes_and_reports_parse_errors() {
        let dir = tree(&[
            ("app.py", "import lib\nimport broken\n"),
            ("lib.py", ""),
            ("broken.py", "def f(:\n"),
            ("build/gen.py", ""),
            ("node_modules/x.py", ""),
            (".venv/lib/site.py", ""),
            ("myenv/pyvenv.cfg", ""),
            ("myenv/lib/mod.py", ""),
            ("__pycache__/c.py", ""),
        ]);
        let root = dir.path();
        let m = map(root, &["."], &["build/**"]);
        let mut names: Vec<&str> = m.modules.iter().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["app", "broken", "lib"]);
        let broken = m
            .files
            .iter()
            .position(|f| f.ends_with("broken.py"))
            .unwrap();
        assert_eq!(m.errors.len(), 1);
        assert_eq!(m.errors[0].0, broken);
        assert!(m.errors[0].1.starts_with("line 1"), "{}", m.errors[0].1);
        assert_eq!(
            edges(&m, root),
            vec![
                e("app.py", "broken.py", false, &[]),
                e("app.py", "lib.py", false, &[])
            ]
        );
    }
}
