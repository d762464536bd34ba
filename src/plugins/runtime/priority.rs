//! Long plugin runs step back: a run that has used more than `[plugins]
//! lower_priority_after_ms` of CPU lowers its thread's priority (nice [`DEMOTED_NICE`]) until
//! it ends.
//!
//! The per-tenant cap keeps one tenant's runs to part of the CPUs, but on a small machine that
//! part is still a whole core spinning next to the threads that serve everyone else (HTTP,
//! the database, other tenants' plugins). Each time the OS puts one of those on the busy core
//! it waits its turn behind the spinning plugin. A run that is past the threshold is not a
//! quick answer any more; lowered, it still uses a CPU nobody else wants, but any other
//! thread that becomes runnable takes the core at once. Well-behaved runs (micro- to a few
//! milliseconds) never reach the threshold and keep the normal priority.
//!
//! Raising a thread's nice value is always allowed; lowering it back needs `CAP_SYS_NICE` or
//! an `RLIMIT_NICE` that permits it. The thread is one of tokio's blocking threads, shared
//! with other work, so it must come back: [`supported`] checks once that this process can
//! restore a priority, and when it cannot, runs are never lowered (the cap alone applies).
//! Only Linux has per-thread nice values; elsewhere this does nothing.

use std::sync::OnceLock;
use std::time::Duration;

/// The nice value of a lowered run's thread: about a tenth of a normal thread's share of a
/// core when both want it, and preempted by a normal thread that wakes up.
pub const DEMOTED_NICE: i32 = 10;

/// Whether this process can lower a thread's priority and restore it (checked once, on a
/// scratch thread).
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        std::thread::spawn(|| {
            let Some(original) = imp::nice() else { return false };
            imp::set_nice(DEMOTED_NICE.max(original)) && imp::set_nice(original)
        })
        .join()
        .unwrap_or(false)
    })
}

/// The priority of the thread running one plugin run. Create it on that thread, feed it the
/// run's CPU time on each check, and [`Demotion::restore`] it on the same thread afterwards
/// (dropping it restores too).
#[derive(Debug)]
pub struct Demotion {
    /// CPU time after which the run is lowered; `None` once it was (or when it never is).
    after: Option<Duration>,
    /// The thread's nice value before it was lowered; `Some` while lowered.
    lowered_from: Option<i32>,
}

impl Demotion {
    /// Lowers the run after `after` of CPU time; never with `None` or where [`supported`] is
    /// false.
    pub fn new(after: Option<Duration>) -> Demotion {
        Demotion { after: after.filter(|_| supported()), lowered_from: None }
    }

    /// Lowers the current thread's priority once the run has used more than its threshold.
    pub fn observe(&mut self, cpu_used: Duration) {
        if self.after.is_none_or(|after| cpu_used <= after) {
            return;
        }
        if let Some(original) = imp::nice() {
            if original < DEMOTED_NICE && imp::set_nice(DEMOTED_NICE) {
                self.lowered_from = Some(original);
            }
        }
        // Lowered or not, do not try again in this run.
        self.after = None;
    }

    /// Whether the run's thread is lowered now.
    pub fn lowered(&self) -> bool {
        self.lowered_from.is_some()
    }

    /// Gives the thread its priority back.
    pub fn restore(&mut self) {
        if let Some(original) = self.lowered_from.take() {
            if !imp::set_nice(original) {
                tracing::error!(nice = DEMOTED_NICE, "a plugin thread's priority could not be restored");
            }
        }
    }
}

impl Drop for Demotion {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(target_os = "linux")]
mod imp {
    /// The calling thread's id (on Linux, `setpriority` with a thread id sets that thread's
    /// nice value only).
    fn tid() -> libc::id_t {
        // SAFETY: `gettid` takes no arguments and cannot fail.
        #[allow(unsafe_code)]
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        tid as libc::id_t
    }

    /// The calling thread's nice value.
    pub fn nice() -> Option<i32> {
        // SAFETY: `getpriority` reads the scheduler's value for a thread id; `-1` is a valid
        // answer, so errno is cleared first and checked after.
        #[allow(unsafe_code)]
        unsafe {
            *libc::__errno_location() = 0;
            let value = libc::getpriority(libc::PRIO_PROCESS, tid());
            (value != -1 || *libc::__errno_location() == 0).then_some(value)
        }
    }

    /// Sets the calling thread's nice value; false when not allowed.
    pub fn set_nice(value: i32) -> bool {
        // SAFETY: `setpriority` on the calling thread's own id changes only its nice value.
        #[allow(unsafe_code)]
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, tid(), value) == 0
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn nice() -> Option<i32> {
        None
    }

    pub fn set_nice(_value: i32) -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_is_lowered_and_restored_on_its_thread() {
        if !supported() {
            eprintln!("this process cannot restore a thread's priority; nothing to check");
            return;
        }
        std::thread::spawn(|| {
            const AFTER: Duration = Duration::from_millis(4);
            let before = imp::nice().unwrap();
            let mut demotion = Demotion::new(Some(AFTER));
            demotion.observe(AFTER / 2);
            assert!(!demotion.lowered(), "a short run keeps its priority");
            assert_eq!(imp::nice(), Some(before));
            demotion.observe(AFTER * 2);
            assert!(demotion.lowered());
            assert_eq!(imp::nice(), Some(DEMOTED_NICE));
            demotion.restore();
            assert_eq!(imp::nice(), Some(before), "the thread gets its priority back");
            let mut dropped = Demotion::new(Some(AFTER));
            dropped.observe(AFTER * 2);
            drop(dropped);
            assert_eq!(imp::nice(), Some(before), "dropping restores too");
            let mut off = Demotion::new(None);
            off.observe(AFTER * 2);
            assert!(!off.lowered(), "disabled: never lowered");
        })
        .join()
        .unwrap();
    }
}
