//! The load generator: a minimal HTTP/1.1 client on keep-alive connections, and a closed loop
//! of a fixed number of connections, each sending its next request when the last one answered.
//!
//! Hand-written rather than reqwest or hyper's pooled client: the generator shares the
//! machine's two cores with the server it measures, so every microsecond it spends per request
//! is taken from the server. It writes prepared request bytes and reads the answer by its
//! `content-length` (or chunks), which is all `wrk` does too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::procs::{Cpu, Probe};

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// No complete answer within the timeout; the connection is dropped.
    Timeout,
    /// The connection failed or the answer was not HTTP; the connection is dropped.
    Error,
}

impl Outcome {
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Status(s) if (200..300).contains(&s))
    }
}

/// One keep-alive connection, opened on first use and again after a failure.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None, buf: Vec::with_capacity(64 * 1024) }
    }

    /// Sends the complete request bytes and reads the answer.
    pub async fn call(&mut self, request: &[u8], timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(Ok(status)) => Outcome::Status(status),
            Ok(Err(_)) => {
                self.stream = None;
                Outcome::Error
            }
            Err(_) => {
                self.stream = None;
                Outcome::Timeout
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let Conn { stream, buf, .. } = self;
        let stream = stream.as_mut().expect("connected above");
        stream.write_all(request).await?;
        buf.clear();
        let head_end = loop {
            if let Some(at) = find(buf, b"\r\n\r\n") {
                break at + 4;
            }
            read_more(stream, buf).await?;
        };
        let head = parse_head(&buf[..head_end]).ok_or_else(|| bad("not an HTTP/1.1 answer"))?;
        let body_end = match head.length {
            Some(len) => {
                while buf.len() < head_end + len {
                    read_more(stream, buf).await?;
                }
                head_end + len
            }
            None if head.chunked => loop {
                if let Some(len) = chunked_end(&buf[head_end..]) {
                    break head_end + len;
                }
                read_more(stream, buf).await?;
            },
            // No length and not chunked: only bodiless answers are expected here.
            None => head_end,
        };
        // Nothing is pipelined: the answer ends where its body does.
        debug_assert!(buf.len() <= body_end);
        if head.close {
            self.stream = None;
        }
        Ok(head.status)
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(buf.capacity().max(4096));
    }
    if stream.read_buf(buf).await? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    Ok(())
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
    close: bool,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let mut parsed = Head { status, length: None, chunked: false, close: false };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            parsed.close = value.eq_ignore_ascii_case("close");
        }
    }
    Some(parsed)
}

/// The length of a complete chunked body at the start of `body`, if it is complete.
fn chunked_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + find(&body[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&body[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers end with an empty line.
            let end = at + find(&body[at..], b"\r\n")?;
            return Some(end + 2);
        }
        at += size + 2;
        if at > body.len() {
            return None;
        }
    }
}

/// The bytes of one request. `headers` are added to `host`, and to `content-length` and
/// `content-type: application/json` when there is a body.
pub fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        out.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// How long a load runs: `warmup` unmeasured, then `duration` measured.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub duration: Duration,
}

/// Latencies in microseconds, sorted once.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn from_micros(mut samples: Vec<u32>) -> Latencies {
        samples.sort_unstable();
        Latencies(samples)
    }

    /// The `q` quantile (0..=1) as a duration; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.0.is_empty() {
            return None;
        }
        let i = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len()) - 1;
        Some(Duration::from_micros(u64::from(self.0[i])))
    }
}

/// What a measured window of load came to.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Successful (2xx) answers completed in the window.
    pub ok: u64,
    /// Answers with another status, and failed connections, in the window.
    pub errors: u64,
    pub timeouts: u64,
    pub latencies: Latencies,
    pub seconds: f64,
    /// CPU seconds the server (and its database) and this process used during the window.
    pub cpu: Cpu,
}

impl Measured {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

struct Tally {
    ok: u64,
    errors: u64,
    timeouts: u64,
    micros: Vec<u32>,
}

/// Runs `connections` connections in a closed loop on the same request for the window and
/// measures the requests that completed inside it (and the CPU `probe` reads over it).
///
/// The connections run on one thread of their own (a current-thread runtime), as `wrk -t1`
/// would: on a small machine the generator then leaves the other cores to the server.
pub async fn closed_loop(
    addr: SocketAddr,
    connections: usize,
    request: Vec<u8>,
    window: Window,
    timeout: Duration,
    probe: Probe,
) -> Measured {
    let request = Arc::new(request);
    let start = Instant::now();
    let from = start + window.warmup;
    let until = from + window.duration;
    let generator = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let mut workers = Vec::with_capacity(connections);
            for _ in 0..connections {
                let request = request.clone();
                workers.push(tokio::spawn(async move {
                    let mut conn = Conn::new(addr);
                    let mut tally =
                        Tally { ok: 0, errors: 0, timeouts: 0, micros: Vec::with_capacity(64 * 1024) };
                    while Instant::now() < until {
                        let sent = Instant::now();
                        let outcome = conn.call(&request, timeout).await;
                        let done = Instant::now();
                        if done < from || done > until {
                            continue;
                        }
                        match outcome {
                            o if o.is_success() => {
                                tally.ok += 1;
                                tally.micros.push(micros(done - sent));
                            }
                            Outcome::Timeout => tally.timeouts += 1,
                            _ => tally.errors += 1,
                        }
                    }
                    tally
                }));
            }
            let mut total = Tally { ok: 0, errors: 0, timeouts: 0, micros: Vec::new() };
            for worker in workers {
                if let Ok(t) = worker.await {
                    total.ok += t.ok;
                    total.errors += t.errors;
                    total.timeouts += t.timeouts;
                    total.micros.extend(t.micros);
                }
            }
            total
        })
    });
    tokio::time::sleep_until(from.into()).await;
    let (cpu0, t0) = (probe.sample(), Instant::now());
    tokio::time::sleep_until(until.into()).await;
    let (cpu1, t1) = (probe.sample(), Instant::now());
    let total = tokio::task::spawn_blocking(move || generator.join())
        .await
        .expect("the generator thread is joined")
        .expect("the generator did not panic");
    Measured {
        ok: total.ok,
        errors: total.errors,
        timeouts: total.timeouts,
        latencies: Latencies::from_micros(total.micros),
        seconds: (t1 - t0).as_secs_f64(),
        cpu: cpu1 - cpu0,
    }
}

pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
