//! Tells the app when the client has gone away (ASGI `http.disconnect`).
//!
//! The guard travels with the request: first in the request future, then inside the response
//! body. When hyper drops either (response finished, or connection lost) the waiters wake.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Disconnect {
    gone: AtomicBool,
    notify: Notify,
}

impl Disconnect {
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_gone() {
                return;
            }
            notified.await;
        }
    }
}

pub struct DisconnectGuard(Arc<Disconnect>);

impl DisconnectGuard {
    pub fn new(disconnect: Arc<Disconnect>) -> Self {
        Self(disconnect)
    }
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        self.0.gone.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }
}
