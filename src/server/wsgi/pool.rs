//! The threads that run WSGI apps. Each keeps its Python thread state for life and, once it
//! holds the GIL, runs every job already queued before letting go: under load a burst of
//! requests costs one GIL hand-over instead of one per request.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use crate::server::thread_state;

pub type Job = Box<dyn FnOnce(Python<'_>) + Send>;

pub struct WorkerPool {
    jobs: Sender<Job>,
}

impl WorkerPool {
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("hmr-serve-wsgi-{index}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Self { jobs })
    }

    /// False once the pool is gone (shutdown).
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}

/// Waits for a job, without the GIL.
fn wait_for_job(queue: &Mutex<Receiver<Job>>) -> Option<Job> {
    queue.lock().unwrap_or_else(|e| e.into_inner()).recv().ok()
}

/// A job already queued, if any. Never blocks: with the GIL held, waiting for the lock (held
/// by an idle worker blocked in `recv`) while the jobs that would wake it wait for the GIL
/// would deadlock. A held lock means another worker is waiting for work: the queue is empty.
fn queued_job(queue: &Mutex<Receiver<Job>>) -> Option<Job> {
    queue.try_lock().ok()?.try_recv().ok()
}

fn work(queue: &Mutex<Receiver<Job>>) {
    thread_state::keep_for_this_thread();
    // Waiting for work happens without the GIL; running it, with.
    while let Some(job) = wait_for_job(queue) {
        Python::attach(|py| {
            job(py);
            while let Some(job) = queued_job(queue) {
                job(py);
            }
        });
    }
}
