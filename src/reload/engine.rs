//! `hmr_serve._core.ReloadEngine`: the Rust half of hot reload as Python sees it. Python's import
//! hook feeds the graph; the watcher reports changed files; the closure says what to re-execute.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet};

use super::content_hash::ContentHashes;
use super::delivery::{Deliver, Outbox};
use super::filter::DataFiles;
use super::graph::ImportGraph;
use super::static_imports::{ImportRef, imports_of_suite, parse_source};
use super::static_reads::{ModuleReads, NameReads, reads_of_suite};
use super::watcher::{WatchConfig, Watcher};

#[pyclass(frozen, module = "hmr_serve._core")]
pub struct ReloadEngine {
    graph: Mutex<ImportGraph>,
    hashes: ContentHashes,
    /// Hash of each file's source when it was last parsed, so a scan re-parses only edits.
    parsed: Mutex<HashMap<PathBuf, u64>>,
    /// The source each module last ran from: what an edit is compared with to decide whether
    /// patching function bodies in place is enough (python/hmr_serve/reload/cutoff.py).
    sources: Mutex<HashMap<PathBuf, Vec<u8>>>,
    /// The watcher, and the loop and fd its batches are delivered through.
    watcher: Mutex<Option<(Watcher, Py<PyAny>, RawFd)>>,
    /// Data files modules read while importing: the watcher accepts them whatever the includes.
    data_files: DataFiles,
    /// What each parsed module reads of others (name-level propagation), and the modules
    /// parsed anew since Python last asked (its converted copies are stale).
    reads: Mutex<HashMap<String, ModuleReads>>,
    reparsed: Mutex<Vec<String>>,
}

/// File times come from the kernel's coarse clock, up to a tick (10 ms at HZ=100) behind the
/// real time of the write: a margin of two ticks.
const MTIME_SLACK: f64 = 0.02;

/// Whether `path` may have been written at or after `at` (seconds since the epoch).
fn written_since(path: &std::path::Path, at: f64) -> bool {
    let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return false; // gone or unreadable: the watcher reports what happens next
    };
    modified
        .duration_since(std::time::UNIX_EPOCH)
        .is_ok_and(|mtime| mtime.as_secs_f64() >= at - MTIME_SLACK)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every module an import-time import statement names gets an entry, empty when nothing of it
/// is read: an import the reads do not mention at all then means one the static pass missed
/// (a dynamic or run-time-only import), which counts as depending on the whole module.
fn with_import_entries(mut reads: ModuleReads, imports: &[ImportRef]) -> ModuleReads {
    for import in imports.iter().filter(|import| !import.lazy) {
        reads.import_time.entry(import.module.clone()).or_default();
        for name in &import.names {
            reads
                .import_time
                .entry(format!("{}.{}", import.module, name))
                .or_default();
        }
    }
    reads
}

fn source_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

impl ReloadEngine {
    fn graph(&self) -> MutexGuard<'_, ImportGraph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sources(&self) -> MutexGuard<'_, HashMap<PathBuf, Vec<u8>>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl ReloadEngine {
    #[new]
    fn new() -> Self {
        Self {
            graph: Mutex::new(ImportGraph::default()),
            hashes: ContentHashes::default(),
            parsed: Mutex::new(HashMap::new()),
            sources: Mutex::new(HashMap::new()),
            watcher: Mutex::new(None),
            data_files: DataFiles::default(),
            reads: Mutex::new(HashMap::new()),
            reparsed: Mutex::new(Vec::new()),
        }
    }

    fn __len__(&self) -> usize {
        self.graph().len()
    }

    /// A first-party module finished importing (it started at `started_at`, seconds since the
    /// epoch). Returns true the first time.
    ///
    /// The file is read now, after it ran: when it was written since its import started, these
    /// may be newer bytes than the ones that ran, and remembering them would make the save that
    /// wrote them look like no change. Then its content counts as unknown (the next event for it
    /// reloads it, the early cutoff has nothing to compare with).
    #[pyo3(signature = (name, path, is_package, started_at = None))]
    fn add_module(
        &self,
        name: &str,
        path: PathBuf,
        is_package: bool,
        started_at: Option<f64>,
    ) -> bool {
        let added = self.graph().add_module(name, path.clone(), is_package);
        if added {
            if started_at.is_some_and(|at| written_since(&path, at)) {
                self.hashes.seed_unknown(&path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                self.hashes.seed_bytes(&path, &bytes);
                self.sources().insert(path, bytes);
            }
        }
        added
    }

    fn remove_module(&self, name: &str) {
        if lock(&self.reads).remove(name).is_some() {
            lock(&self.reparsed).push(name.to_owned());
        }
        if let Some(module) = self.graph().remove_module(name) {
            self.hashes.forget(&module.path);
            self.sources().remove(&module.path);
            self.parsed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&module.path);
        }
    }

    fn add_edge(&self, importer: &str, imported: &str) {
        self.graph().add_edge(importer, imported);
    }

    fn take_edges(&self, importer: &str) -> Vec<String> {
        self.graph().take_edges(importer)
    }

    fn set_edges(&self, importer: &str, imported: Vec<String>) {
        self.graph().set_edges(importer, imported);
    }

    fn dependencies(&self, importer: &str) -> Vec<String> {
        self.graph().dependencies(importer).into_iter().collect()
    }

    /// The exact bytes that were just executed for `path`: later saves are compared to these.
    fn record_source(&self, path: PathBuf, source: &[u8]) {
        self.hashes.seed_bytes(&path, source);
        self.sources().insert(path, source.to_vec());
    }

    /// The bytes `path` last ran from (recorded at first import or by `record_source`).
    fn recorded_source<'py>(&self, py: Python<'py>, path: PathBuf) -> Option<Bound<'py, PyBytes>> {
        self.sources()
            .get(&path)
            .map(|bytes| PyBytes::new(py, bytes))
    }

    fn module_at(&self, path: PathBuf) -> Option<String> {
        self.graph().module_at(&path).map(str::to_owned)
    }

    fn modules_under(&self, dir: PathBuf) -> Vec<String> {
        self.graph().modules_under(&dir)
    }

    fn closure(&self, changed: Vec<String>) -> Vec<String> {
        self.graph().closure(changed.iter().map(String::as_str))
    }

    /// The closure with, for each module, its dependencies inside the closure and the index of
    /// its import cycle, dependencies first (see `ImportGraph::closure_plan`).
    fn closure_plan(&self, changed: Vec<String>) -> Vec<(String, Vec<String>, usize)> {
        self.graph()
            .closure_plan(changed.iter().map(String::as_str))
    }

    /// Watches `path` from now on (whatever the includes): a module read it while importing.
    /// Returns true the first time.
    fn watch_file(&self, path: PathBuf) -> bool {
        self.data_files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path)
    }

    /// Parses every known module whose source changed since its last parse (all of them the
    /// first time) and adds their imports to the graph. Returns (files parsed, errors). With
    /// `paths` (a reload's changed files), only those and modules never parsed are read: the
    /// watcher has already told which files changed, and reading every file after each save
    /// would cost a large app tens of milliseconds.
    #[pyo3(signature = (paths = None))]
    fn scan(&self, py: Python<'_>, paths: Option<Vec<PathBuf>>) -> (usize, Vec<(String, String)>) {
        let paths: Option<HashSet<PathBuf>> = paths.map(|p| p.into_iter().collect());
        let modules: Vec<(String, PathBuf, bool)> = {
            // In the order remove_module takes them.
            let graph = self.graph();
            let parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
            graph
                .modules()
                .filter(|(_, m)| {
                    paths
                        .as_ref()
                        .is_none_or(|p| p.contains(&m.path) || !parsed.contains_key(&m.path))
                })
                .map(|(name, m)| (name.to_owned(), m.path.clone(), m.is_package))
                .collect()
        };
        py.detach(|| {
            let mut parsed = 0;
            let mut errors = Vec::new();
            let mut results = Vec::new();
            {
                let mut seen = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
                for (name, path, is_package) in modules {
                    let Ok(bytes) = std::fs::read(&path) else {
                        continue;
                    };
                    let hash = source_hash(&bytes);
                    if seen.get(&path) == Some(&hash) {
                        continue;
                    }
                    seen.insert(path.clone(), hash);
                    parsed += 1;
                    let source = String::from_utf8_lossy(&bytes);
                    match parse_source(&source) {
                        Ok(parsed) => {
                            let suite = parsed.suite();
                            let imports = imports_of_suite(suite, &name, is_package);
                            let reads = reads_of_suite(suite, &name, is_package);
                            let reads = with_import_entries(reads, &imports);
                            results.push((name, imports, Some(reads)));
                        }
                        Err(err) => errors.push((name, err)),
                    }
                }
            }
            let mut graph = self.graph();
            let mut reads = lock(&self.reads);
            let mut reparsed = lock(&self.reparsed);
            for (name, imports, module_reads) in results {
                graph.set_static_imports(&name, imports);
                match module_reads {
                    Some(module_reads) => reads.insert(name.clone(), module_reads),
                    None => reads.remove(&name),
                };
                reparsed.push(name);
            }
            (parsed, errors)
        })
    }

    /// What `name` reads of other modules, as the static pass found it: (import-time reads,
    /// call-time reads, whether its own code may run while it imports, whether it reads modules
    /// dynamically); each reads table maps a module to (names, exposed names, whole, whole
    /// exposed). None when it was not parsed (yet, or its source does not parse).
    fn reads<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let reads = lock(&self.reads);
        let Some(module_reads) = reads.get(name) else {
            return Ok(None);
        };
        let table = |entries: &std::collections::BTreeMap<String, NameReads>| {
            let dict = PyDict::new(py);
            for (module, entry) in entries {
                let names = PyFrozenSet::new(py, entry.names.iter())?;
                let exposed = PyFrozenSet::new(py, entry.exposed.iter())?;
                dict.set_item(module, (names, exposed, entry.whole, entry.whole_exposed))?;
            }
            PyResult::Ok(dict)
        };
        let tuple = (
            table(&module_reads.import_time)?,
            table(&module_reads.call_time)?,
            module_reads.own_code_runs,
            module_reads.dynamic,
        );
        Ok(Some(tuple.into_pyobject(py)?.into_any()))
    }

    /// The modules whose reads are known.
    fn parsed_modules(&self) -> Vec<String> {
        lock(&self.reads).keys().cloned().collect()
    }

    /// Modules whose reads changed (parsed anew, or gone) since the last call.
    fn take_reparsed(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.reparsed))
    }

    /// Import-time edges the static pass found that the run-time record lacks.
    fn static_only_edges(&self) -> Vec<(String, String)> {
        self.graph().static_only_edges()
    }

    /// Starts watching. Each batch of real changes is delivered on `event_loop` as
    /// `callback([(path, "modified" | "deleted"), ...])`. Every file under `open_roots` counts,
    /// whatever the includes.
    #[pyo3(signature = (roots, includes, excludes, event_loop, callback, quiet_ms = 5, max_wait_ms = 50, open_roots = Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn watch(
        &self,
        py: Python<'_>,
        roots: Vec<PathBuf>,
        includes: Vec<String>,
        excludes: Vec<String>,
        event_loop: Py<PyAny>,
        callback: Py<PyAny>,
        quiet_ms: u64,
        max_wait_ms: u64,
        open_roots: Vec<PathBuf>,
    ) -> PyResult<()> {
        let config = WatchConfig {
            roots,
            open_roots,
            includes,
            excludes,
            quiet: Duration::from_millis(quiet_ms),
            max_wait: Duration::from_millis(max_wait_ms),
            data_files: self.data_files.clone(),
        };
        let outbox = Outbox::new().map_err(|e| PyOSError::new_err(e.to_string()))?;
        let sender = outbox.clone();
        let on_batch = Box::new(move |changes| sender.send(changes));
        let watcher =
            Watcher::start(config, self.hashes.clone(), on_batch).map_err(PyOSError::new_err)?;
        let fd = outbox.fd();
        let deliver = Py::new(py, Deliver::new(outbox, callback))?;
        event_loop.call_method1(py, "add_reader", (fd, deliver))?;
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some((watcher, event_loop, fd));
        Ok(())
    }

    fn stop(&self, py: Python<'_>) {
        let watching = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((watcher, event_loop, fd)) = watching {
            py.detach(move || drop(watcher));
            // A closed loop has let go of its readers already.
            let _ = event_loop.call_method1(py, "remove_reader", (fd,));
        }
    }
}
