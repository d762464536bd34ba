//! What a plugin's `Store` holds: the limits it runs under, its log lines and its key-value
//! session, and the host side of the `log`, `clock` and `kv` imports, for every world version
//! (each version's bindings have their own traits and types; one implementation serves all).

use std::time::{Duration, Instant};

use super::bindings::{v0_1, v0_2, v0_3};
use super::http::{HttpError, HttpSession, OutOfTime, Request};
use super::priority::Demotion;
use super::LogLine;
use crate::plugins::kv::{KvError, KvSession};

/// Why a run was stopped before it finished. Raised as the guest's trap, recognised after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stopped {
    #[error("CPU deadline of {0} ms exceeded")]
    Cpu(u64),
    #[error("wall-clock timeout of {0} ms exceeded")]
    Wall(u64),
    #[error("memory limit of {0} bytes exceeded")]
    Memory(usize),
}

/// The run's store data.
pub struct HostState {
    pub limiter: Limiter,
    pub deadline: Deadline,
    /// Lowers the thread's priority once the run has been on the CPU for long.
    pub demotion: Demotion,
    pub logs: LogBuffer,
    pub kv: KvSession,
    /// Its outbound requests (world 0.3.0).
    pub http: HttpSession,
    /// Set when the run was stopped, even if the guest's trap is reported differently.
    pub stopped: Option<Stopped>,
}

/// Refuses memory growth past `memory_limit` by trapping, and remembers that it did: a guest
/// whose allocator handles the failure itself still ends up reported as `memory`.
pub struct Limiter {
    pub memory_limit: usize,
    pub refused: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.refused = true;
            return Err(wasmtime::Error::new(Stopped::Memory(self.memory_limit)));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        super::engine::MAX_CORE_INSTANCES as usize
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

/// The run's CPU deadline and wall-clock timeout, checked on every epoch tick.
pub struct Deadline {
    started: Instant,
    cpu_started: Option<Duration>,
    cpu_ms: u64,
    wall_ms: u64,
}

impl Deadline {
    /// Starts the clocks: call on the thread that runs the plugin.
    pub fn start(cpu_ms: u64, wall_ms: u64) -> Deadline {
        Deadline { started: Instant::now(), cpu_started: thread_cpu(), cpu_ms, wall_ms }
    }

    /// What is over, if anything.
    #[cfg(test)]
    pub fn check(&self) -> Option<Stopped> {
        self.check_cpu(self.cpu_used())
    }

    /// What is over, given the CPU time the run has used ([`Deadline::cpu_used`]).
    pub fn check_cpu(&self, cpu_used: Option<Duration>) -> Option<Stopped> {
        if cpu_used.is_some_and(|used| used > Duration::from_millis(self.cpu_ms)) {
            return Some(Stopped::Cpu(self.cpu_ms));
        }
        (self.started.elapsed() > Duration::from_millis(self.wall_ms)).then_some(Stopped::Wall(self.wall_ms))
    }

    /// CPU time the run's thread has used since the start; `None` where it cannot be told.
    pub fn cpu_used(&self) -> Option<Duration> {
        Some(thread_cpu()?.saturating_sub(self.cpu_started?))
    }

    /// Wall-clock time left, zero when over.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.wall_ms).saturating_sub(self.started.elapsed())
    }

    pub fn wall_ms(&self) -> u64 {
        self.wall_ms
    }
}

/// CPU time used by the current thread; `None` where the platform cannot tell (then only the
/// wall-clock timeout applies).
fn thread_cpu() -> Option<Duration> {
    cpu_time::ThreadTime::try_now().ok().map(|t| t.as_duration())
}

/// Log lines kept for the run: at most `max_lines`, each cut to `max_bytes`.
pub struct LogBuffer {
    lines: Vec<LogLine>,
    dropped: usize,
    max_lines: usize,
    max_bytes: usize,
}

impl LogBuffer {
    pub fn new(max_lines: usize, max_bytes: usize) -> LogBuffer {
        LogBuffer { lines: Vec::new(), dropped: 0, max_lines, max_bytes }
    }

    pub fn push(&mut self, level: &str, message: &str) {
        if self.lines.len() >= self.max_lines {
            self.dropped += 1;
            return;
        }
        let message = cut(message, self.max_bytes).to_string();
        self.lines.push(LogLine { level: level.to_string(), message });
    }

    /// The kept lines, then one line counting the dropped ones, if any.
    pub fn finish(mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            let s = if self.dropped == 1 { "" } else { "s" };
            self.lines.push(LogLine {
                level: "warn".into(),
                message: format!("{} more log line{s} dropped (limit {})", self.dropped, self.max_lines),
            });
        }
        self.lines
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl HostState {
    fn log_line(&mut self, level: &str, message: &str) {
        self.logs.push(level, message);
    }

    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// `kv.get`: a store that does not answer before the run's wall-clock deadline stops the
    /// run (the guest traps with [`Stopped::Wall`]).
    fn kv_get(&mut self, key: &str) -> wasmtime::Result<Result<Option<Vec<u8>>, KvError>> {
        let remaining = self.deadline.remaining();
        match self.kv.get(key, remaining) {
            Ok(value) => Ok(Ok(value)),
            Err(KvError::TimedOut) => {
                let stopped = Stopped::Wall(self.deadline.wall_ms());
                self.stopped = Some(stopped);
                Err(wasmtime::Error::new(stopped))
            }
            Err(err) => Ok(Err(err)),
        }
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        let remaining = self.deadline.remaining();
        self.kv.set(key, value, remaining)
    }

    fn kv_delete(&mut self, key: String) -> Result<(), KvError> {
        let remaining = self.deadline.remaining();
        self.kv.delete(key, remaining)
    }
}

/// The host side of one world version's `types`, `log`, `clock` and `kv` interfaces, over the
/// [`HostState`] methods above. The interfaces are the same in every version; only the
/// generated traits and types differ.
macro_rules! host_interfaces {
    ($version:ident) => {
        impl $version::wa_gateway::plugin::log::Host for HostState {
            fn log(&mut self, level: $version::wa_gateway::plugin::log::Level, message: String) {
                use $version::wa_gateway::plugin::log::Level;
                let level = match level {
                    Level::Debug => "debug",
                    Level::Info => "info",
                    Level::Warn => "warn",
                    Level::Error => "error",
                };
                self.log_line(level, &message);
            }
        }

        impl $version::wa_gateway::plugin::clock::Host for HostState {
            fn now_ms(&mut self) -> i64 {
                HostState::now_ms(self)
            }
        }

        impl $version::wa_gateway::plugin::kv::Host for HostState {
            fn get(
                &mut self,
                key: String,
            ) -> wasmtime::Result<Result<Option<Vec<u8>>, $version::wa_gateway::plugin::kv::KvError>> {
                Ok(self.kv_get(&key)?.map_err(Into::into))
            }

            fn set(
                &mut self,
                key: String,
                value: Vec<u8>,
            ) -> Result<(), $version::wa_gateway::plugin::kv::KvError> {
                self.kv_set(key, value).map_err(Into::into)
            }

            fn delete(&mut self, key: String) -> Result<(), $version::wa_gateway::plugin::kv::KvError> {
                self.kv_delete(key).map_err(Into::into)
            }
        }

        impl From<KvError> for $version::wa_gateway::plugin::kv::KvError {
            fn from(err: KvError) -> Self {
                use $version::wa_gateway::plugin::kv::KvError as Wit;
                match err {
                    KvError::InvalidKey(m) => Wit::InvalidKey(m),
                    KvError::QuotaExceeded(m) => Wit::QuotaExceeded(m),
                    KvError::Unavailable(m) => Wit::Unavailable(m),
                    KvError::TimedOut => Wit::Unavailable("the store did not answer in time".into()),
                }
            }
        }
    };
}

host_interfaces!(v0_1);
host_interfaces!(v0_2);
host_interfaces!(v0_3);

// `types` has no functions. 0.3.0's `types` are 0.2.0's (see `bindings`): one impl serves both.
impl v0_1::wa_gateway::plugin::types::Host for HostState {}
impl v0_2::wa_gateway::plugin::types::Host for HostState {}

impl v0_3::wa_gateway::plugin::http::Host for HostState {
    /// A request that runs past the run's wall-clock deadline stops the run (the guest traps
    /// with [`Stopped::Wall`]); every other failure is the guest's typed error.
    fn send(
        &mut self,
        request: v0_3::wa_gateway::plugin::http::Request,
    ) -> wasmtime::Result<
        Result<v0_3::wa_gateway::plugin::http::Response, v0_3::wa_gateway::plugin::http::HttpError>,
    > {
        use v0_3::wa_gateway::plugin::http as wit;
        let request = Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        let remaining = self.deadline.remaining();
        match self.http.send(request, remaining) {
            Ok(Ok(r)) => Ok(Ok(wit::Response { status: r.status, headers: r.headers, body: r.body })),
            Ok(Err(e)) => Ok(Err(match e {
                HttpError::HostNotAllowed(m) => wit::HttpError::HostNotAllowed(m),
                HttpError::AddressNotAllowed(m) => wit::HttpError::AddressNotAllowed(m),
                HttpError::InvalidRequest(m) => wit::HttpError::InvalidRequest(m),
                HttpError::TooManyRequests(m) => wit::HttpError::TooManyRequests(m),
                HttpError::Timeout(m) => wit::HttpError::Timeout(m),
                HttpError::ResponseTooLarge(m) => wit::HttpError::ResponseTooLarge(m),
                HttpError::Failed(m) => wit::HttpError::Failed(m),
            })),
            Err(OutOfTime) => {
                let stopped = Stopped::Wall(self.deadline.wall_ms());
                self.stopped = Some(stopped);
                Err(wasmtime::Error::new(stopped))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_whole_characters() {
        assert_eq!(cut("halo", 10), "halo");
        assert_eq!(cut("halo", 2), "ha");
        // "é" is two bytes: cutting inside it drops it whole.
        assert_eq!(cut("caé", 3), "ca");
        assert_eq!(cut("caé", 4), "caé");
        assert_eq!(cut("", 0), "");
    }

    #[test]
    fn log_lines_past_the_limit_are_counted_not_kept() {
        let mut logs = LogBuffer::new(2, 4);
        logs.push("info", "one line");
        logs.push("warn", "two");
        logs.push("info", "three");
        logs.push("info", "four");
        let lines = logs.finish();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].message, "one ");
        assert_eq!(lines[1].level, "warn");
        assert_eq!(lines[2].message, "2 more log lines dropped (limit 2)");
    }

    #[test]
    fn the_limiter_refuses_growth_past_the_limit_and_remembers() {
        use wasmtime::ResourceLimiter;
        let mut limiter = Limiter { memory_limit: 1 << 20, refused: false };
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.refused);
        let err = limiter.memory_growing(1 << 20, 2 << 20, None).unwrap_err();
        assert_eq!(err.downcast_ref::<Stopped>(), Some(&Stopped::Memory(1 << 20)));
        assert!(limiter.refused);
    }

    #[test]
    fn a_deadline_is_over_when_the_wall_clock_passes_it() {
        let deadline = Deadline::start(1_000, 0);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(deadline.check(), Some(Stopped::Wall(0)));
        assert_eq!(deadline.remaining(), Duration::ZERO);
        let deadline = Deadline::start(1_000, 10_000);
        assert_eq!(deadline.check(), None);
    }

    #[test]
    fn a_deadline_is_over_when_the_thread_has_used_its_cpu() {
        let deadline = Deadline::start(5, 10_000);
        let spin = Instant::now();
        let mut x = 0u64;
        while deadline.check().is_none() && spin.elapsed() < Duration::from_secs(5) {
            x = x.wrapping_mul(31).wrapping_add(7);
            std::hint::black_box(x);
        }
        assert_eq!(deadline.check(), Some(Stopped::Cpu(5)));
    }
}
