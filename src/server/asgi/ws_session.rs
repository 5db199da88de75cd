//! One accepted WebSocket, on the tokio side: messages from the socket go to the app's inbox, the
//! app's messages go out, keepalive pings, and the closing handshake. No Python here.
//!
//! The inbox is bounded (`--ws-max-queue`): while the app does not receive, reading stops (TCP
//! pushes back). The app's sends never wait on reading, so an app that only sends and a client
//! that only sends cannot deadlock each other.

pub mod deflate;
pub mod deflate_offer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use self::deflate::{InflateError, MaybeDeflate};
use self::deflate_offer::Agreement;
use crate::log::{self, Level};

/// Messages the app may queue ahead of the socket.
pub const OUTBOX: usize = 16;

/// After sending a close frame, how long the peer gets to answer before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub mod code {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const NO_STATUS: u16 = 1005;
    pub const ABNORMAL: u16 = 1006;
    pub const INVALID_DATA: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
    pub const SERVICE_RESTART: u16 = 1012;
}

/// uvicorn's `--ws-max-size`, `--ws-max-queue`, `--ws-ping-interval`, `--ws-ping-timeout` and
/// `--ws-per-message-deflate`.
#[derive(Clone, Debug)]
pub struct WsConfig {
    pub max_size: usize,
    /// Messages read ahead of the app (at least 1); one more waits for room in that queue.
    pub max_queue: usize,
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Option<Duration>,
    pub per_message_deflate: bool,
}

impl WsConfig {
    fn protocol(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_size))
            .max_frame_size(Some(self.max_size))
    }
}

pub enum Inbound {
    Text(Utf8Bytes),
    Binary(Bytes),
}

pub enum Outbound {
    Message(Message),
    Close(u16, String),
}

/// The code and reason `websocket.disconnect` reports: whichever side closed first sets them.
#[derive(Default)]
pub struct CloseState(Mutex<Option<(u16, String)>>);

impl CloseState {
    pub fn set(&self, code: u16, reason: &str) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            *state = Some((code, reason.to_owned()));
        }
    }

    /// 1006 (closed without a close frame) unless something else was recorded.
    pub fn get(&self) -> (u16, String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or((code::ABNORMAL, String::new()))
    }
}

/// What the session shares with the app's protocol object.
pub struct Channels {
    pub inbox: mpsc::Sender<Inbound>,
    pub outbox: mpsc::Receiver<Outbound>,
    pub closed: Arc<CloseState>,
}

/// A read failure: the close code the app and the peer are told, and whether a close frame can
/// still be sent (not after the connection itself failed).
fn read_failure(err: &WsError) -> (u16, &'static str, bool) {
    match err {
        WsError::Io(io) => match InflateError::of(io) {
            Some(InflateError::TooBig) => (code::TOO_BIG, "message too big", true),
            Some(InflateError::Corrupt) => (code::PROTOCOL_ERROR, "invalid compressed data", true),
            None => (code::ABNORMAL, "", false),
        },
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            (code::TOO_BIG, "message too big", true)
        }
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            (code::ABNORMAL, "", false)
        }
        WsError::Protocol(_) => (code::PROTOCOL_ERROR, "protocol error", true),
        WsError::Utf8(_) => (code::INVALID_DATA, "invalid UTF-8", true),
        _ => (code::ABNORMAL, "", false),
    }
}

fn close_message(close_code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(close_code),
        reason: Utf8Bytes::from(reason.to_owned()),
    }))
}

/// The peer's close frame as `websocket.disconnect` reports it.
fn peer_close(frame: Option<&CloseFrame>) -> (u16, String) {
    match frame {
        Some(frame) => (u16::from(frame.code), frame.reason.to_string()),
        None => (code::NO_STATUS, String::new()),
    }
}

/// Pings every `interval`; a pong must come back within `timeout`.
struct Keepalive {
    interval: Option<Duration>,
    timeout: Option<Duration>,
    next_ping: Instant,
    awaiting: Option<(Bytes, Instant)>,
    sent: u32,
}

impl Keepalive {
    fn new(config: &WsConfig) -> Self {
        let interval = config.ping_interval.filter(|i| !i.is_zero());
        Self {
            interval,
            timeout: config.ping_timeout.filter(|t| !t.is_zero()),
            next_ping: Instant::now() + interval.unwrap_or_default(),
            awaiting: None,
            sent: 0,
        }
    }

    /// When the next ping is due; None while one is unanswered or pings are off.
    fn ping_due(&self) -> Option<Instant> {
        match (self.interval, &self.awaiting) {
            (Some(_), None) => Some(self.next_ping),
            _ => None,
        }
    }

    fn pong_deadline(&self) -> Option<Instant> {
        self.awaiting.as_ref().map(|(_, deadline)| *deadline)
    }

    fn ping(&mut self) -> Bytes {
        self.sent = self.sent.wrapping_add(1);
        let payload = Bytes::copy_from_slice(&self.sent.to_be_bytes());
        let now = Instant::now();
        self.next_ping = now + self.interval.unwrap_or_default();
        self.awaiting = self.timeout.map(|timeout| (payload.clone(), now + timeout));
        payload
    }

    /// A pong for another (older) ping proves nothing about this one.
    fn pong(&mut self, payload: &[u8]) {
        if self
            .awaiting
            .as_ref()
            .is_some_and(|(expected, _)| expected.as_ref() == payload)
        {
            self.awaiting = None;
        }
    }
}

/// A deadline for `select!` branches that are disabled when there is none.
async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

type Socket = WebSocketStream<MaybeDeflate<TokioIo<Upgraded>>>;

/// Runs the connection until both sides are done with it, then drops the socket. `deflate` is
/// the permessage-deflate agreement of the handshake, if one was made.
pub async fn run(
    io: Upgraded,
    config: WsConfig,
    deflate: Option<Agreement>,
    channels: Channels,
    mut shutdown: watch::Receiver<bool>,
) {
    let Channels {
        inbox,
        mut outbox,
        closed,
    } = channels;
    let io = TokioIo::new(io);
    let io = match &deflate {
        Some(agreement) => MaybeDeflate::deflate(io, agreement, config.max_size),
        None => MaybeDeflate::plain(io),
    };
    let mut ws: Socket =
        WebSocketStream::from_raw_socket(io, Role::Server, Some(config.protocol())).await;
    // None once the app must get no more messages (a close was sent or received); dropping the
    // sender is what ends the app's `receive` with `websocket.disconnect`.
    let mut inbox = Some(inbox);
    // A message read from the socket that waits for room in the inbox.
    let mut pending: Option<Inbound> = None;
    // Set once we sent a close frame: the peer's answer is awaited until then.
    let mut closing: Option<Instant> = None;
    let mut keepalive = Keepalive::new(&config);
    let mut outbox_open = true;

    loop {
        let ping_due = keepalive.ping_due().filter(|_| closing.is_none());
        let pong_deadline = keepalive.pong_deadline().filter(|_| closing.is_none());
        let close_to_send = tokio::select! {
            () = stopping(&mut shutdown), if closing.is_none() => {
                Some((code::SERVICE_RESTART, String::new()))
            }
            permit = reserve(inbox.as_ref()), if pending.is_some() => {
                match permit {
                    Some(permit) => {
                        permit.send(pending.take().expect("checked by the guard"));
                    }
                    // The app's protocol object is gone: nobody reads any more.
                    None => {
                        pending = None;
                        inbox = None;
                    }
                }
                None
            }
            frame = ws.next(), if pending.is_none() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if inbox.is_some() {
                        pending = Some(Inbound::Text(text));
                    }
                    None
                }
                Some(Ok(Message::Binary(data))) => {
                    if inbox.is_some() {
                        pending = Some(Inbound::Binary(data));
                    }
                    None
                }
                Some(Ok(Message::Ping(_))) => {
                    // tungstenite queued the pong; send it now rather than with the next write.
                    if ws.flush().await.is_err() {
                        closed.set(code::ABNORMAL, "");
                        break;
                    }
                    None
                }
                Some(Ok(Message::Pong(payload))) => {
                    keepalive.pong(&payload);
                    None
                }
                Some(Ok(Message::Close(frame))) => {
                    if closing.is_none() {
                        let (close_code, reason) = peer_close(frame.as_ref());
                        closed.set(close_code, &reason);
                        inbox = None;
                        // tungstenite queued the echo; the next read sends it and then ends.
                        closing = Some(Instant::now() + CLOSE_TIMEOUT);
                    }
                    None
                }
                Some(Ok(Message::Frame(_))) => None,
                Some(Err(err)) => {
                    let (close_code, reason, can_send) = read_failure(&err);
                    log::write(Level::Debug, &format!("WebSocket read failed: {err}"));
                    closed.set(close_code, reason);
                    if can_send && closing.is_none() {
                        let _ = tokio::time::timeout(
                            CLOSE_TIMEOUT,
                            ws.send(close_message(close_code, reason)),
                        )
                        .await;
                    }
                    break;
                }
                None => {
                    closed.set(code::ABNORMAL, "");
                    break;
                }
            },
            message = outbox.recv(), if outbox_open && closing.is_none() => match message {
                Some(Outbound::Message(message)) => {
                    match send_batch(&mut ws, message, &mut outbox).await {
                        Ok(close) => close,
                        Err(err) => {
                            log::write(Level::Debug, &format!("WebSocket write failed: {err}"));
                            closed.set(code::ABNORMAL, "");
                            break;
                        }
                    }
                }
                Some(Outbound::Close(close_code, reason)) => Some((close_code, reason)),
                // The app finished and its protocol object is gone without closing.
                None => {
                    outbox_open = false;
                    Some((code::NORMAL, String::new()))
                }
            },
            _ = at(ping_due) => {
                let payload = keepalive.ping();
                if ws.send(Message::Ping(payload)).await.is_err() {
                    closed.set(code::ABNORMAL, "");
                    break;
                }
                None
            }
            _ = at(pong_deadline) => {
                let reason = "keepalive ping timeout";
                closed.set(code::INTERNAL_ERROR, reason);
                let _ = tokio::time::timeout(
                    CLOSE_TIMEOUT,
                    ws.send(close_message(code::INTERNAL_ERROR, reason)),
                )
                .await;
                break;
            }
            _ = at(closing) => break,
        };
        if let Some((close_code, reason)) = close_to_send {
            closed.set(close_code, &reason);
            inbox = None;
            pending = None;
            closing = Some(Instant::now() + CLOSE_TIMEOUT);
            let sent =
                tokio::time::timeout(CLOSE_TIMEOUT, ws.send(close_message(close_code, &reason)))
                    .await;
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
        }
    }
    closed.set(code::ABNORMAL, "");
}

/// Resolves when the server stops (or is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live on in the caller: it is not `Send`.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// Room for one message in the inbox; None once the app's side is gone.
async fn reserve(inbox: Option<&mpsc::Sender<Inbound>>) -> Option<mpsc::OwnedPermit<Inbound>> {
    inbox?.clone().reserve_owned().await.ok()
}

/// Writes `first` and whatever else the app queued meanwhile, then flushes once. Returns the
/// close the app asked for, if one was queued behind the messages.
async fn send_batch(
    ws: &mut Socket,
    first: Message,
    outbox: &mut mpsc::Receiver<Outbound>,
) -> Result<Option<(u16, String)>, WsError> {
    ws.feed(first).await?;
    let mut close = None;
    while let Ok(next) = outbox.try_recv() {
        match next {
            Outbound::Message(message) => ws.feed(message).await?,
            Outbound::Close(close_code, reason) => {
                close = Some((close_code, reason));
                break;
            }
        }
    }
    ws.flush().await?;
    Ok(close)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(interval: u64, timeout: u64) -> WsConfig {
        WsConfig {
            max_size: 1024,
            max_queue: 32,
            ping_interval: Some(Duration::from_secs(interval)),
            ping_timeout: Some(Duration::from_secs(timeout)),
            per_message_deflate: true,
        }
    }

    #[test]
    fn close_state_keeps_the_first_close() {
        let state = CloseState::default();
        assert_eq!(state.get(), (code::ABNORMAL, String::new()));
        state.set(4001, "first");
        state.set(1000, "second");
        assert_eq!(state.get(), (4001, "first".to_owned()));
    }

    #[test]
    fn read_failures_map_to_close_codes() {
        let too_big = WsError::Capacity(CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        });
        assert_eq!(
            read_failure(&too_big),
            (code::TOO_BIG, "message too big", true)
        );
        let reset = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(read_failure(&reset).0, code::ABNORMAL);
        assert!(!read_failure(&reset).2);
        let inflate = |kind: InflateError| {
            WsError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, kind))
        };
        assert_eq!(
            read_failure(&inflate(InflateError::TooBig)).0,
            code::TOO_BIG
        );
        assert_eq!(
            read_failure(&inflate(InflateError::Corrupt)),
            (code::PROTOCOL_ERROR, "invalid compressed data", true)
        );
        let bad = WsError::Protocol(ProtocolError::UnmaskedFrameFromClient);
        assert_eq!(read_failure(&bad).0, code::PROTOCOL_ERROR);
        assert_eq!(
            read_failure(&WsError::Utf8("x".into())).0,
            code::INVALID_DATA
        );
    }

    #[test]
    fn peer_close_without_a_frame_is_no_status() {
        assert_eq!(peer_close(None), (code::NO_STATUS, String::new()));
        let frame = CloseFrame {
            code: CloseCode::from(4000),
            reason: Utf8Bytes::from_static("bye"),
        };
        assert_eq!(peer_close(Some(&frame)), (4000, "bye".to_owned()));
    }

    #[tokio::test]
    async fn keepalive_waits_for_the_matching_pong() {
        let mut keepalive = Keepalive::new(&config(20, 5));
        assert!(keepalive.ping_due().is_some());
        assert!(keepalive.pong_deadline().is_none());
        let first = keepalive.ping();
        assert!(
            keepalive.ping_due().is_none(),
            "no second ping while one is unanswered"
        );
        assert!(keepalive.pong_deadline().is_some());
        keepalive.pong(b"other");
        assert!(keepalive.pong_deadline().is_some());
        keepalive.pong(&first);
        assert!(keepalive.pong_deadline().is_none());
        assert!(keepalive.ping_due().is_some());
    }

    #[tokio::test]
    async fn zero_interval_turns_pings_off() {
        let keepalive = Keepalive::new(&config(0, 5));
        assert!(keepalive.ping_due().is_none());
    }
}
