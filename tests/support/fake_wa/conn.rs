//! One client connection: the in-process byte pipe the client sees as its transport, and the
//! server task on the other end (connection header, Noise handshake, then encrypted frames of
//! binary XML in both directions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::{mpsc, oneshot};
use whatsapp_rust::async_channel;
use whatsapp_rust::bytes::{Bytes, BytesMut};
use whatsapp_rust::transport::{DisconnectReason, Transport, TransportEvent};
use whatsapp_rust::wacore::framing::{encode_frame, FrameDecoder};
use whatsapp_rust::wacore::handshake::NoiseCipher;
use whatsapp_rust::wacore_binary::consts::WA_CONN_HEADER;
use whatsapp_rust::wacore_binary::{marshal, util::unpack, Node, OwnedNodeRef};

use super::handshake::{self, HandshakeKind, Step};
use super::FakeWhatsApp;

/// What reaches the server task of a connection.
pub(crate) enum Inbound {
    /// Bytes the client wrote.
    Data(Bytes),
    /// The client closed its transport, or the fake closed the connection.
    Closed,
}

/// What the fake knows about one connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub id: u64,
    /// The handshake it completed, `None` while it is still handshaking.
    pub handshake: Option<HandshakeKind>,
    /// The account's phone number once it logged in (or was paired on this connection).
    pub phone: Option<String>,
    pub device: Option<u16>,
    /// `<success>` was sent on it.
    pub logged_in: bool,
    /// Pairing refs pushed on it (unpaired clients).
    pub refs: Vec<String>,
    /// The client's static Noise key, known once the handshake completed.
    pub client_static: Option<[u8; 32]>,
    pub opened_at: Instant,
}

struct Outbound {
    cipher: NoiseCipher,
    counter: u32,
}

pub(crate) struct Conn {
    pub id: u64,
    to_client: async_channel::Sender<TransportEvent>,
    inbox: mpsc::UnboundedSender<Inbound>,
    out: Mutex<Option<Outbound>>,
    pub info: Mutex<ConnectionInfo>,
    /// Server-initiated IQs waiting for the client's answer, by id.
    pending: Mutex<HashMap<String, oneshot::Sender<Node>>>,
    /// The keys an unpaired client announced in its handshake.
    pub registration: Mutex<Option<super::signal::Bundle>>,
}

impl Conn {
    pub fn info(&self) -> ConnectionInfo {
        self.info.lock().unwrap().clone()
    }

    pub fn is_open(&self) -> bool {
        !self.to_client.is_closed()
    }

    /// Writes an unencrypted handshake frame.
    fn send_handshake_frame(&self, payload: &[u8]) -> Result<()> {
        let framed = encode_frame(payload, None)?;
        self.to_client
            .try_send(TransportEvent::DataReceived(Bytes::from(framed)))
            .map_err(|_| anyhow!("client side of connection {} is gone", self.id))
    }

    /// Encrypts and writes one stanza. Frames are numbered, so the lock spans the encryption
    /// and the write: two senders cannot reorder them.
    pub fn send_node(&self, node: &Node) -> Result<()> {
        let plain = marshal(node)?;
        let mut out = self.out.lock().unwrap();
        let out =
            out.as_mut().ok_or_else(|| anyhow!("connection {} has not finished its handshake", self.id))?;
        let sealed = out.cipher.encrypt_with_counter(out.counter, &plain)?;
        out.counter += 1;
        let framed = encode_frame(&sealed, None)?;
        self.to_client
            .try_send(TransportEvent::DataReceived(Bytes::from(framed)))
            .map_err(|_| anyhow!("client side of connection {} is gone", self.id))
    }

    /// Sends an IQ and returns a receiver for the client's answer (matched by id).
    pub fn request(&self, node: &Node) -> Result<oneshot::Receiver<Node>> {
        let id = attr(node, "id").ok_or_else(|| anyhow!("request without id"))?;
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.send_node(node)?;
        Ok(rx)
    }

    /// Closes the connection from the server side. `reason` is what the client's transport
    /// reports (an abrupt reset by default), `None` closes silently.
    pub fn close(&self, reason: Option<DisconnectReason>) {
        if let Some(reason) = reason {
            let _ = self.to_client.try_send(TransportEvent::Disconnected(reason));
        }
        self.to_client.close();
        let _ = self.inbox.send(Inbound::Closed);
    }
}

/// The client's end of a connection.
pub(crate) struct FakeTransport {
    conn: Arc<Conn>,
    inbox: mpsc::UnboundedSender<Inbound>,
}

#[whatsapp_rust::async_trait]
impl Transport for FakeTransport {
    async fn send(&self, data: Bytes) -> Result<()> {
        if !self.conn.is_open() {
            bail!("connection {} is closed", self.conn.id);
        }
        self.inbox.send(Inbound::Data(data)).map_err(|_| anyhow!("connection {} is closed", self.conn.id))
    }

    async fn disconnect(&self) {
        self.conn.to_client.close();
        let _ = self.inbox.send(Inbound::Closed);
    }
}

/// Opens a connection: returns the client's transport and event channel, and spawns the server
/// task.
pub(crate) fn open(
    fake: &Arc<FakeWhatsApp>,
    id: u64,
) -> (Arc<Conn>, Arc<dyn Transport>, async_channel::Receiver<TransportEvent>) {
    let (to_client, client_events) = async_channel::unbounded();
    let (inbox, inbox_rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn {
        id,
        to_client,
        inbox: inbox.clone(),
        out: Mutex::new(None),
        info: Mutex::new(ConnectionInfo {
            id,
            handshake: None,
            phone: None,
            device: None,
            logged_in: false,
            refs: Vec::new(),
            client_static: None,
            opened_at: Instant::now(),
        }),
        pending: Mutex::new(HashMap::new()),
        registration: Mutex::new(None),
    });
    let _ = conn.to_client.try_send(TransportEvent::Connected);
    let transport: Arc<dyn Transport> = Arc::new(FakeTransport { conn: conn.clone(), inbox });
    let task_fake = fake.clone();
    let task_conn = conn.clone();
    tokio::spawn(async move {
        let result = serve(&task_fake, &task_conn, inbox_rx).await;
        if let Err(e) = &result {
            task_fake.log(format!("connection {}: {e:#}", task_conn.id));
        }
        task_conn.to_client.close();
        task_fake.connection_closed(&task_conn);
    });
    (conn, transport, client_events)
}

/// Reassembles frames from the client's writes. The first write starts with the connection
/// header: `WA` plus two version bytes, optionally preceded by an edge-routing pre-intro
/// (`ED\0\1`, a 3-byte length, routing data).
struct FrameReader {
    header: Option<Vec<u8>>,
    decoder: FrameDecoder,
}

impl FrameReader {
    fn new() -> FrameReader {
        FrameReader { header: Some(Vec::new()), decoder: FrameDecoder::new() }
    }

    fn feed(&mut self, data: &[u8]) -> Result<()> {
        let Some(pre) = self.header.as_mut() else {
            self.decoder.feed(data);
            return Ok(());
        };
        pre.extend_from_slice(data);
        let mut start = 0;
        if pre.len() >= 4 && pre[..4] == *b"ED\x00\x01" {
            if pre.len() < 7 {
                return Ok(());
            }
            let len = (usize::from(pre[4]) << 16) | (usize::from(pre[5]) << 8) | usize::from(pre[6]);
            start = 7 + len;
        }
        if pre.len() < start + WA_CONN_HEADER.len() {
            return Ok(());
        }
        if pre[start..start + 2] != *b"WA" {
            bail!("connection does not start with the WA header");
        }
        let rest = pre[start + WA_CONN_HEADER.len()..].to_vec();
        self.header = None;
        self.decoder.feed(&rest);
        Ok(())
    }

    fn next_frame(&mut self) -> Option<BytesMut> {
        if self.header.is_some() {
            return None;
        }
        self.decoder.decode_frame()
    }
}

/// Waits for the next complete frame, `None` when the connection closed.
async fn read_frame(
    reader: &mut FrameReader,
    inbox: &mut mpsc::UnboundedReceiver<Inbound>,
) -> Result<Option<BytesMut>> {
    loop {
        if let Some(frame) = reader.next_frame() {
            return Ok(Some(frame));
        }
        match inbox.recv().await {
            Some(Inbound::Data(data)) => reader.feed(&data)?,
            Some(Inbound::Closed) | None => return Ok(None),
        }
    }
}

async fn serve(
    fake: &Arc<FakeWhatsApp>,
    conn: &Arc<Conn>,
    mut inbox: mpsc::UnboundedReceiver<Inbound>,
) -> Result<()> {
    let mut reader = FrameReader::new();
    let Some(hello) = read_frame(&mut reader, &mut inbox).await? else {
        return Ok(());
    };
    let hello = handshake::parse_client_hello(&hello)?;
    let keys = fake.server_keys();
    let established = match handshake::respond(&keys, &hello)? {
        Step::Done { server_hello, established } => {
            conn.send_handshake_frame(&server_hello)?;
            *established
        }
        Step::Continue { server_hello, state } => {
            conn.send_handshake_frame(&server_hello)?;
            let Some(finish) = read_frame(&mut reader, &mut inbox).await? else {
                return Ok(());
            };
            state.finish(&finish)?
        }
    };
    let read_cipher = established.read;
    let mut read_counter: u32 = 0;
    *conn.out.lock().unwrap() = Some(Outbound { cipher: established.write, counter: 0 });
    {
        let mut info = conn.info.lock().unwrap();
        info.handshake = Some(established.kind);
        info.client_static = Some(established.client_static);
    }
    fake.connection_established(conn, established.kind, &established.payload)?;

    loop {
        let Some(mut frame) = read_frame(&mut reader, &mut inbox).await? else {
            return Ok(());
        };
        read_cipher
            .decrypt_in_place_with_counter(read_counter, &mut frame)
            .map_err(|e| anyhow!("client frame {read_counter} does not decrypt: {e}"))?;
        read_counter += 1;
        let plain = unpack(&frame)?;
        let node = OwnedNodeRef::new(Bytes::copy_from_slice(&plain))
            .context("client sent a stanza that does not decode")?
            .to_owned_node();
        if is_answer(&node) {
            if let Some(id) = attr(&node, "id") {
                let waiter = conn.pending.lock().unwrap().remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(node);
                    continue;
                }
            }
        }
        fake.handle_stanza(conn, node).await;
    }
}

/// An IQ `result` or `error`: possibly the answer to something the fake asked.
fn is_answer(node: &Node) -> bool {
    node.tag == "iq" && matches!(attr(node, "type").as_deref(), Some("result") | Some("error"))
}

/// An attribute as a string (JID values rendered).
pub(crate) fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}
