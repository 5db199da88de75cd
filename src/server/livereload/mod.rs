//! Live browser reload and the reload-failure banner: an event stream the server answers itself
//! (`events`), and a snippet spliced into HTML responses (`inject`) that listens to it, both put
//! in front of the reload gate by `layer`.

pub mod events;
pub mod inject;
pub mod layer;

use std::net::SocketAddr;
use std::sync::RwLock;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::server::root_path;

/// Listens on the event stream: reloads the page after a reload (or when the stream comes back
/// after the server went away, e.g. a restart), shows the overlay a failed reload sends. The
/// stream's URL (behind `--root-path`) goes between the two halves.
const SCRIPT_HEAD: &str = concat!(
    "<script data-hmr-serve>(function(){if(window.__hmrServe)return;window.__hmrServe=1;",
    "var lost=false,es=new EventSource('",
);
const SCRIPT_TAIL: &str = concat!(
    "');function again(){es.close();location.reload();}",
    "es.addEventListener('reload',again);",
    "es.addEventListener('failed',function(e){var d=JSON.parse(e.data||'{}');if(!d.html)return;",
    "var old=document.getElementById('hmr-serve-overlay');if(old)old.remove();",
    "var t=document.createElement('template');t.innerHTML=d.html;",
    "(document.body||document.documentElement).appendChild(t.content);});",
    "es.onerror=function(){lost=true;};es.onopen=function(){if(lost)again();};})();</script>"
);

/// What the browser side of a session shares between connections and the Python reloader.
pub struct LiveHub {
    /// Inject the script and answer the event stream.
    pub livereload: bool,
    /// Tracebacks (and so the events, which carry them) for every client, not only local ones.
    pub show_errors_to_all: bool,
    events: broadcast::Sender<Bytes>,
    /// The overlay of the failing reload, injected into HTML pages until a reload succeeds.
    failure: RwLock<Option<Bytes>>,
    /// Turns true on shutdown (and before a restart): open event streams end.
    shutdown: watch::Receiver<bool>,
    /// `--root-path`: the script asks for the event stream behind it.
    root_path: String,
    script: Bytes,
}

impl LiveHub {
    pub fn new(
        livereload: bool,
        show_errors_to_all: bool,
        shutdown: watch::Receiver<bool>,
        root_path: &str,
    ) -> Self {
        let url = root_path::public(root_path, events::PATH);
        Self {
            livereload,
            show_errors_to_all,
            events: broadcast::channel(16).0,
            failure: RwLock::new(None),
            shutdown,
            root_path: root_path.to_owned(),
            script: Bytes::from(format!("{SCRIPT_HEAD}{url}{SCRIPT_TAIL}")),
        }
    }

    /// The event stream's path, with or without the root path in front.
    pub fn is_events_path(&self, path: &str) -> bool {
        root_path::strip(&self.root_path, path) == events::PATH
    }

    /// Whether this client may see tracebacks and use the event stream.
    pub fn trusts(&self, client: Option<SocketAddr>) -> bool {
        self.show_errors_to_all || is_local(client)
    }

    pub fn set_failure(&self, html: Option<String>) {
        *self.failure.write().unwrap_or_else(|e| e.into_inner()) = html.map(Bytes::from);
    }

    /// Sends one server-sent event to every open page; nobody listening is fine.
    pub fn send(&self, event: &str, data: &str) {
        if self.livereload {
            let _ = self.events.send(events::encode(event, data));
        }
    }

    /// What to splice into an HTML page for a client, if anything.
    pub fn snippet(&self, trusted: bool) -> Option<Bytes> {
        if !trusted {
            return None;
        }
        let failure = self
            .failure
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match (self.livereload, failure) {
            (false, None) => None,
            (false, Some(banner)) => Some(banner),
            (true, None) => Some(self.script.clone()),
            (true, Some(banner)) => {
                let mut both = Vec::with_capacity(self.script.len() + banner.len());
                both.extend_from_slice(&banner);
                both.extend_from_slice(&self.script);
                Some(Bytes::from(both))
            }
        }
    }
}

/// Loopback TCP peers and Unix socket peers (no address) are on this machine.
pub fn is_local(client: Option<SocketAddr>) -> bool {
    match client {
        None => true,
        Some(SocketAddr::V4(addr)) => addr.ip().is_loopback(),
        Some(SocketAddr::V6(addr)) => {
            addr.ip().is_loopback()
                || addr
                    .ip()
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn only_local_clients_are_trusted_by_default() {
        assert!(is_local(addr("127.0.0.1:5000")));
        assert!(is_local(addr("127.8.9.1:5000")));
        assert!(is_local(addr("[::1]:5000")));
        assert!(is_local(addr("[::ffff:127.0.0.1]:5000")));
        assert!(is_local(None));
        assert!(!is_local(addr("192.168.1.20:5000")));
        assert!(!is_local(addr("10.0.0.1:5000")));
        assert!(!is_local(addr("[2001:db8::1]:5000")));
        assert!(!is_local(addr("[::ffff:192.168.1.20]:5000")));
    }

    #[test]
    fn show_errors_to_all_trusts_everyone() {
        let (_tx, rx) = watch::channel(false);
        let strict = LiveHub::new(true, false, rx.clone(), "");
        let open = LiveHub::new(true, true, rx, "");
        assert!(!strict.trusts(addr("192.168.1.20:5000")));
        assert!(open.trusts(addr("192.168.1.20:5000")));
        assert!(strict.snippet(false).is_none());
        assert!(open.snippet(true).is_some());
    }

    #[test]
    fn the_failure_banner_comes_and_goes() {
        let (_tx, rx) = watch::channel(false);
        let hub = LiveHub::new(false, false, rx, "");
        assert!(hub.snippet(true).is_none());
        hub.set_failure(Some("<div>broken</div>".into()));
        assert_eq!(hub.snippet(true).unwrap(), "<div>broken</div>");
        hub.set_failure(None);
        assert!(hub.snippet(true).is_none());
    }

    #[test]
    fn the_event_stream_lives_behind_the_root_path_too() {
        let (_tx, rx) = watch::channel(false);
        let hub = LiveHub::new(true, false, rx, "/api");
        let script = hub.snippet(true).unwrap();
        let script = std::str::from_utf8(&script).unwrap();
        assert!(
            script.contains("EventSource('/api/__hmr_serve/events')"),
            "{script}"
        );
        assert!(hub.is_events_path("/__hmr_serve/events"));
        assert!(hub.is_events_path("/api/__hmr_serve/events"));
        assert!(!hub.is_events_path("/other/__hmr_serve/events"));
    }
}
