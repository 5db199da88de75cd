//! The file watcher: turns raw notify events into batches of real changes to source files.
//!
//! Editors save in many ways (in place, temp file then rename, delete then create) and tools like
//! `git checkout` rewrite whole trees, so events are never trusted as changes: they only name
//! candidate paths, which are debounced and then confirmed by comparing content hashes.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use super::content_hash::{Change, ContentHashes};
use super::debounce::Debouncer;
use super::filter::{DataFiles, PathFilter};
use crate::log::{self, Level};

pub struct WatchConfig {
    pub roots: Vec<PathBuf>,
    /// Watched too, every file accepted whatever the includes (`--static` directories).
    pub open_roots: Vec<PathBuf>,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    pub quiet: Duration,
    pub max_wait: Duration,
    /// Files modules read while importing, watched whatever the includes.
    pub data_files: DataFiles,
}

pub type OnBatch = Box<dyn Fn(Vec<Change>) + Send + 'static>;

/// Whether the platform says when a writer closed a file (inotify's IN_CLOSE_WRITE), which tells
/// a complete save from a half-written file. FSEvents (macOS) and kqueue do not; there, and on
/// Linux with the `portable` feature, every event waits out the quiet window (see debounce.rs).
const CLOSE_WRITE_EVENTS: bool = cfg!(all(target_os = "linux", not(feature = "portable")));

enum Message {
    Notify(notify::Result<Event>),
    Stop,
}

/// Dropping it stops watching and joins the thread.
pub struct Watcher {
    notify: Option<RecommendedWatcher>,
    stop: Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Watches every root recursively on one thread, which calls `on_batch` with each non-empty
    /// batch of real changes, deduplicated.
    pub fn start(
        config: WatchConfig,
        hashes: ContentHashes,
        on_batch: OnBatch,
    ) -> Result<Watcher, String> {
        let mut roots = Vec::with_capacity(config.roots.len() + config.open_roots.len());
        let mut open_roots = Vec::with_capacity(config.open_roots.len());
        for (open, root) in (config.roots.iter().map(|r| (false, r)))
            .chain(config.open_roots.iter().map(|r| (true, r)))
        {
            if !root.is_dir() {
                return Err(format!(
                    "cannot watch {}: not an existing directory",
                    root.display()
                ));
            }
            // Canonical because module paths are (the import tracker records real paths), and
            // the watcher must report paths under the same spelling: inotify reports them under
            // the spelling it was given, FSEvents under the real one (on macOS /tmp and /var
            // are links to /private/...), which notify then matches against the canonical root.
            let root = std::fs::canonicalize(root)
                .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
            if open {
                open_roots.push(root.clone());
            }
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        let filter = PathFilter::new(&roots, &config.includes, &config.excludes)
            .map_err(|e| format!("invalid watch glob: {e}"))?
            .with_open_roots(&open_roots)
            .with_data_files(config.data_files.clone());

        let (tx, rx) = mpsc::channel();
        let notify_tx = tx.clone();
        let mut notify = notify::recommended_watcher(move |event: notify::Result<Event>| {
            // Fails only once the watching thread is gone, when events no longer matter.
            let _ = notify_tx.send(Message::Notify(event));
        })
        .map_err(|e| format!("cannot start the file watcher: {e}"))?;
        for root in outermost(&roots) {
            notify
                .watch(root, RecursiveMode::Recursive)
                .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
        }

        let debouncer = Debouncer::new(config.quiet, config.max_wait);
        let state = Loop {
            roots,
            filter,
            hashes,
            debouncer,
            on_batch,
        };
        let thread = std::thread::Builder::new()
            .name("hmr-watcher".into())
            .spawn(move || state.run(rx))
            .map_err(|e| format!("cannot start the file watcher thread: {e}"))?;
        Ok(Watcher {
            notify: Some(notify),
            stop: tx,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // notify's own thread cannot be joined: dropping its watcher asks it to stop, and any
        // event it still sends queues behind Stop, where it is never read.
        drop(self.notify.take());
        let _ = self.stop.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            // Joining itself would deadlock if `on_batch` drops the watcher; the thread then
            // ends on its own after the callback returns, having received Stop.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// Nested roots would be watched twice; the outer watch already covers the inner one.
fn outermost(roots: &[PathBuf]) -> impl Iterator<Item = &PathBuf> {
    roots
        .iter()
        .enumerate()
        .filter(|&(i, root)| {
            !roots
                .iter()
                .enumerate()
                .any(|(j, other)| root.starts_with(other) && (root != other || j < i))
        })
        .map(|(_, root)| root)
}

struct Loop {
    roots: Vec<PathBuf>,
    filter: PathFilter,
    hashes: ContentHashes,
    debouncer: Debouncer,
    on_batch: OnBatch,
}

impl Loop {
    fn run(mut self, rx: Receiver<Message>) {
        loop {
            let message = match self.debouncer.deadline() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(deadline) => {
                    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                }
            };
            match message {
                Ok(Message::Notify(Ok(event))) => self.on_event(event),
                Ok(Message::Notify(Err(error))) => {
                    log::write(Level::Warning, &format!("file watcher: {error}"));
                }
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some(batch) = self.debouncer.poll(Instant::now()) {
                self.flush(batch);
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let now = Instant::now();
        if event.need_rescan() {
            // The kernel dropped events: any file may have changed, so re-check everything.
            log::write(
                Level::Warning,
                "file watcher: event queue overflowed, rescanning",
            );
            for root in &self.roots {
                self.debouncer.push(root.clone(), now);
            }
            return;
        }
        // Reads (including this watcher's own hash checks) change nothing; reacting to them
        // would loop. Nor do metadata changes (a touch): reacting to one would read the file
        // while a writer may be about to truncate it, and remember that half-written state.
        let close_write = event.kind == EventKind::Access(AccessKind::Close(AccessMode::Write));
        match event.kind {
            EventKind::Access(_) if !(close_write && CLOSE_WRITE_EVENTS) => return,
            EventKind::Modify(ModifyKind::Metadata(_)) => return,
            _ => {}
        }
        // All paths, so that a rename reports both its source (a file gone, or a temp file the
        // filter drops) and its destination (the file an editor's safe-write replaced).
        let last = event.paths.len().saturating_sub(1);
        for (index, path) in event.paths.into_iter().enumerate() {
            if !self.is_candidate(&path) {
                continue;
            }
            if !CLOSE_WRITE_EVENTS {
                self.debouncer.push(path, now);
                continue;
            }
            match event.kind {
                EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                    self.debouncer.written(path, now);
                }
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                    self.debouncer.closed(path, now);
                }
                // The destination of a rename is a complete file: editors' safe-writes put it
                // there in one step.
                EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                    self.debouncer.finished(path, now);
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if index == last => {
                    self.debouncer.finished(path, now);
                }
                _ => self.debouncer.push(path, now),
            }
        }
    }

    /// Cheap triage at event time, so that busy unrelated files (logs, databases) never wake a
    /// batch; the expensive part (walking, hashing) waits for the debounced batch.
    fn is_candidate(&self, path: &Path) -> bool {
        if self.filter.accepts(path) {
            return true;
        }
        // A directory created or moved in holds files that produced no events of their own.
        if path.is_dir() {
            return self.filter.may_contain(path);
        }
        // A directory removed or moved away took its remembered files with it.
        !path.exists() && !self.hashes.known_under(path).is_empty()
    }

    fn flush(&self, batch: Vec<PathBuf>) {
        let mut seen = HashSet::new();
        let mut candidates = Vec::new();
        let mut add = |path: PathBuf| {
            if seen.insert(path.clone()) {
                candidates.push(path);
            }
        };
        for path in batch {
            // Re-examined now: between the event and the batch, a directory may have appeared or
            // vanished, and the hash check below settles what actually happened.
            if path.is_dir() {
                walk(&self.filter, &path, &mut add);
            } else if self.filter.accepts(&path) {
                add(path.clone());
            }
            for known in self.hashes.known_under(&path) {
                add(known);
            }
        }
        let changes: Vec<Change> = candidates
            .into_iter()
            .filter_map(|path| {
                let kind = self.hashes.check(&path)?;
                Some(Change { path, kind })
            })
            .collect();
        if changes.is_empty() {
            return;
        }
        // A panicking callback must not end watching for the rest of the session.
        if catch_unwind(AssertUnwindSafe(|| (self.on_batch)(changes))).is_err() {
            log::write(Level::Error, "file watcher: reload callback panicked");
        }
    }
}

/// Accepted files under `dir`. Symlinked directories are not entered, since they can form
/// cycles; later edits inside them still arrive as events, because notify follows the link.
fn walk(filter: &PathFilter, dir: &Path, add: &mut impl FnMut(PathBuf)) {
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        if !filter.may_contain(&dir) {
            continue;
        }
        // Unreadable or vanished directories are skipped: the next event will tell.
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        // Sorted so that batches list files in a stable order.
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(path),
                Ok(_) if filter.accepts(&path) => add(path),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::content_hash::ChangeKind;
    use std::fs;

    const ARRIVES: Duration = Duration::from_secs(5);
    const NOTHING: Duration = Duration::from_millis(300);

    /// Field order is drop order: the watcher stops before the directory is removed.
    struct Harness {
        _watcher: Watcher,
        batches: Receiver<Vec<Change>>,
        hashes: ContentHashes,
        root: PathBuf,
        dir: tempfile::TempDir,
    }

    impl Harness {
        /// `files` exist and are seeded before watching starts, like modules already loaded.
        fn new(files: &[(&str, &str)]) -> Self {
            Self::with_globs(files, vec![], vec![])
        }

        fn with_globs(
            files: &[(&str, &str)],
            includes: Vec<String>,
            excludes: Vec<String>,
        ) -> Self {
            let dir = tempfile::tempdir().unwrap();
            // Batches name real paths (the temporary directory is under a link on macOS).
            let root = fs::canonicalize(dir.path()).unwrap();
            let hashes = ContentHashes::default();
            for (name, content) in files {
                let path = root.join(name);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, content).unwrap();
                hashes.seed(&path).unwrap();
            }
            let (tx, batches) = mpsc::channel();
            let config = WatchConfig {
                roots: vec![root.clone()],
                open_roots: vec![],
                includes,
                excludes,
                quiet: Duration::from_millis(5),
                max_wait: Duration::from_millis(50),
                data_files: DataFiles::default(),
            };
            let watcher = Watcher::start(
                config,
                hashes.clone(),
                Box::new(move |batch| {
                    let _ = tx.send(batch);
                }),
            )
            .unwrap();
            Self {
                root,
                dir,
                hashes,
                batches,
                _watcher: watcher,
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.root.join(name)
        }

        fn next(&self) -> Vec<Change> {
            self.batches
                .recv_timeout(ARRIVES)
                .expect("no batch within 5 s")
        }

        fn assert_quiet(&self) {
            if let Ok(batch) = self.batches.recv_timeout(NOTHING) {
                panic!("unexpected batch: {batch:?}");
            }
        }
    }

    fn modified(path: PathBuf) -> Change {
        Change {
            path,
            kind: ChangeKind::Modified,
        }
    }

    fn deleted(path: PathBuf) -> Change {
        Change {
            path,
            kind: ChangeKind::Deleted,
        }
    }

    #[test]
    fn missing_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = WatchConfig {
            roots: vec![dir.path().join("missing")],
            open_roots: vec![],
            includes: vec![],
            excludes: vec![],
            quiet: Duration::from_millis(5),
            max_wait: Duration::from_millis(50),
            data_files: DataFiles::default(),
        };
        let error = Watcher::start(config, ContentHashes::default(), Box::new(|_| {}))
            .err()
            .unwrap();
        assert!(error.contains("missing"), "{error}");
        assert!(error.contains("not an existing directory"), "{error}");
    }

    #[test]
    fn invalid_glob_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = WatchConfig {
            roots: vec![dir.path().to_path_buf()],
            open_roots: vec![],
            includes: vec!["[".into()],
            excludes: vec![],
            quiet: Duration::from_millis(5),
            max_wait: Duration::from_millis(50),
            data_files: DataFiles::default(),
        };
        let error = Watcher::start(config, ContentHashes::default(), Box::new(|_| {}))
            .err()
            .unwrap();
        assert!(error.contains("glob"), "{error}");
    }

    #[test]
    fn write_in_place() {
        let h = Harness::new(&[("app.py", "x = 1\n")]);
        fs::write(h.path("app.py"), "x = 2\n").unwrap();
        assert_eq!(h.next(), vec![modified(h.path("app.py"))]);
        h.assert_quiet();
    }

    #[test]
    fn a_root_named_through_a_link_reports_real_paths() {
        let dir = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(dir.path()).unwrap().join("real");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("app.py"), "x = 1\n").unwrap();
        let hashes = ContentHashes::default();
        hashes.seed(&real.join("app.py")).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (tx, batches) = mpsc::channel();
        let config = WatchConfig {
            roots: vec![link.clone()],
            open_roots: vec![],
            includes: vec![],
            excludes: vec![],
            quiet: Duration::from_millis(5),
            max_wait: Duration::from_millis(50),
            data_files: DataFiles::default(),
        };
        let on_batch = Box::new(move |batch| {
            let _ = tx.send(batch);
        });
        let _watcher = Watcher::start(config, hashes, on_batch).unwrap();
        fs::write(link.join("app.py"), "x = 2\n").unwrap();
        // The spelling the import tracker records for the module, so the reload finds it.
        let batch = batches.recv_timeout(ARRIVES).expect("no batch within 5 s");
        assert_eq!(batch, vec![modified(real.join("app.py"))]);
    }

    #[test]
    fn temp_file_then_rename() {
        let h = Harness::new(&[("app.py", "x = 1\n")]);
        let temp = h.path("app.py___jb_tmp___");
        fs::write(&temp, "x = 2\n").unwrap();
        fs::rename(&temp, h.path("app.py")).unwrap();
        assert_eq!(h.next(), vec![modified(h.path("app.py"))]);
        h.assert_quiet();
    }

    #[test]
    fn delete_then_create() {
        let h = Harness::new(&[("app.py", "x = 1\n")]);
        fs::remove_file(h.path("app.py")).unwrap();
        fs::write(h.path("app.py"), "x = 2\n").unwrap();
        // Usually one batch; if the deletion landed in its own batch, the recreation follows.
        let mut batch = h.next();
        if batch == vec![deleted(h.path("app.py"))] {
            batch = h.next();
        }
        assert_eq!(batch, vec![modified(h.path("app.py"))]);
        h.assert_quiet();
    }

    #[test]
    fn burst_of_writes_ends_modified() {
        let h = Harness::new(&[("app.py", "x = 0\n")]);
        for i in 1..=20 {
            fs::write(h.path("app.py"), format!("x = {i}\n")).unwrap();
        }
        // Each batch holds the file at most once, and after the last one the memory holds the
        // final content, whatever the scheduler did to the batching.
        let mut batch = h.next();
        loop {
            assert_eq!(batch, vec![modified(h.path("app.py"))]);
            match h.batches.recv_timeout(NOTHING) {
                Ok(next) => batch = next,
                Err(_) => break,
            }
        }
        assert_eq!(h.hashes.check(&h.path("app.py")), None);
        assert_eq!(fs::read_to_string(h.path("app.py")).unwrap(), "x = 20\n");
    }

    #[test]
    fn touch_with_same_content_is_no_batch() {
        let h = Harness::new(&[("app.py", "x = 1\n")]);
        fs::OpenOptions::new()
            .append(true)
            .open(h.path("app.py"))
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
        fs::write(h.path("app.py"), "x = 1\n").unwrap();
        h.assert_quiet();
    }

    #[test]
    fn ignored_files_are_no_batch() {
        let h = Harness::new(&[("app.py", "x = 1\n")]);
        fs::create_dir(h.path("__pycache__")).unwrap();
        fs::write(h.path("__pycache__/app.cpython-313.pyc"), "bytecode").unwrap();
        fs::write(h.path("notes.txt"), "hello").unwrap();
        fs::write(h.path(".app.py.swp"), "swap").unwrap();
        h.assert_quiet();
    }

    #[test]
    fn new_directory_with_a_python_file() {
        let h = Harness::new(&[("app.py", "x = 1\n")]);
        // Built elsewhere and moved in, so the files produce no events of their own.
        let staging = tempfile::tempdir().unwrap();
        fs::create_dir_all(staging.path().join("pkg/sub")).unwrap();
        fs::write(staging.path().join("pkg/__init__.py"), "").unwrap();
        fs::write(staging.path().join("pkg/sub/mod.py"), "y = 1\n").unwrap();
        fs::write(staging.path().join("pkg/data.json"), "{}").unwrap();
        fs::rename(staging.path().join("pkg"), h.path("pkg")).unwrap();
        assert_eq!(
            h.next(),
            vec![
                modified(h.path("pkg/__init__.py")),
                modified(h.path("pkg/sub/mod.py"))
            ]
        );
        h.assert_quiet();
    }

    #[test]
    fn directory_created_in_place() {
        let h = Harness::new(&[]);
        fs::create_dir_all(h.path("pkg/sub")).unwrap();
        fs::write(h.path("pkg/sub/mod.py"), "y = 1\n").unwrap();
        assert_eq!(h.next(), vec![modified(h.path("pkg/sub/mod.py"))]);
        h.assert_quiet();
    }

    #[test]
    fn removed_directory_deletes_its_known_files() {
        let h = Harness::new(&[
            ("app.py", "x = 1\n"),
            ("pkg/__init__.py", ""),
            ("pkg/sub/mod.py", "y = 1\n"),
        ]);
        fs::remove_dir_all(h.path("pkg")).unwrap();
        let mut changes = Vec::new();
        while changes.len() < 2 {
            changes.extend(h.next());
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            changes,
            vec![
                deleted(h.path("pkg/__init__.py")),
                deleted(h.path("pkg/sub/mod.py"))
            ]
        );
        h.assert_quiet();
    }

    #[test]
    fn directory_moved_away_deletes_its_known_files() {
        let h = Harness::new(&[("pkg/__init__.py", ""), ("pkg/mod.py", "y = 1\n")]);
        let elsewhere = tempfile::tempdir().unwrap();
        fs::rename(h.path("pkg"), elsewhere.path().join("pkg")).unwrap();
        let mut changes = h.next();
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            changes,
            vec![
                deleted(h.path("pkg/__init__.py")),
                deleted(h.path("pkg/mod.py"))
            ]
        );
        h.assert_quiet();
    }

    #[test]
    fn include_and_exclude_globs_apply() {
        let h = Harness::with_globs(
            &[],
            vec!["*.py".into(), "templates/**/*.html".into()],
            vec!["test_*.py".into()],
        );
        fs::create_dir_all(h.path("templates/a")).unwrap();
        fs::write(h.path("test_app.py"), "").unwrap();
        fs::write(h.path("templates/a/page.html"), "<p>").unwrap();
        assert_eq!(h.next(), vec![modified(h.path("templates/a/page.html"))]);
        h.assert_quiet();
    }

    #[test]
    fn drop_stops_cleanly() {
        let h = Harness::new(&[("app.py", "x = 1\n")]);
        let path = h.path("app.py");
        let Harness {
            dir,
            batches,
            _watcher,
            ..
        } = h;
        drop(_watcher);
        fs::write(&path, "x = 2\n").unwrap();
        // The callback (holding the sender) was dropped with the joined thread.
        assert_eq!(
            batches.recv_timeout(NOTHING),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
        drop(dir);
    }

    #[test]
    fn watcher_can_live_in_a_pyclass() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Watcher>();
        send_sync::<ContentHashes>();
    }

    #[test]
    fn nested_roots_are_watched_once() {
        let roots = [
            PathBuf::from("/p/lib"),
            PathBuf::from("/p"),
            PathBuf::from("/q"),
            PathBuf::from("/p"),
        ];
        let kept: Vec<_> = outermost(&roots).collect();
        assert_eq!(kept, vec![&PathBuf::from("/p"), &PathBuf::from("/q")]);
    }
}
