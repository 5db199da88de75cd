//! Batching of file events: one save is often several events (truncate, write, close, rename),
//! and a `git checkout` touches many files at once; each burst should cost one reload.
//!
//! A file that is being written (a data change with no close-after-write yet) holds its batch
//! back until the writer closes it: a save that truncates and then writes shows an empty or
//! half-written file in between, and on a busy machine that gap outlasts any quiet window.
//!
//! A batch whose latest event finished a file (its writer closed it, or a rename put it in
//! place) and that has no file still being written is complete as far as anyone can tell: it
//! waits only a short settle window for the next file of a burst (a `git checkout` writes its
//! files back to back), not the full quiet window. That is kept for events that may announce
//! more to come: a create, a deletion or a rename away (an editor's backup-then-write save
//! starts by moving the file aside).
//!
//! Where the platform does not report a writer closing a file (FSEvents on macOS, kqueue; on
//! Linux the `portable` feature: see watcher.rs), every event is a `push`, and a batch goes once
//! the quiet window has passed without events.
//!
//! Time is passed in rather than read, so the state machine is tested without sleeping.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Debouncer {
    quiet: Duration,
    settle: Duration,
    max_wait: Duration,
    paths: Vec<PathBuf>,
    seen: HashSet<PathBuf>,
    /// Paths written to and not closed since.
    open: HashSet<PathBuf>,
    /// When a writer last closed a file it held the batch for: max_wait counts from there.
    closed_at: Option<Instant>,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Whether the latest event finished its file (see the module comment).
    last_finished: bool,
}

/// How long a batch waits at most for its files' writers to close them (one that keeps a file
/// open must not stop reloads).
const WRITE_WAIT: Duration = Duration::from_millis(500);

/// The wait after an event that finished its file: long enough for the next file of a burst
/// written back to back, short against the few milliseconds a whole reload takes.
const SETTLE: Duration = Duration::from_millis(1);

impl Debouncer {
    /// quiet: emit after this long without new events (SETTLE after an event that finished its
    /// file). max_wait: emit at the latest this long after the first event of a batch, so a
    /// constant stream of events cannot starve reloads.
    pub fn new(quiet: Duration, max_wait: Duration) -> Self {
        Self {
            quiet,
            settle: SETTLE.min(quiet),
            max_wait,
            paths: Vec::new(),
            seen: HashSet::new(),
            open: HashSet::new(),
            closed_at: None,
            first: None,
            last: None,
            last_finished: false,
        }
    }

    /// An event that may be followed by more for the same file (a create, a metadata change).
    pub fn push(&mut self, path: PathBuf, now: Instant) {
        self.add(path, now, false);
    }

    /// An event after which the file is complete: renamed into place.
    pub fn finished(&mut self, path: PathBuf, now: Instant) {
        self.add(path, now, true);
    }

    fn add(&mut self, path: PathBuf, now: Instant, finished: bool) {
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.last_finished = finished;
        if !self.seen.contains(&path) {
            self.seen.insert(path.clone());
            self.paths.push(path);
        }
    }

    /// A write to `path`: its batch waits for `closed(path)`.
    pub fn written(&mut self, path: PathBuf, now: Instant) {
        self.open.insert(path.clone());
        self.add(path, now, false);
    }

    /// The writer closed `path`: its content is complete.
    pub fn closed(&mut self, path: PathBuf, now: Instant) {
        if self.open.remove(&path) {
            self.closed_at = Some(now);
        }
        self.add(path, now, true);
    }

    /// When the caller should next call `poll` (None when empty).
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        if !self.open.is_empty() {
            return Some((last + self.quiet).max(first + WRITE_WAIT));
        }
        let wait = if self.last_finished {
            self.settle
        } else {
            self.quiet
        };
        let cap = self.closed_at.map_or(first + self.max_wait, |closed| {
            (first + self.max_wait).max(closed + self.quiet)
        });
        Some((last + wait).min(cap))
    }

    /// The batch (deduplicated, in first-seen order) if its deadline has passed.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<PathBuf>> {
        if now < self.deadline()? {
            return None;
        }
        self.first = None;
        self.last = None;
        self.seen.clear();
        self.open.clear();
        self.closed_at = None;
        self.last_finished = false;
        Some(std::mem::take(&mut self.paths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(5);
    const MAX_WAIT: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn p(name: &str) -> PathBuf {
        PathBuf::from(name)
    }

    #[test]
    fn empty_has_no_deadline_and_no_batch() {
        let mut d = Debouncer::new(QUIET, MAX_WAIT);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.poll(Instant::now()), None);
    }

    #[test]
    fn emits_after_the_quiet_window() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(QUIET, MAX_WAIT);
        d.push(p("a.py"), t0);
        assert_eq!(d.deadline(), Some(t0 + QUIET));
        assert_eq!(d.poll(t0 + ms(4)), None);
        assert_eq!(d.poll(t0 + ms(5)), Some(vec![p("a.py")]));
        assert_eq!(d.deadline(), None);
        assert_eq!(d.poll(t0 + ms(100)), None);
    }

    #[test]
    fn new_events_extend_the_quiet_window() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(QUIET, MAX_WAIT);
        d.push(p("a.py"), t0);
        d.push(p("b.py"), t0 + ms(4));
        assert_eq!(d.deadline(), Some(t0 + ms(9)));
        assert_eq!(d.poll(t0 + ms(6)), None);
        assert_eq!(d.poll(t0 + ms(9)), Some(vec![p("a.py"), p("b.py")]));
    }

    #[test]
    fn max_wait_caps_a_constant_stream() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(QUIET, MAX_WAIT);
        let mut now = t0;
        let mut batch = None;
        // An event every 2 ms never leaves a 5 ms gap.
        while batch.is_none() {
            d.push(p("a.py"), now);
            now += ms(2);
            batch = d.poll(now);
        }
        assert_eq!(batch, Some(vec![p("a.py")]));
        assert!(now >= t0 + MAX_WAIT && now <= t0 + MAX_WAIT + ms(2));
        // The next batch starts its own max_wait clock.
        d.push(p("b.py"), now);
        assert_eq!(d.deadline(), Some(now + QUIET));
    }

    #[test]
    fn a_file_being_written_holds_its_batch_until_closed() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(QUIET, MAX_WAIT);
        d.written(p("a.py"), t0); // truncated
        d.push(p("b.py"), t0);
        // Past both the quiet window and max_wait, the writer has not closed a.py yet.
        assert_eq!(d.poll(t0 + ms(60)), None);
        d.closed(p("a.py"), t0 + ms(70));
        assert_eq!(d.deadline(), Some(t0 + ms(70) + SETTLE));
        assert_eq!(
            d.poll(t0 + ms(70) + SETTLE),
            Some(vec![p("a.py"), p("b.py")])
        );
    }

    #[test]
    fn a_writer_that_never_closes_delays_the_batch_only_so_long() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(QUIET, MAX_WAIT);
        d.written(p("a.py"), t0);
        assert_eq!(d.deadline(), Some(t0 + WRITE_WAIT));
        assert_eq!(d.poll(t0 + WRITE_WAIT), Some(vec![p("a.py")]));
        // The next batch does not wait for it any more.
        d.push(p("a.py"), t0 + ms(600));
        assert_eq!(d.deadline(), Some(t0 + ms(605)));
    }

    #[test]
    fn a_finished_file_waits_only_the_settle_window() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(QUIET, MAX_WAIT);
        d.written(p("a.py"), t0);
        d.closed(p("a.py"), t0);
        assert_eq!(d.deadline(), Some(t0 + SETTLE));
        // The next file of a burst, written within the window, joins the batch.
        d.written(p("b.py"), t0 + SETTLE / 2);
        d.closed(p("b.py"), t0 + SETTLE / 2);
        assert_eq!(d.poll(t0 + SETTLE), None);
        assert_eq!(
            d.poll(t0 + SETTLE / 2 + SETTLE),
            Some(vec![p("a.py"), p("b.py")])
        );
        // A rename into place is as complete as a close.
        d.finished(p("c.py"), t0 + ms(10));
        assert_eq!(d.deadline(), Some(t0 + ms(10) + SETTLE));
    }

    #[test]
    fn an_event_that_may_announce_more_restores_the_quiet_window() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(QUIET, MAX_WAIT);
        d.closed(p("a.py"), t0);
        // A file moved aside or created: its new content is yet to come.
        d.push(p("b.py"), t0 + ms(1));
        assert_eq!(d.deadline(), Some(t0 + ms(1) + QUIET));
        // A file still being written holds the batch even after another one closed.
        d.written(p("c.py"), t0 + ms(2));
        d.closed(p("a.py"), t0 + ms(3));
        assert_eq!(d.poll(t0 + ms(60)), None);
    }

    #[test]
    fn deduplicates_in_first_seen_order() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(QUIET, MAX_WAIT);
        for name in ["b.py", "a.py", "b.py", "c.py", "a.py"] {
            d.push(p(name), t0);
        }
        assert_eq!(
            d.poll(t0 + QUIET),
            Some(vec![p("b.py"), p("a.py"), p("c.py")])
        );
        // A path from an emitted batch is new again in the next one.
        d.push(p("a.py"), t0 + ms(10));
        assert_eq!(d.poll(t0 + ms(15)), Some(vec![p("a.py")]));
    }
}
