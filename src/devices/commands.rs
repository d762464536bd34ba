//! Session commands that reach the process running a device's session.
//!
//! Pairing codes, QR codes, logout, reset, number checks and every other call on a session
//! (`routed.rs`: reactions, read marks, presence, groups, contacts) need the device's live session,
//! which runs in exactly one process: the holder of its lease. Asked anywhere, a command runs
//! here when this process holds the device or nobody does (pairing a device takes its lease
//! here); otherwise it is stored in `device_commands`, the holder is woken through the
//! [`Bus`](crate::cluster::Bus) (and polls every scan, so a lost wake-up only delays it), takes
//! it under its lease's fence, runs it and stores the answer, which the asking process reads.
//! A logout or reset stored this way is done even when the asking request gave up waiting.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::driver::Session;
use super::driver::{DriverError, NumberCheck};
use super::manager::{DeviceError, DeviceManager, Offered};
use super::routed::{routed_session, SessionCall};
use crate::cluster::{Signal, Stats};
use crate::db::DeviceRow;

/// How long a request waits for another process to answer its command.
const ANSWER_WAIT: Duration = Duration::from_secs(20);
/// How often the asking process reads the command's state.
const ANSWER_POLL: Duration = Duration::from_millis(50);

/// What a process asks of the device's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Command {
    /// The current pairing QR code (a new pairing round when none runs).
    Qr,
    /// A code to link the phone `phone` by typing it.
    PairCode { phone: String },
    /// Unlink the device from the phone and clear its session.
    Logout,
    /// Log out, then start a fresh pairing round.
    Reset,
    /// Which of these numbers (digits) have WhatsApp.
    CheckNumbers { numbers: Vec<String> },
    /// Any other call on the live session.
    Session(Box<SessionCall>),
}

/// A command's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    Offered {
        code: String,
        expires_at: DateTime<Utc>,
    },
    Done,
    Numbers {
        checks: Vec<NumberCheck>,
    },
    /// What a [`Command::Session`] call answered.
    Value {
        value: serde_json::Value,
    },
}

impl Answer {
    /// The code a QR or pair-code command answered.
    pub fn offered(self) -> Result<Offered, DeviceError> {
        match self {
            Answer::Offered { code, expires_at } => Ok(Offered { code, expires_at }),
            other => Err(unexpected(&other)),
        }
    }

    /// The checks a number check answered.
    pub fn numbers(self) -> Result<Vec<NumberCheck>, DeviceError> {
        match self {
            Answer::Numbers { checks } => Ok(checks),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(answer: &Answer) -> DeviceError {
    DeviceError::Driver(DriverError::Failed(format!(
        "unexpected answer from the device's process: {answer:?}"
    )))
}

/// A command's failure as stored for the asking process: the error's kind and message.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Failure {
    kind: String,
    message: String,
}

impl From<&DeviceError> for Failure {
    fn from(e: &DeviceError) -> Self {
        let kind = match e {
            DeviceError::AlreadyConnected => "already_connected",
            DeviceError::NotConnected | DeviceError::Driver(DriverError::NotConnected) => "not_connected",
            DeviceError::NoQrYet => "no_qr_yet",
            DeviceError::OtherProcess => "other_process",
            DeviceError::Driver(DriverError::Invalid(_)) => "invalid",
            DeviceError::Driver(DriverError::NotFound(_)) => "not_found",
            DeviceError::Driver(DriverError::Forbidden(_)) => "forbidden",
            DeviceError::Driver(DriverError::Failed(_)) | DeviceError::Db(_) => "failed",
        };
        let message = match e {
            DeviceError::Driver(
                DriverError::Invalid(m)
                | DriverError::NotFound(m)
                | DriverError::Forbidden(m)
                | DriverError::Failed(m),
            ) => m.clone(),
            other => other.to_string(),
        };
        Failure { kind: kind.into(), message }
    }
}

impl From<Failure> for DeviceError {
    fn from(f: Failure) -> Self {
        match f.kind.as_str() {
            "already_connected" => DeviceError::AlreadyConnected,
            "not_connected" => DeviceError::NotConnected,
            "no_qr_yet" => DeviceError::NoQrYet,
            "other_process" => DeviceError::OtherProcess,
            "invalid" => DeviceError::Driver(DriverError::Invalid(f.message)),
            "not_found" => DeviceError::Driver(DriverError::NotFound(f.message)),
            "forbidden" => DeviceError::Driver(DriverError::Forbidden(f.message)),
            _ => DeviceError::Driver(DriverError::Failed(f.message)),
        }
    }
}

impl DeviceManager {
    /// Runs the command on the device's session wherever it runs, and answers.
    pub async fn command(&self, device: &DeviceRow, command: Command) -> Result<Answer, DeviceError> {
        if self.runs_elsewhere(device.id).await? {
            self.ask_holder(device.id, &command).await
        } else {
            self.execute(device, command).await
        }
    }

    /// Whether another live process holds the device.
    async fn runs_elsewhere(&self, device_id: i64) -> Result<bool, DeviceError> {
        if self.fence_of(device_id).is_some() {
            return Ok(false);
        }
        let holder = self.node().db().cluster_holder(device_id).await?;
        Ok(holder.is_some_and(|(node, _)| *node != *self.node().id()))
    }

    /// Runs the command here.
    async fn execute(&self, device: &DeviceRow, command: Command) -> Result<Answer, DeviceError> {
        let offered = |o: Offered| Answer::Offered { code: o.code, expires_at: o.expires_at };
        Ok(match command {
            Command::Qr => offered(self.qr(device).await?),
            Command::PairCode { phone } => offered(self.pair_code(device, &phone).await?),
            Command::Logout => {
                self.logout(device).await?;
                Answer::Done
            }
            Command::Reset => {
                self.reset(device).await?;
                Answer::Done
            }
            Command::CheckNumbers { numbers } => {
                let session = self.connected(device.id).ok_or(DeviceError::NotConnected)?;
                Answer::Numbers { checks: session.check_numbers(&numbers).await? }
            }
            Command::Session(call) => {
                let session = self.connected(device.id).ok_or(DeviceError::NotConnected)?;
                Answer::Value { value: call.run(session.as_ref()).await? }
            }
        })
    }

    /// The device's connected session wherever it runs: this process's own, or one whose calls
    /// run in the live process holding it. `None` when it is connected nowhere.
    pub async fn session(&self, device_id: i64) -> Option<std::sync::Arc<dyn Session>> {
        if let Some(session) = self.connected(device_id) {
            return Some(session);
        }
        let elsewhere = async {
            Ok::<_, DeviceError>(
                self.runs_elsewhere(device_id).await? && self.node().db().cluster_online(device_id).await?,
            )
        };
        match elsewhere.await {
            Ok(true) => Some(routed_session(self.clone(), device_id)),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(device_id, error = %e, "cannot tell where the device runs");
                None
            }
        }
    }

    /// Stores the command for the device's holder and waits for its answer.
    pub(super) async fn ask_holder(&self, device_id: i64, command: &Command) -> Result<Answer, DeviceError> {
        let db = self.node().db();
        let json = serde_json::to_string(command).expect("a command serializes");
        let id = db.insert_command(device_id, &json).await?;
        Stats::count(&self.node().stats().commands_sent);
        self.node().bus().publish(Signal::Command(device_id)).await;
        let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
        loop {
            tokio::time::sleep(ANSWER_POLL).await;
            let state = db.command_state(id).await?;
            match state.as_ref().map(|s| (s.status.as_str(), s.result.as_deref())) {
                Some(("done", Some(result))) => {
                    return serde_json::from_str(result).map_err(|e| {
                        DeviceError::Driver(DriverError::Failed(format!("unreadable answer: {e}")))
                    });
                }
                Some(("failed", Some(result))) => {
                    let failure: Failure = serde_json::from_str(result).unwrap_or(Failure {
                        kind: "failed".into(),
                        message: "the device's process failed".into(),
                    });
                    return Err(failure.into());
                }
                None => return Err(DeviceError::Driver(DriverError::NotFound("device".into()))),
                _ if tokio::time::Instant::now() >= deadline => return Err(DeviceError::OtherProcess),
                _ => {}
            }
        }
    }

    /// Runs the commands other processes store for the devices held here, and shows the
    /// device updates they share in this process's live views, until shutdown.
    pub fn serve_commands(&self, shutdown: CancellationToken, tasks: &TaskTracker) {
        let me = self.clone();
        let mut signals = self.node().bus().subscribe();
        let mut poll = tokio::time::interval(self.node().timing().scan);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let tasks_inner = tasks.clone();
        tasks.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let devices: Vec<i64> = tokio::select! {
                    signal = signals.recv() => match signal {
                        Ok(Signal::Command(device_id)) => vec![device_id],
                        Ok(Signal::Update(payload)) => {
                            me.receive_shared(&payload);
                            continue;
                        }
                        Ok(Signal::Resync) | Err(RecvError::Lagged(_)) => me.devices_with_commands().await,
                        Ok(_) => continue,
                        Err(RecvError::Closed) => break,
                    },
                    _ = poll.tick() => me.devices_with_commands().await,
                    _ = shutdown.cancelled() => break,
                };
                for device_id in devices.into_iter().filter(|d| me.fence_of(*d).is_some()) {
                    let me = me.clone();
                    tasks_inner.spawn(async move { me.run_commands(device_id).await });
                }
            }
        });
    }

    async fn devices_with_commands(&self) -> Vec<i64> {
        let node = self.node().id();
        self.node().db().devices_with_commands(&node).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot look for device commands");
            Vec::new()
        })
    }

    /// Takes and runs the device's pending commands, one after the other.
    async fn run_commands(&self, device_id: i64) {
        let db = self.node().db().clone();
        loop {
            let Some(fence) = self.fence_of(device_id) else { return };
            let taken = match db.take_command(device_id, &fence.node, fence.epoch).await {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(device_id, error = %e, "cannot take a device command");
                    return;
                }
            };
            Stats::count(&self.node().stats().commands_run);
            let outcome =
                match (serde_json::from_str::<Command>(&taken.command), db.system_device(device_id).await) {
                    (Ok(command), Ok(Some(device))) => self.execute(&device, command).await,
                    (Err(e), _) => {
                        Err(DeviceError::Driver(DriverError::Invalid(format!("unknown command: {e}"))))
                    }
                    (_, Ok(None)) => Err(DeviceError::Driver(DriverError::NotFound("device".into()))),
                    (_, Err(e)) => Err(e.into()),
                };
            let (ok, result) = match &outcome {
                Ok(answer) => (true, serde_json::to_string(answer)),
                Err(e) => (false, serde_json::to_string(&Failure::from(e))),
            };
            let result = result.unwrap_or_else(|_| "{}".into());
            if let Err(e) = db.finish_command(taken.id, ok, &result).await {
                tracing::warn!(device_id, error = %e, "cannot store a device command's answer");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Command, DeviceError, DriverError, Failure};

    #[test]
    fn commands_and_failures_survive_the_database() {
        for c in [
            Command::Qr,
            Command::PairCode { phone: "628123".into() },
            Command::Logout,
            Command::Reset,
            Command::CheckNumbers { numbers: vec!["62811".into()] },
        ] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), c, "{json}");
        }
        let back: DeviceError =
            Failure::from(&DeviceError::Driver(DriverError::Forbidden("admins only".into()))).into();
        assert!(matches!(back, DeviceError::Driver(DriverError::Forbidden(m)) if m == "admins only"));
        let back: DeviceError = Failure::from(&DeviceError::AlreadyConnected).into();
        assert!(matches!(back, DeviceError::AlreadyConnected));
    }
}
