//! A test-only seam to make a supervised task panic for real, so that the integration tests can
//! watch the agent recover (`tests/it/supervision.rs`).
//!
//! In debug builds (what `cargo test` builds the binary as) the environment variable
//! `JELLYFIN_PUSHER_TEST_PANIC` lists `task=n` pairs, e.g. `collector:system=3,pipeline=2`:
//! the named task panics once, at its n-th unit of work (a collector run, a stored batch, a
//! delivery). Release builds compile [`point`] to nothing, and no config key reaches it.

/// Panics when the test plan says that `task` fails now.
#[cfg(debug_assertions)]
pub fn point(task: std::fmt::Arguments<'_>) {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, OnceLock};

    /// Per task: the unit of work that panics, and how many units it has done.
    static PLAN: OnceLock<Mutex<BTreeMap<String, (u64, u64)>>> = OnceLock::new();
    let plan = PLAN.get_or_init(|| {
        let spec = std::env::var("JELLYFIN_PUSHER_TEST_PANIC").unwrap_or_default();
        let plan = spec
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .filter_map(|(task, n)| Some((task.trim().to_string(), (n.trim().parse().ok()?, 0))))
            .collect();
        Mutex::new(plan)
    });
    let mut plan = plan.lock().unwrap_or_else(|p| p.into_inner());
    if plan.is_empty() {
        return;
    }
    let task = task.to_string();
    if let Some((at, done)) = plan.get_mut(&task) {
        *done += 1;
        if *done == *at {
            drop(plan);
            panic!("injected panic in {task} (JELLYFIN_PUSHER_TEST_PANIC)");
        }
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_task: std::fmt::Arguments<'_>) {}
