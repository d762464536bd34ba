//! Which devices this process runs: the node's lease renewal and the device balancer.
//!
//! Every `renew` the node's row is renewed on the database's clock. A process that cannot
//! renew for `deadline` (measured from the start of its last good renewal, on its own
//! monotonic clock) stops every session: the others may take its devices only at `ttl`, so the
//! two never run one device at once. A process told that it was declared dead stops its
//! sessions and joins again under a new id.
//!
//! Every `scan` (and at once when another process gives a device up) the balancer stops the
//! sessions whose lease moved elsewhere, takes devices nobody live holds up to its fair share
//! of the paired devices over the live processes, and, when it holds more than its share (a
//! process joined), hands at most `handover_batch` of them over per scan, so a joining process
//! gets its share gradually. On a graceful stop the node is marked draining (the others stop
//! counting it), every session closes and gives its lease up, then the node leaves: the others
//! take its devices within one scan.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::manager::DeviceManager;
use crate::cluster::{Node, Signal, Stats};
use crate::db::cluster::fair_share;
use crate::db::DbResult;

/// How often old cluster rows and commands are deleted.
const TIDY_EVERY: Duration = Duration::from_secs(60);

/// How long a handed-over session may take to close before the balancer moves on.
const HANDOVER_WAIT: Duration = Duration::from_secs(10);

/// Runs the node's renewal and the balancer.
pub struct Balancer {
    manager: DeviceManager,
    node: Node,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Balancer {
    /// Registers this process, starts listening to the others, takes its first devices and
    /// starts the renewal and balancing loop. Returns how many device sessions it started.
    pub async fn start(
        manager: DeviceManager,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> DbResult<usize> {
        let node = manager.node().clone();
        let id = node.register().await?;
        tracing::info!(node = %id, name = node.name(), "joined the gateway cluster");
        node.bus().start(shutdown.clone(), &tasks);
        let balancer = Balancer { manager, node, shutdown, tasks: tasks.clone() };
        let started = balancer.scan().await?;
        tasks.spawn(async move { balancer.run().await });
        Ok(started)
    }

    async fn run(self) {
        let timing = self.node.timing();
        let mut signals = self.node.bus().subscribe();
        let mut renew = tokio::time::interval(timing.renew);
        let mut scan = tokio::time::interval(timing.scan);
        let mut tidy = tokio::time::interval(TIDY_EVERY);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fenced = false;
        loop {
            let look = tokio::select! {
                _ = renew.tick() => {
                    self.renew(&mut fenced).await;
                    false
                }
                _ = scan.tick() => true,
                _ = tidy.tick() => {
                    self.tidy().await;
                    false
                }
                signal = signals.recv() => matches!(
                    signal,
                    Ok(Signal::LeaseFree | Signal::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))
                ),
                _ = self.shutdown.cancelled() => break,
            };
            // The registration counts as the first good renewal.
            if !fenced && !self.node.within_deadline() {
                tracing::error!(
                    "cannot renew this process's lease in the database; stopping every WhatsApp session \
                     until it can (other processes may take the devices over)"
                );
                self.manager.stop_all();
                Stats::count(&self.node.stats().stopped_unrenewed);
                fenced = true;
            }
            if look && !fenced {
                if let Err(e) = self.scan().await {
                    tracing::warn!(error = %e, "cannot balance devices");
                }
            }
        }
        self.leave().await;
    }

    /// Renews the node; when it was declared dead, stops everything and joins again.
    async fn renew(&self, fenced: &mut bool) {
        let timing = self.node.timing();
        let began = Instant::now();
        let node = self.node.id();
        let renewed = tokio::time::timeout(timing.renew, self.node.renew()).await;
        match renewed {
            Ok(Ok(true)) => {
                self.node.renewed(began);
                if *fenced {
                    tracing::info!("renewed this process's lease again; taking devices back");
                    *fenced = false;
                }
            }
            Ok(Ok(false)) => {
                tracing::warn!(
                    node = %node,
                    "this process was declared dead (it could not renew in time); its devices may run \
                     elsewhere now: stopping its sessions and joining again"
                );
                self.manager.stop_all();
                match self.node.register().await {
                    Ok(id) => {
                        Stats::count(&self.node.stats().rejoined);
                        tracing::info!(node = %id, "joined the gateway cluster again");
                        *fenced = false;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot join the gateway cluster again");
                        *fenced = true;
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew this process's lease"),
            Err(_) => tracing::warn!("renewing this process's lease timed out"),
        }
    }

    /// One look at the devices: stop what moved elsewhere, take what nobody holds up to the
    /// fair share, hand extras over. Returns how many sessions it started.
    async fn scan(&self) -> DbResult<usize> {
        let db = self.node.db();
        let node = self.node.id();
        // What runs here first, then what the database says: a task that took its lease after
        // this snapshot is not judged by an older list.
        let running = self.manager.running();
        let held = db.cluster_held(&node).await?;
        let held_now: HashSet<(i64, i64)> = held.iter().map(|h| (h.device_id, h.epoch)).collect();
        for (device_id, fence) in &running {
            if let Some(f) = fence {
                if f.node != node || !held_now.contains(&(*device_id, f.epoch)) {
                    tracing::info!(device_id, "the device's lease moved elsewhere; stopping its session");
                    self.manager.stop(*device_id);
                }
            }
        }
        let nodes = db.cluster_live_nodes().await?.iter().filter(|n| !n.draining).count().max(1);
        let paired = usize::try_from(db.cluster_paired_count().await?).unwrap_or(0);
        let share = fair_share(paired, nodes);
        // Devices being handed over (their task was told to stop) no longer count as ours.
        let ours: Vec<i64> = held
            .iter()
            .filter(|h| h.paired && !self.manager.stopping(h.device_id))
            .map(|h| h.device_id)
            .collect();
        tracing::trace!(node = %node, nodes, paired, share, ours = ours.len(), "balancing devices");
        let mut started = 0;
        // Held here but without a task (stopped while this process could not renew, or a
        // session that ended): run them again.
        for &device_id in &ours {
            if !self.manager.has_task(device_id) {
                if let Some(row) = db.system_device(device_id).await? {
                    self.manager.start(&row);
                    started += 1;
                }
            }
        }
        if ours.len() < share {
            for device_id in db.cluster_unheld_devices((share - ours.len()) as i64).await? {
                if let Some(row) = db.system_device(device_id).await? {
                    self.manager.start(&row);
                    started += 1;
                }
            }
        } else if ours.len() > share && nodes > 1 {
            let extra = (ours.len() - share).min(self.node.timing().handover_batch);
            for &device_id in ours.iter().rev().take(extra) {
                tracing::info!(device_id, share, "handing a device over to another process");
                let manager = self.manager.clone();
                self.tasks.spawn(async move { manager.hand_over(device_id, HANDOVER_WAIT).await });
            }
        }
        Ok(started)
    }

    /// Deletes what nobody needs any more: rows of processes dead for long, and session
    /// commands finished or abandoned long ago.
    async fn tidy(&self) {
        let db = self.node.db();
        if let Err(e) = db.cluster_forget_dead(10 * ms(self.node.timing().ttl)).await {
            tracing::debug!(error = %e, "cannot forget dead processes");
        }
        if let Err(e) = db.forget_old_commands().await {
            tracing::debug!(error = %e, "cannot delete old device commands");
        }
    }

    /// A graceful stop: the node is marked draining, so the others count their fair shares
    /// without it from now on, the sessions close and give their leases up (the shutdown
    /// cancelled them), then the node leaves, so the others take the devices at their next
    /// scan.
    async fn leave(&self) {
        let node = self.node.id();
        if let Err(e) = self.node.db().cluster_set_draining(&node, true).await {
            tracing::debug!(error = %e, "could not mark this process as draining");
        }
        let deadline = Instant::now() + HANDOVER_WAIT;
        while self.manager.any_running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = self.node.db().cluster_leave(&node).await {
            tracing::warn!(error = %e, "could not leave the gateway cluster; the others take its devices when its lease expires");
        }
        self.node.bus().publish(Signal::LeaseFree).await;
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
