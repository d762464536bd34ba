//! Admission of plugin runs: a failing plugin stops at its failure limit however many messages
//! arrive at once, and one tenant's runs cannot take every CPU from the others.
//!
//! - **Per plugin**, a [`Gate`] counts runs in flight next to the plugin's recorded failures in
//!   a row. A run starts only while `failures + in flight < disable_after_failures`: every run
//!   in flight might fail, so a burst of messages into a trapping plugin runs it exactly that
//!   many times and the rest find it disabled. A run that succeeds clears the failures and lets
//!   the next ones in. Messages whose pipeline read the plugin list before it was disabled find
//!   the gate closed. A gate belongs to one generation of the plugin row (its `updated_at`):
//!   re-enabling it makes a fresh one.
//! - **Per tenant**, at most `[plugins] tenant_concurrency` runs execute at once (by default
//!   half the CPUs, so one tenant's plugins leave the other half to everyone else). Further runs
//!   wait up to `[plugins] queue_timeout_ms` for a turn and are then skipped with outcome
//!   `busy`, which is not the plugin's fault and does not count as a failure. A run waiting on
//!   an HTTP request gives its turn back meanwhile ([`Turn::pause`]), so a plugin calling a
//!   slow server holds up no other run; at most `[plugins] http_concurrency` runs of a tenant
//!   wait that way at once (a run past that keeps its turn while it waits), which bounds the
//!   instances one tenant holds.
//!
//! Both are per process (as the failure limit's count of runs in flight is).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The run-in-flight accounting of one plugin generation.
#[derive(Debug)]
pub struct Gate {
    generation: i64,
    state: Mutex<GateState>,
    changed: Notify,
}

#[derive(Debug, Clone, Copy)]
struct GateState {
    failures: i64,
    in_flight: i64,
    disabled: bool,
    /// The run count of the latest tally applied: runs that end together may report out of
    /// order, and an older tally (fewer failures) must not reopen the gate.
    seen: i64,
}

/// A run admitted through a [`Gate`]; [`Admission::finish`] (or dropping it) ends it.
pub struct Admission {
    gate: Arc<Gate>,
    done: bool,
}

impl Admission {
    /// Ends the run with the plugin's failure count after it and its run count (from the
    /// run's record), and whether the plugin is now disabled.
    pub fn finish(mut self, failures: i64, runs: i64, disabled: bool) {
        self.end(Some((failures, runs, disabled)));
    }

    fn end(&mut self, result: Option<(i64, i64, bool)>) {
        if self.done {
            return;
        }
        self.done = true;
        {
            let mut state = self.gate.lock();
            state.in_flight -= 1;
            if let Some((failures, runs, disabled)) = result {
                if runs > state.seen {
                    state.failures = failures;
                    state.seen = runs;
                }
                state.disabled |= disabled;
            }
        }
        self.gate.changed.notify_waiters();
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // A run that ended without a record (cancelled): only its place is given back.
        self.end(None);
    }
}

impl Gate {
    fn new(generation: i64, failures: i64) -> Gate {
        Gate {
            generation,
            state: Mutex::new(GateState { failures, in_flight: 0, disabled: false, seen: 0 }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a run may start (`Some`), or the plugin is disabled (`None`).
    pub async fn admit(self: &Arc<Self>, limit: i64) -> Option<Admission> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                let limit = limit.max(1);
                if state.disabled || state.failures >= limit {
                    return None;
                }
                if state.failures + state.in_flight < limit {
                    state.in_flight += 1;
                    return Some(Admission { gate: self.clone(), done: false });
                }
            }
            changed.await;
        }
    }
}

/// The gates of every plugin and the run slots of every tenant.
pub struct Fairness {
    gates: Mutex<HashMap<i64, Arc<Gate>>>,
    tenants: Mutex<HashMap<i64, Arc<TenantTurns>>>,
    per_tenant: usize,
    waiting_per_tenant: usize,
    queue_timeout: Duration,
}

/// One tenant's run turns, and its places for runs waiting on I/O without a turn.
struct TenantTurns {
    running: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
}

/// A run's turn among its tenant's runs. Dropping it gives everything back.
pub struct Turn {
    turns: Arc<TenantTurns>,
    running: Option<OwnedSemaphorePermit>,
    waiting: Option<OwnedSemaphorePermit>,
}

impl Turn {
    /// The run is about to wait on I/O: give the turn back, if the tenant has a place for a
    /// waiting run free (otherwise the run keeps its turn while it waits).
    pub fn pause(&mut self) {
        if self.running.is_none() {
            return;
        }
        if let Ok(place) = self.turns.waiting.clone().try_acquire_owned() {
            self.waiting = Some(place);
            self.running = None;
        }
    }

    /// The wait is over: take a turn again, waiting at most `within`. False when none came free
    /// in time (the run is out of time).
    pub async fn resume(&mut self, within: Duration) -> bool {
        if self.running.is_some() {
            return true;
        }
        match tokio::time::timeout(within, self.turns.running.clone().acquire_owned()).await {
            Ok(Ok(permit)) => {
                self.running = Some(permit);
                self.waiting = None;
                true
            }
            _ => false,
        }
    }
}

impl Fairness {
    pub fn new(per_tenant: usize, waiting_per_tenant: usize, queue_timeout: Duration) -> Fairness {
        Fairness {
            gates: Mutex::new(HashMap::new()),
            tenants: Mutex::new(HashMap::new()),
            per_tenant: per_tenant.max(1),
            waiting_per_tenant,
            queue_timeout,
        }
    }

    /// The gate of a plugin as read in a row of generation `updated_at` with `failures`. A
    /// row newer than the gate (the plugin was edited or enabled again) starts a fresh gate.
    pub fn gate(&self, plugin_id: i64, updated_at: i64, failures: i64) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if gates.len() > 10_000 {
            gates.retain(|_, g| g.lock().in_flight > 0);
        }
        let gate = gates.entry(plugin_id).or_insert_with(|| Arc::new(Gate::new(updated_at, failures)));
        if gate.generation < updated_at {
            let fresh = Arc::new(Gate::new(updated_at, failures));
            // Whoever waits at the old gate looks again (and finds it as it was).
            gate.changed.notify_waiters();
            *gate = fresh;
        }
        gate.clone()
    }

    /// Forgets a deleted plugin's gate.
    pub fn forget(&self, plugin_id: i64) {
        self.gates.lock().unwrap_or_else(|e| e.into_inner()).remove(&plugin_id);
    }

    /// A turn among the tenant's runs, or `None` when none came free within the queue timeout.
    pub async fn turn(&self, tenant: i64) -> Option<Turn> {
        let turns = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            if tenants.len() > 10_000 {
                let (full, waiting) = (self.per_tenant, self.waiting_per_tenant);
                tenants.retain(|_, t| {
                    t.running.available_permits() < full || t.waiting.available_permits() < waiting
                });
            }
            tenants
                .entry(tenant)
                .or_insert_with(|| {
                    Arc::new(TenantTurns {
                        running: Arc::new(Semaphore::new(self.per_tenant)),
                        waiting: Arc::new(Semaphore::new(self.waiting_per_tenant)),
                    })
                })
                .clone()
        };
        let running = tokio::time::timeout(self.queue_timeout, turns.running.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        Some(Turn { turns, running: Some(running), waiting: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[tokio::test]
    async fn a_burst_into_a_failing_plugin_runs_it_exactly_limit_times() {
        let fairness = Arc::new(Fairness::new(8, 8, Duration::from_secs(5)));
        let runs = Arc::new(AtomicI64::new(0));
        // The "database": failures in a row, disabled at 5.
        let failures = Arc::new(AtomicI64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (fairness, runs, failures) = (fairness.clone(), runs.clone(), failures.clone());
            tasks.push(tokio::spawn(async move {
                let gate = fairness.gate(1, 100, 0);
                let Some(admission) = gate.admit(5).await else { return };
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                let n = failures.fetch_add(1, Ordering::SeqCst) + 1;
                admission.finish(n, n, n >= 5);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn successes_keep_the_gate_open_and_a_new_generation_reopens_it() {
        let fairness = Fairness::new(8, 8, Duration::from_secs(5));
        let gate = fairness.gate(1, 100, 0);
        for run in 1..=20 {
            gate.admit(5).await.expect("a healthy plugin always runs").finish(0, run, false);
        }
        for n in 1..=5 {
            gate.admit(5).await.expect("under the limit").finish(n, 20 + n, n == 5);
        }
        assert!(gate.admit(5).await.is_none(), "disabled");
        assert!(fairness.gate(1, 100, 5).admit(5).await.is_none(), "a stale row finds it closed");
        let enabled_again = fairness.gate(1, 200, 0);
        assert!(enabled_again.admit(5).await.is_some(), "enabled again: a fresh gate");
    }

    #[tokio::test]
    async fn a_tally_that_arrives_late_does_not_reopen_the_gate() {
        let fairness = Fairness::new(8, 8, Duration::from_secs(5));
        let gate = fairness.gate(1, 100, 0);
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(gate.admit(5).await.expect("under the limit"));
        }
        // The database counted failures 1 to 4 in this order, but the runs end 1, 2, 4, 3.
        for (failures, run) in [(1, 1), (2, 2), (4, 4), (3, 3)] {
            runs.remove(0).finish(failures, run, false);
        }
        // 4 failures and one run in flight: no room until that run ends.
        let sixth = tokio::time::timeout(Duration::from_millis(20), gate.admit(5)).await;
        assert!(sixth.is_err(), "a sixth run was admitted");
        runs.remove(0).finish(5, 5, true);
        assert!(gate.admit(5).await.is_none(), "disabled");
    }

    #[tokio::test]
    async fn a_tenant_gets_at_most_its_share_of_runs_and_waits_no_longer_than_the_timeout() {
        let fairness = Fairness::new(2, 1, Duration::from_millis(50));
        let a = fairness.turn(1).await.unwrap();
        let _b = fairness.turn(1).await.unwrap();
        assert!(fairness.turn(1).await.is_none(), "busy");
        assert!(fairness.turn(2).await.is_some(), "another tenant has its own turns");
        drop(a);
        assert!(fairness.turn(1).await.is_some());
    }

    #[tokio::test]
    async fn a_run_waiting_on_io_gives_its_turn_back_while_there_is_a_waiting_place() {
        let fairness = Fairness::new(1, 1, Duration::from_millis(50));
        let mut first = fairness.turn(1).await.unwrap();
        assert!(fairness.turn(1).await.is_none(), "one turn, taken");
        first.pause();
        let mut second = fairness.turn(1).await.expect("the waiting run gave its turn back");
        // No waiting place left: the second run keeps its turn while it waits.
        second.pause();
        assert!(fairness.turn(1).await.is_none());
        assert!(!first.resume(Duration::from_millis(20)).await, "the turn is the second run's");
        drop(second);
        assert!(first.resume(Duration::from_millis(20)).await);
        assert!(fairness.turn(1).await.is_none(), "the first run runs again");
        first.pause();
        assert!(fairness.turn(1).await.is_some(), "its waiting place was given back on resume");
    }
}
