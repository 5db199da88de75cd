//! The threads that run WSGI apps. Each keeps its Python thread state for life.
//!
//! Jobs wait in one FIFO queue and are taken out only by a thread that holds the GIL, which then
//! runs every queued job before letting go: under load a burst of requests costs one GIL
//! hand-over instead of one per request. Only one thread serves the queue while it keeps up;
//! another is woken when the queue has not moved for `STALL` (the running job blocks on I/O with
//! the GIL released, or is long), up to the pool's size. A thread that took a job before holding
//! the GIL would make that request wait for the GIL among all the others; with the 32 default
//! threads, the GIL's unordered hand-overs then let a few requests wait hundreds of milliseconds.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use pyo3::prelude::*;

use crate::server::thread_state;

pub type Job = Box<dyn FnOnce(Python<'_>) + Send>;

/// How long the queue may stand still before another thread is woken: CPython's default switch
/// interval, the time slice the GIL itself gives a thread before others may take over.
const STALL: Duration = Duration::from_millis(5);

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Jobs taken out so far: the monitor's sign of progress.
    taken: u64,
    /// Threads serving the queue (holding or waiting for the GIL), woken ones included.
    awake: usize,
    /// Woken threads that do not hold the GIL yet: at most one is woken at a time.
    attaching: usize,
    /// Wake-ups handed out and not yet picked up by a thread.
    tickets: usize,
    /// The monitor sleeps until the next job: the pool was idle.
    monitor_parked: bool,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Idle workers wait here for a ticket.
    wake: Condvar,
    /// The parked monitor waits here for the next job.
    work: Condvar,
    threads: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a wake-up to one idle thread (lock held).
    fn wake_one(&self, state: &mut State) {
        state.awake += 1;
        state.attaching += 1;
        state.tickets += 1;
        self.wake.notify_one();
    }
}

pub struct WorkerPool {
    shared: Arc<Shared>,
}

impl WorkerPool {
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            work: Condvar::new(),
            threads,
        });
        for index in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("hmr-serve-wsgi-{index}"))
                .spawn(move || work(&shared))?;
        }
        if threads > 1 {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hmr-serve-wsgi-monitor".into())
                .spawn(move || monitor(&shared))?;
        }
        Ok(Self { shared })
    }

    /// False once the pool is gone (shutdown).
    pub fn submit(&self, job: Job) -> bool {
        let mut state = self.shared.lock();
        if state.closed {
            return false;
        }
        state.queue.push_back(job);
        if state.awake == 0 {
            self.shared.wake_one(&mut state);
        }
        if state.monitor_parked {
            state.monitor_parked = false;
            self.shared.work.notify_one();
        }
        true
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        // Jobs still queued run before the threads end, as they always did.
        if !state.queue.is_empty() && state.awake == 0 {
            self.shared.wake_one(&mut state);
        }
        self.shared.wake.notify_all();
        self.shared.work.notify_all();
    }
}

/// Waits, without the GIL, for a wake-up; false when the pool is closed.
fn wait_for_ticket(shared: &Shared) -> bool {
    let mut state = shared.lock();
    while state.tickets == 0 {
        if state.closed {
            return false;
        }
        state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
    }
    state.tickets -= 1;
    true
}

/// The next job, or None (and this thread no longer counts as awake) when the queue is empty.
/// The lock is held only for the pop: never while waiting, so holding the GIL here is safe.
fn next_job(shared: &Shared) -> Option<Job> {
    let mut state = shared.lock();
    match state.queue.pop_front() {
        Some(job) => {
            state.taken += 1;
            Some(job)
        }
        None => {
            state.awake -= 1;
            None
        }
    }
}

fn work(shared: &Shared) {
    thread_state::keep_for_this_thread();
    while wait_for_ticket(shared) {
        Python::attach(|py| {
            shared.lock().attaching -= 1;
            while let Some(job) = next_job(shared) {
                job(py);
            }
        });
    }
}

/// Wakes one more thread when jobs wait and none was taken out for `STALL`: the threads awake
/// are blocked (I/O with the GIL released) or busy with a long request. It checks once per
/// `STALL` while the pool is busy and sleeps while it is idle; it is never woken per job.
fn monitor(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.closed {
            return;
        }
        if state.queue.is_empty() && state.awake == 0 {
            state.monitor_parked = true;
            while state.monitor_parked && !state.closed {
                state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            continue;
        }
        let seen = state.taken;
        state = shared
            .work
            .wait_timeout(state, STALL)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        let stalled = !state.queue.is_empty() && state.taken == seen;
        if stalled && state.attaching == 0 && state.awake < shared.threads {
            shared.wake_one(&mut state);
        }
    }
}
