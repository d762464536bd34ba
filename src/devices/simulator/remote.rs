//! The simulated network shared by several gateway processes over TCP.
//!
//! One process (a test harness, a benchmark) runs the [`Simulator`] and serves it with
//! [`serve`]; every gateway configured with `[whatsapp] simulator_network = "host:port"` opens
//! its sessions there through [`RemoteNetwork`]. Each session is one TCP connection carrying
//! JSON lines, so the network sees what WhatsApp sees: a connection per running device, closed
//! when the process dies, and a second connection for the same device replacing the first
//! (counted in [`Simulator::sessions`]). A process that stops answering (SIGSTOP, a frozen
//! machine) is dropped after [`KEEPALIVE`] without a ping, like WhatsApp's server does with a
//! silent socket.
//!
//! What travels: the session lifecycle (QR codes, pair codes, paired, connected, stopped),
//! every session call another process can make (`devices::routed`: messages of every kind but
//! media, reactions, edits, deletions, read marks, presence, groups, contacts), number checks,
//! logout, inbound messages of every kind with their acknowledgement, media downloads,
//! receipts and LID mappings. Not carried: media sends, which fail saying so, and the group,
//! chat-state and saved-name events, which are acknowledged as not stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Simulator;
use crate::db::Db;
use crate::devices::driver::{
    Ack, DeviceKey, Driver, DriverError, DriverEvent, InboundMessage, NumberCheck, ReceiptKind, Session,
    StopReason,
};
use crate::devices::routed::{to_value, CarriedSession, Carrier, SessionCall};

/// The network drops a session it heard nothing from for this long.
pub const KEEPALIVE: Duration = Duration::from_secs(2);
/// How often a gateway pings each of its sessions.
const PING_EVERY: Duration = Duration::from_millis(400);
/// How long opening a connection and each call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest line either side accepts (an inbound message with its text and details).
const MAX_LINE: usize = 1 << 20;

/// What a gateway says to the network.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Up {
    /// The first line of a connection: the session to open.
    Open {
        device_id: i64,
        tenant_id: i64,
        phone: String,
    },
    Call {
        call: u64,
        op: Op,
    },
    /// The gateway's answer to an event that carried `ack`.
    Ack {
        ack: u64,
        stored: bool,
    },
    Ping,
}

/// A session method, called over the connection.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    /// Every call a session in another process can take (see `devices::routed`).
    Session {
        call: Box<SessionCall>,
    },
    Download {
        kind: String,
        source: String,
    },
    PairCode {
        phone: String,
    },
    CheckNumbers {
        numbers: Vec<String>,
    },
    Logout,
    /// Ends the session; answered once the network closed it.
    Close,
}

/// What the network says to a gateway.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Down {
    Reply {
        call: u64,
        result: Result<Value, WireError>,
    },
    /// `ack`, when given, waits for an [`Up::Ack`] with the same number.
    Event {
        event: WireEvent,
        ack: Option<u64>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireEvent {
    Qr { code: String, ttl_ms: u64 },
    PairCode { code: String, ttl_ms: u64 },
    Paired { jid: String },
    Connected,
    Disconnected { reason: String },
    Messages { messages: Vec<InboundMessage> },
    Receipt { wa_ids: Vec<String>, kind: ReceiptKind },
    LidMapping { lid: String, phone: String },
    Stopped { reason: StopReason },
}

#[derive(Debug, Serialize, Deserialize)]
struct WireError {
    kind: String,
    message: String,
}

impl From<DriverError> for WireError {
    fn from(e: DriverError) -> WireError {
        let (kind, message) = match e {
            DriverError::NotConnected => ("not_connected", String::new()),
            DriverError::Invalid(m) => ("invalid", m),
            DriverError::NotFound(m) => ("not_found", m),
            DriverError::Forbidden(m) => ("forbidden", m),
            DriverError::Failed(m) => ("failed", m),
        };
        WireError { kind: kind.into(), message }
    }
}

impl From<WireError> for DriverError {
    fn from(e: WireError) -> DriverError {
        match e.kind.as_str() {
            "not_connected" => DriverError::NotConnected,
            "invalid" => DriverError::Invalid(e.message),
            "not_found" => DriverError::NotFound(e.message),
            "forbidden" => DriverError::Forbidden(e.message),
            _ => DriverError::Failed(e.message),
        }
    }
}

/// Writes `value` as one JSON line.
async fn write_line<T: Serialize>(out: &mut (impl AsyncWriteExt + Unpin), value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await
}

/// Reads one JSON line; `None` at the end of the stream.
async fn read_line<T: for<'de> Deserialize<'de>>(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
) -> std::io::Result<Option<T>> {
    match lines.next_line().await? {
        None => Ok(None),
        Some(line) if line.len() > MAX_LINE => Err(std::io::Error::other("line too long")),
        Some(line) => serde_json::from_str(&line).map(Some).map_err(std::io::Error::other),
    }
}

/// A line writer fed by a channel, so several tasks can write to one connection.
fn spawn_writer<T: Serialize + Send + Sync + 'static>(
    mut out: tokio::net::tcp::OwnedWriteHalf,
) -> (mpsc::UnboundedSender<T>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<T>();
    let task = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            if write_line(&mut out, &item).await.is_err() {
                break;
            }
        }
        let _ = out.shutdown().await;
    });
    (tx, task)
}

/// Serves `sim` to gateway processes on `listener` until `shutdown`.
pub async fn serve(sim: Simulator, listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "shared simulator network: accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_session(sim.clone(), stream, shutdown.child_token()));
    }
}

/// One gateway session: opens it on the simulator, relays its events and the gateway's calls,
/// and closes it when the connection ends or goes silent.
async fn serve_session(sim: Simulator, stream: TcpStream, shutdown: CancellationToken) {
    let (read, write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let open = match tokio::time::timeout(KEEPALIVE, read_line::<Up>(&mut lines)).await {
        Ok(Ok(Some(Up::Open { device_id, tenant_id, phone }))) => {
            DeviceKey { device_id, tenant_id, phone, writes: Default::default() }
        }
        _ => return,
    };
    let device_id = open.device_id;
    let (events_tx, mut events) = mpsc::channel(256);
    let session = match sim.open(open, events_tx).await {
        Ok(session) => session,
        Err(e) => {
            tracing::warn!(device_id, error = %e, "shared simulator network: cannot open a session");
            return;
        }
    };
    let (out, writer) = spawn_writer::<Down>(write);
    let mut acks: HashMap<u64, Ack> = HashMap::new();
    let mut next_ack = 0u64;
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(heard + KEEPALIVE) => {
                tracing::info!(device_id, "shared simulator network: no ping, dropping the session");
                break;
            }
            line = read_line::<Up>(&mut lines) => {
                heard = Instant::now();
                match line {
                    // Answered once the session is closed, so the gateway's close waits for it.
                    Ok(Some(Up::Call { call, op: op @ Op::Close })) => {
                        let result = call_session(&*session, op).await.map_err(WireError::from);
                        let _ = out.send(Down::Reply { call, result });
                        break;
                    }
                    Ok(Some(Up::Call { call, op })) => {
                        // Calls may wait (a send on a slow network); events keep flowing.
                        let (session, out) = (session.clone(), out.clone());
                        tokio::spawn(async move {
                            let result = call_session(&*session, op).await.map_err(WireError::from);
                            let _ = out.send(Down::Reply { call, result });
                        });
                    }
                    Ok(Some(Up::Ack { ack, stored })) => {
                        if let Some(a) = acks.remove(&ack) {
                            a.send(stored);
                        }
                    }
                    Ok(Some(Up::Ping)) => {}
                    Ok(Some(Up::Open { .. })) | Ok(None) | Err(_) => break,
                }
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                let (event, ack) = match to_wire(event) {
                    Some(wire) => wire,
                    None => continue,
                };
                let ack = ack.map(|a| {
                    next_ack += 1;
                    acks.insert(next_ack, a);
                    next_ack
                });
                let stopped = matches!(event, WireEvent::Stopped { .. });
                let _ = out.send(Down::Event { event, ack });
                if stopped {
                    break;
                }
            }
        }
    }
    session.close().await;
    for (_, ack) in acks {
        ack.send(false);
    }
    drop(out);
    let _ = writer.await;
}

async fn call_session(session: &dyn Session, op: Op) -> Result<Value, DriverError> {
    match op {
        Op::Session { call } => (*call).run(session).await,
        Op::Download { kind, source } => session
            .download(&kind, &source)
            .await
            .map(|bytes| Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))),
        Op::PairCode { phone } => session.request_pair_code(&phone).await.map(Value::String),
        Op::CheckNumbers { numbers } => to_value(session.check_numbers(&numbers).await?),
        Op::Logout => session.logout().await.map(|()| Value::Null),
        Op::Close => {
            session.close().await;
            Ok(Value::Null)
        }
    }
}

/// The wire form of an event, and its acknowledgement; `None` for events not carried (their
/// acknowledgement says "not stored").
fn to_wire(event: DriverEvent) -> Option<(WireEvent, Option<Ack>)> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Some(match event {
        DriverEvent::Qr { code, ttl } => (WireEvent::Qr { code, ttl_ms: ms(ttl) }, None),
        DriverEvent::PairCode { code, ttl } => (WireEvent::PairCode { code, ttl_ms: ms(ttl) }, None),
        DriverEvent::Paired { jid } => (WireEvent::Paired { jid }, None),
        DriverEvent::Connected => (WireEvent::Connected, None),
        DriverEvent::Disconnected { reason } => (WireEvent::Disconnected { reason }, None),
        DriverEvent::Messages { messages, ack } => (WireEvent::Messages { messages }, ack),
        DriverEvent::Receipt { wa_ids, kind } => (WireEvent::Receipt { wa_ids, kind }, None),
        DriverEvent::LidMapping { lid, phone, ack } => (WireEvent::LidMapping { lid, phone }, ack),
        DriverEvent::Stopped(reason) => (WireEvent::Stopped { reason }, None),
        DriverEvent::Group(_) => return None,
        DriverEvent::ChatState { ack, .. } | DriverEvent::ContactName { ack, .. } => {
            if let Some(ack) = ack {
                ack.send(false);
            }
            return None;
        }
    })
}

/// The driver of a gateway whose sessions live on a shared simulated network.
pub struct RemoteNetwork {
    db: Db,
    addr: String,
}

impl RemoteNetwork {
    /// Sessions on the network served at `addr` (`host:port`); paired devices are
    /// remembered in `db`, which the network shares.
    pub fn new(db: Db, addr: String) -> RemoteNetwork {
        RemoteNetwork { db, addr }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, WireError>>>>>;

#[async_trait]
impl Driver for RemoteNetwork {
    async fn open(
        &self,
        device: DeviceKey,
        events: mpsc::Sender<DriverEvent>,
    ) -> Result<Arc<dyn Session>, DriverError> {
        let unreachable = |e: String| {
            DriverError::Failed(format!("cannot reach the simulator network at {}: {e}", self.addr))
        };
        let stream = tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (out, _writer) = spawn_writer::<Up>(write);
        let open = Up::Open { device_id: device.device_id, tenant_id: device.tenant_id, phone: device.phone };
        out.send(open).map_err(|_| unreachable("the connection closed".into()))?;
        let pending: Pending = Arc::default();
        let ended = CancellationToken::new();
        tokio::spawn(relay(
            BufReader::new(read).lines(),
            out.clone(),
            pending.clone(),
            events,
            ended.clone(),
        ));
        tokio::spawn(ping(out.clone(), ended.clone()));
        Ok(Arc::new(CarriedSession(ToNetwork { out, pending, next_call: AtomicU64::new(0), ended })))
    }

    async fn forget(&self, device_id: i64) -> Result<(), DriverError> {
        self.db.session_delete_all(device_id).await.map_err(super::failed)
    }

    async fn is_paired(&self, device_id: i64) -> Result<bool, DriverError> {
        self.db.session_exists(device_id).await.map_err(super::failed)
    }
}

async fn ping(out: mpsc::UnboundedSender<Up>, ended: CancellationToken) {
    let mut every = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            _ = ended.cancelled() => return,
            _ = every.tick() => if out.send(Up::Ping).is_err() { return },
        }
    }
}

/// Reads the network's lines: replies go to their callers, events to the gateway. Ends the
/// session with `Stopped` when the connection ends without one.
async fn relay(
    mut lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    out: mpsc::UnboundedSender<Up>,
    pending: Pending,
    events: mpsc::Sender<DriverEvent>,
    ended: CancellationToken,
) {
    let mut stopped = false;
    let mut closed_here = false;
    loop {
        let line = tokio::select! {
            _ = ended.cancelled() => {
                closed_here = true;
                break;
            }
            line = read_line::<Down>(&mut lines) => line,
        };
        let (event, ack) = match line {
            Ok(Some(Down::Reply { call, result })) => {
                if let Some(caller) = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&call) {
                    let _ = caller.send(result);
                }
                continue;
            }
            Ok(Some(Down::Event { event, ack })) => (event, ack),
            Ok(None) | Err(_) => break,
        };
        let ack = ack.map(|n| {
            let (ack, stored) = Ack::new();
            let out = out.clone();
            tokio::spawn(async move {
                let stored = stored.await.unwrap_or(false);
                let _ = out.send(Up::Ack { ack: n, stored });
            });
            ack
        });
        let event = match event {
            WireEvent::Qr { code, ttl_ms } => DriverEvent::Qr { code, ttl: Duration::from_millis(ttl_ms) },
            WireEvent::PairCode { code, ttl_ms } => {
                DriverEvent::PairCode { code, ttl: Duration::from_millis(ttl_ms) }
            }
            WireEvent::Paired { jid } => DriverEvent::Paired { jid },
            WireEvent::Connected => DriverEvent::Connected,
            WireEvent::Disconnected { reason } => DriverEvent::Disconnected { reason },
            WireEvent::Messages { messages } => DriverEvent::Messages { messages, ack },
            WireEvent::Receipt { wa_ids, kind } => DriverEvent::Receipt { wa_ids, kind },
            WireEvent::LidMapping { lid, phone } => DriverEvent::LidMapping { lid, phone, ack },
            WireEvent::Stopped { reason } => {
                stopped = true;
                DriverEvent::Stopped(reason)
            }
        };
        if events.send(event).await.is_err() || stopped {
            break;
        }
    }
    ended.cancel();
    pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
    if !stopped {
        // Like a local session: `Closed` after the gateway's own close, else a lost connection.
        let reason = if closed_here {
            StopReason::Closed
        } else {
            StopReason::ConnectionLost("the simulator network closed the connection".into())
        };
        let _ = events.send(DriverEvent::Stopped(reason)).await;
    }
}

/// Carries a gateway's session calls over its connection to the shared network.
struct ToNetwork {
    out: mpsc::UnboundedSender<Up>,
    pending: Pending,
    next_call: AtomicU64,
    ended: CancellationToken,
}

impl ToNetwork {
    async fn call(&self, op: Op) -> Result<Value, DriverError> {
        if self.ended.is_cancelled() {
            return Err(DriverError::NotConnected);
        }
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(call, tx);
        if self.out.send(Up::Call { call, op }).is_err() {
            return Err(DriverError::NotConnected);
        }
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(result)) => result.map_err(DriverError::from),
            // The connection ended before the answer.
            Ok(Err(_)) => Err(DriverError::NotConnected),
            Err(_) => Err(DriverError::Failed("the simulator network did not answer in time".into())),
        }
    }
}

#[async_trait]
impl Carrier for ToNetwork {
    async fn carry(&self, call: SessionCall) -> Result<Value, DriverError> {
        self.call(Op::Session { call: Box::new(call) }).await
    }

    async fn download(&self, kind: &str, source: &str) -> Result<Vec<u8>, DriverError> {
        let op = Op::Download { kind: kind.to_string(), source: source.to_string() };
        let Value::String(b64) = self.call(op).await? else {
            return Err(DriverError::Failed("the simulator network answered no bytes".into()));
        };
        base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| DriverError::Failed(e.to_string()))
    }

    async fn request_pair_code(&self, phone: &str) -> Result<String, DriverError> {
        match self.call(Op::PairCode { phone: phone.to_string() }).await? {
            Value::String(code) => Ok(code),
            _ => Err(DriverError::Failed("the simulator network answered no pair code".into())),
        }
    }

    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberCheck>, DriverError> {
        let value = self.call(Op::CheckNumbers { numbers: numbers.to_vec() }).await?;
        serde_json::from_value(value).map_err(|e| DriverError::Failed(e.to_string()))
    }

    async fn logout(&self) -> Result<(), DriverError> {
        self.call(Op::Logout).await.map(|_| ())
    }

    /// Waits until the network closed the session, so a device handed to another process is
    /// never open twice.
    async fn close(&self) {
        let _ = tokio::time::timeout(KEEPALIVE, self.call(Op::Close)).await;
        self.ended.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::driver::{Content, Outgoing};
    use crate::devices::simulator::SimTiming;

    use crate::devices::simulator::tests::{phone, world, World};

    /// A network served on a free port, over a database with two devices.
    async fn network() -> (Simulator, String, CancellationToken, World) {
        let world = world(2).await;
        let sim = Simulator::new(world.db.clone(), SimTiming::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = CancellationToken::new();
        tokio::spawn(serve(sim.clone(), listener, stop.clone()));
        (sim, addr, stop, world)
    }

    async fn next(events: &mut mpsc::Receiver<DriverEvent>) -> DriverEvent {
        tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event in time")
            .expect("open")
    }

    #[tokio::test]
    async fn a_session_pairs_sends_receives_and_closes_across_the_connection() {
        let (sim, addr, _stop, world) = network().await;
        let remote = RemoteNetwork::new(world.db.clone(), addr);
        let (tx, mut events) = mpsc::channel(16);
        let device = world.devices[0];
        let key = DeviceKey { device_id: device, tenant_id: 1, phone: phone(0), writes: Default::default() };
        let session = remote.open(key, tx).await.unwrap();
        assert!(matches!(next(&mut events).await, DriverEvent::Qr { .. }));
        sim.scan(device).await.unwrap();
        assert!(matches!(next(&mut events).await, DriverEvent::Paired { .. }));
        assert!(matches!(next(&mut events).await, DriverEvent::Connected));
        assert!(remote.is_paired(device).await.unwrap());

        session.send(&"6282222222222@s.whatsapp.net".into(), &Outgoing::text("hi"), "3EB0AA").await.unwrap();
        let outbox = sim.outbox(device);
        assert_eq!((outbox[0].id.as_str(), outbox[0].text.as_deref()), ("3EB0AA", Some("hi")));
        // Any kind but media, and the other session calls, go through the connection too.
        let poll = Outgoing::new(Content::Poll(crate::content::PollSpec {
            question: "q".into(),
            options: vec!["a".into(), "b".into()],
            multiple: false,
        }));
        session.send(&"6282222222222@s.whatsapp.net".into(), &poll, "3EB0AB").await.unwrap();
        assert_eq!(sim.outbox(device)[1].kind, "poll");
        let (group, _) =
            session.create_group("Toko", &["6282222222222@s.whatsapp.net".to_string()]).await.unwrap();
        assert_eq!(session.groups().await.unwrap()[0].jid, group.jid);
        let media = Outgoing::new(Content::Media(crate::devices::driver::OutboundMedia {
            kind: crate::devices::driver::MediaKind::Image,
            bytes: Arc::new(vec![1, 2, 3]),
            mime: "image/png".into(),
            filename: None,
            caption: None,
        }));
        let err = session.send(&"6282222222222@s.whatsapp.net".into(), &media, "3EB0AC").await.unwrap_err();
        assert!(err.to_string().contains("not carried"), "{err}");

        // An inbound message is acknowledged to the network only once the gateway says so.
        let inbound = {
            let sim = sim.clone();
            tokio::spawn(async move {
                let msg = super::super::SimInbound {
                    from: "6283333333333".into(),
                    text: Some("hello".into()),
                    ..Default::default()
                };
                sim.inbound(device, msg).await
            })
        };
        let DriverEvent::Messages { messages, ack: Some(ack) } = next(&mut events).await else {
            panic!("a message with an ack")
        };
        assert_eq!(messages[0].text.as_deref(), Some("hello"));
        ack.send(true);
        assert!(inbound.await.unwrap().is_ok());

        session.close().await;
        assert!(!sim.is_connected(device));
        assert_eq!(sim.sessions(device).replaced, 0);
    }

    #[tokio::test]
    async fn a_dropped_connection_ends_the_session_on_both_sides() {
        let (sim, addr, stop, world) = network().await;
        let device = world.devices[1];
        let jid = format!("{}@s.whatsapp.net", phone(1));
        world.db.session_put(device, super::super::JID_KEY, jid.as_bytes()).await.unwrap();
        let remote = RemoteNetwork::new(world.db.clone(), addr);
        let (tx, mut events) = mpsc::channel(16);
        let key = DeviceKey { device_id: device, tenant_id: 1, phone: phone(1), writes: Default::default() };
        let _session = remote.open(key, tx).await.unwrap();
        assert!(matches!(next(&mut events).await, DriverEvent::Connected));
        stop.cancel();
        match next(&mut events).await {
            DriverEvent::Stopped(StopReason::ConnectionLost(_)) => {}
            other => panic!("expected a lost connection, got {other:?}"),
        }
        assert!(!sim.is_connected(device));
    }

    #[tokio::test]
    async fn a_silent_gateway_is_dropped_after_the_keepalive() {
        let (sim, addr, _stop, world) = network().await;
        let device = world.devices[0];
        let jid = format!("{}@s.whatsapp.net", phone(0));
        world.db.session_put(device, super::super::JID_KEY, jid.as_bytes()).await.unwrap();
        // A client that opens a session and then says nothing, like a frozen process.
        let stream = TcpStream::connect(&addr).await.unwrap();
        let (read, mut write) = stream.into_split();
        let open = Up::Open { device_id: device, tenant_id: 1, phone: phone(0) };
        write_line(&mut write, &open).await.unwrap();
        let mut lines = BufReader::new(read).lines();
        let started = Instant::now();
        let mut connected = false;
        // Events arrive (it connects), then the network closes the connection.
        while let Some(down) = read_line::<Down>(&mut lines).await.unwrap() {
            connected |= matches!(down, Down::Event { event: WireEvent::Connected, .. });
        }
        assert!(connected, "the session connected before it went silent");
        assert!(started.elapsed() >= KEEPALIVE - Duration::from_millis(100), "{:?}", started.elapsed());
        assert!(!sim.is_connected(device));
    }
}
