//! Live browser reload and the reload-failure banner: an event stream the server answers itself
//! (`events`), and a snippet spliced into HTML responses (`inject`) that listens to it, both put
//! in front of the reload gate by `layer`.

pub mod events;
pub mod inject;
pub mod layer;

use std::net::SocketAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::server::root_path;

/// Listens on the event stream and keeps the page on the newest code. The page knows the
/// generation it was rendered under; the stream's first event (`hello`, on every connection)
/// and every later one carry the current generation as their id. A page behind it reloads: so a
/// save whose reload completed between the HTML being served and the stream connecting is not
/// lost, nor is a restart (a new process counts anew under a new prefix), nor an edit made while
/// the page sat in the back/forward cache (the stream is closed on `pagehide`, or the pages kept
/// there would hold the browser's few connections to the server, and opened again on
/// `pageshow`). A failed reload's event carries the overlay, which the page shows; a page that
/// connects after the failure reloads and gets the overlay spliced in. The stream's URL (behind
/// `--root-path`) and the generation go between the three parts.
const SCRIPT_HEAD: &str = concat!(
    "<script data-hmr-serve>(function(){if(window.__hmrServe)return;window.__hmrServe=1;",
    "var es,gen;function connect(){es=new EventSource('",
);
const SCRIPT_MIDDLE: &str = concat!(
    "');es.addEventListener('hello',check);es.addEventListener('reload',check);",
    "es.addEventListener('failed',function(e){if(e.lastEventId===gen)return;gen=e.lastEventId;",
    "var d=JSON.parse(e.data||'{}');if(!d.html)return;",
    "var old=document.getElementById('hmr-serve-overlay');if(old)old.remove();",
    "var t=document.createElement('template');t.innerHTML=d.html;",
    "(document.body||document.documentElement).appendChild(t.content);});}",
    "function again(){es.close();location.reload();}",
    "function check(e){if(e.lastEventId!==gen)again();}",
    "gen='",
);
const SCRIPT_TAIL: &str = concat!(
    "';connect();addEventListener('pagehide',function(){es.close();});",
    "addEventListener('pageshow',function(e){if(e.persisted)connect();});})();</script>"
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
    /// The script up to its generation.
    script_head: String,
    /// How many events were sent: each says the served code (or its outcome) changed.
    generation: AtomicU64,
    /// Tells this process's generations from an earlier one's: an exec-restart counts from 0.
    boot: String,
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
            script_head: format!("{SCRIPT_HEAD}{url}{SCRIPT_MIDDLE}"),
            generation: AtomicU64::new(0),
            boot: boot_prefix(),
        }
    }

    /// The current generation. Read for a page before the app renders it, so a reload that
    /// completes meanwhile leaves the page behind (and so refreshed), never ahead.
    pub fn generation(&self) -> u64 {
        // SeqCst pairs with `send`: a stream that subscribed too late for an event reads a
        // generation that counts it.
        self.generation.load(Ordering::SeqCst)
    }

    /// The generation as the script and the events spell it.
    pub fn generation_id(&self, generation: u64) -> String {
        format!("{}.{generation}", self.boot)
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

    /// Sends one server-sent event to every open page, as the next generation; returns how many
    /// pages were listening (none is fine). Called after the change it reports is served (and,
    /// for a failure, after `set_failure`).
    pub fn send(&self, event: &str, data: &str) -> usize {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.livereload {
            return 0;
        }
        let id = self.generation_id(generation);
        self.events
            .send(events::encode(&id, event, data))
            .unwrap_or(0)
    }

    /// What to splice into an HTML page for a client, if anything: the script carries
    /// `generation`, the one the page was rendered under.
    pub fn snippet(&self, trusted: bool, generation: u64) -> Option<Bytes> {
        if !trusted {
            return None;
        }
        let failure = self
            .failure
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !self.livereload {
            return failure;
        }
        let id = self.generation_id(generation);
        let banner = failure.unwrap_or_default();
        let mut out = Vec::with_capacity(
            banner.len() + self.script_head.len() + id.len() + SCRIPT_TAIL.len(),
        );
        out.extend_from_slice(&banner);
        out.extend_from_slice(self.script_head.as_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(SCRIPT_TAIL.as_bytes());
        Some(Bytes::from(out))
    }
}

/// Unique per process start: nanoseconds since the epoch.
fn boot_prefix() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    format!("{:x}", since.map_or(0, |since| since.as_nanos()))
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
        assert!(strict.snippet(false, 0).is_none());
        assert!(open.snippet(true, 0).is_some());
    }

    #[test]
    fn the_failure_banner_comes_and_goes() {
        let (_tx, rx) = watch::channel(false);
        let hub = LiveHub::new(false, false, rx, "");
        assert!(hub.snippet(true, 0).is_none());
        hub.set_failure(Some("<div>broken</div>".into()));
        assert_eq!(hub.snippet(true, 0).unwrap(), "<div>broken</div>");
        hub.set_failure(None);
        assert!(hub.snippet(true, 0).is_none());
    }

    #[test]
    fn the_event_stream_lives_behind_the_root_path_too() {
        let (_tx, rx) = watch::channel(false);
        let hub = LiveHub::new(true, false, rx, "/api");
        let script = hub.snippet(true, 0).unwrap();
        let script = std::str::from_utf8(&script).unwrap();
        assert!(
            script.contains("EventSource('/api/__hmr_serve/events')"),
            "{script}"
        );
        assert!(hub.is_events_path("/__hmr_serve/events"));
        assert!(hub.is_events_path("/api/__hmr_serve/events"));
        assert!(!hub.is_events_path("/other/__hmr_serve/events"));
    }

    #[test]
    fn pages_and_events_carry_the_generation() {
        let (_tx, rx) = watch::channel(false);
        let hub = LiveHub::new(true, false, rx, "");
        let rendered = hub.generation();
        let page = hub.snippet(true, rendered).unwrap();
        let id = hub.generation_id(rendered);
        assert!(
            std::str::from_utf8(&page)
                .unwrap()
                .contains(&format!("gen='{id}'")),
            "{page:?}"
        );
        let mut events = hub.events.subscribe();
        hub.send("reload", "{}");
        assert_eq!(hub.generation(), rendered + 1);
        let event = events.try_recv().unwrap();
        let next = hub.generation_id(rendered + 1);
        assert_eq!(event, format!("id: {next}\nevent: reload\ndata: {{}}\n\n"));
        assert_ne!(id, next);
        // Another process (a restart) never repeats this one's generations.
        let (_tx, rx) = watch::channel(false);
        std::thread::sleep(std::time::Duration::from_millis(1));
        let restarted = LiveHub::new(true, false, rx, "");
        assert_ne!(restarted.generation_id(0), hub.generation_id(0));
    }
}
