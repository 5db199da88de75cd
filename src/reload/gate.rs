//! The request gate: while a reload swaps code, new requests wait in front of the app instead of
//! being refused, and the reload waits (boundedly) for requests already inside to finish.
//!
//! The open path is one atomic load and one counter increment, so an idle gate costs nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;
use tower::{Layer, Service};

#[derive(Default)]
pub struct Gate {
    closed: AtomicBool,
    inside: AtomicUsize,
    waiting: AtomicUsize,
    opened: Notify,
    drained: Notify,
}

/// Held by a request while it is inside the app; dropping it lets a pending reload proceed.
pub struct Pass(Arc<Gate>);

impl Drop for Pass {
    fn drop(&mut self) {
        if self.0.inside.fetch_sub(1, Ordering::AcqRel) == 1
            && self.0.closed.load(Ordering::Acquire)
        {
            self.0.drained.notify_waiters();
        }
    }
}

impl Gate {
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Requests currently inside the app (not counting those waiting at the gate).
    pub fn inside(&self) -> usize {
        self.inside.load(Ordering::Acquire)
    }

    /// Requests held at the closed gate right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    pub async fn enter(self: &Arc<Self>) -> Pass {
        loop {
            if !self.is_closed() {
                self.inside.fetch_add(1, Ordering::AcqRel);
                // A reload may have closed the gate between the check and the increment; it
                // counts us as inside, so we back out and wait like everyone else.
                if !self.is_closed() {
                    return Pass(self.clone());
                }
                drop(Pass(self.clone()));
            }
            let opened = self.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if !self.is_closed() {
                continue;
            }
            self.waiting.fetch_add(1, Ordering::AcqRel);
            opened.await;
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Closes the gate; true when no request is inside, so there is nothing to wait for.
    pub fn close_now(&self) -> bool {
        self.closed.store(true, Ordering::Release);
        self.inside() == 0
    }

    /// Closes the gate and waits up to `drain` for the requests inside to leave.
    /// Returns how many were still inside when the wait ended.
    pub async fn close(&self, drain: Duration) -> usize {
        self.closed.store(true, Ordering::Release);
        let _ = tokio::time::timeout(drain, async {
            loop {
                let drained = self.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                if self.inside() == 0 {
                    return;
                }
                drained.await;
            }
        })
        .await;
        self.inside()
    }

    pub fn open(&self) {
        self.closed.store(false, Ordering::Release);
        self.opened.notify_waiters();
    }
}

#[derive(Clone)]
pub struct GateLayer(Arc<Gate>);

impl GateLayer {
    pub fn new(gate: Arc<Gate>) -> Self {
        Self(gate)
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = GateService<S>;

    fn layer(&self, inner: S) -> GateService<S> {
        GateService {
            inner,
            gate: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GateService<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S, R> Service<R> for GateService<S>
where
    S: Service<R> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let gate = self.gate.clone();
        // Take the ready service and leave a fresh clone behind, as tower expects.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            // Held until the response head exists: plain requests are waited for by a reload,
            // streaming bodies and long-lived connections are not.
            let _pass = gate.enter().await;
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_gate_lets_requests_through() {
        let gate = Arc::new(Gate::default());
        let pass = gate.enter().await;
        assert_eq!(gate.inside(), 1);
        drop(pass);
        assert_eq!(gate.inside(), 0);
    }

    #[tokio::test]
    async fn closed_gate_holds_requests_until_opened() {
        let gate = Arc::new(Gate::default());
        assert_eq!(gate.close(Duration::from_millis(10)).await, 0);
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _pass = gate.enter().await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        assert_eq!(gate.waiting(), 1);
        gate.open();
        waiter.await.unwrap();
        assert_eq!(gate.inside(), 0);
    }

    #[tokio::test]
    async fn close_waits_for_requests_inside() {
        let gate = Arc::new(Gate::default());
        let pass = gate.enter().await;
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(pass);
        });
        assert_eq!(gate.close(Duration::from_secs(5)).await, 0);
        releaser.await.unwrap();
    }

    #[tokio::test]
    async fn close_gives_up_after_the_drain_timeout() {
        let gate = Arc::new(Gate::default());
        let _pass = gate.enter().await;
        assert_eq!(gate.close(Duration::from_millis(10)).await, 1);
    }
}
