//! The progress of a group's first synchronisation, on standard error.
//!
//! A command that brings a group online (`connect`, `join --connect`; `status`, `chat` and
//! `record add|update|delete` while they wait for a neighbour) shows a spinner with the group's status and its live record count
//! while the group synchronises. The spinner ends once the group is
//! `LISTENING | HAS_CONNECTIONS` and its record count has stayed the same for [`SETTLE`], or
//! when the command ends. It is drawn only on a terminal; otherwise it is hidden and the
//! command's output is unchanged.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use peergroup_core::io::{STATUS_HAS_CONNECTIONS, STATUS_LISTENING};

use crate::status_cmd::status_names;

/// How long the record count must stay the same, once connected, for the first
/// synchronisation to count as done.
pub const SETTLE: Duration = Duration::from_secs(1);

/// When a synchronisation counts as done, from what the group reports over time.
#[derive(Debug, Default)]
pub struct SyncTracker {
    /// The record count last seen and since when it has been that.
    last: Option<(u64, Instant)>,
    done: bool,
}

impl SyncTracker {
    /// Notes the group's `status` and live record count (`None` before the first
    /// synchronisation) at `now`; true once the synchronisation is done (and from then on).
    pub fn observe(&mut self, status: u32, records: Option<u64>, now: Instant) -> bool {
        if self.done {
            return true;
        }
        let both = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;
        let Some(count) = records else {
            self.last = None;
            return false;
        };
        let since = match self.last {
            Some((n, since)) if n == count => since,
            _ => now,
        };
        self.last = Some((count, since));
        self.done = status & both == both && now.duration_since(since) >= SETTLE;
        self.done
    }

    /// Whether the synchronisation is done.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// A spinner with the group's status and record count, while it synchronises.
pub struct SyncProgress {
    bar: indicatif::ProgressBar,
    tracker: SyncTracker,
}

impl SyncProgress {
    /// A spinner for `group`, drawn on standard error when it is a terminal (hidden
    /// otherwise).
    pub fn new(group: &str) -> Self {
        let bar = indicatif::ProgressBar::hidden();
        if std::io::stderr().is_terminal() {
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} synchronising {prefix}: {msg} ({elapsed})",
            ) {
                bar.set_style(style);
            }
            let short: String = group.chars().take(12).collect();
            bar.set_prefix(format!("{short}…"));
            bar.set_message("connecting");
            // Drawn from here on, with everything set.
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(100));
        }
        SyncProgress {
            bar,
            tracker: SyncTracker::default(),
        }
    }

    /// Whether the spinner still runs (it is not hidden and the synchronisation is not done).
    pub fn running(&self) -> bool {
        !self.bar.is_hidden() && !self.tracker.is_done()
    }

    /// Shows the group's status and record count; ends the spinner once synchronised.
    pub fn update(&mut self, status: u32, records: Option<u64>) {
        if self.tracker.is_done() {
            return;
        }
        let names = status_names(status);
        let status_text = if names.is_empty() {
            "offline".to_owned()
        } else {
            names.join(" | ")
        };
        let records_text = match records {
            Some(n) => format!("{n} records"),
            None => "not synchronised yet".to_owned(),
        };
        if self.tracker.observe(status, records, Instant::now()) {
            tracing::info!(records = ?records, "first synchronisation done");
            self.bar
                .finish_with_message(format!("{status_text}, {records_text}: synchronised"));
        } else {
            self.bar
                .set_message(format!("{status_text}, {records_text}"));
        }
    }

    /// Runs `print` with the spinner out of the way, so a line printed does not mix with it.
    pub fn suspend<T>(&self, print: impl FnOnce() -> T) -> T {
        self.bar.suspend(print)
    }

    /// Ends the spinner (the command's bound came first): it is cleared.
    pub fn finish(&self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: u32 = STATUS_LISTENING | STATUS_HAS_CONNECTIONS;

    #[test]
    fn done_once_connected_and_the_count_settles() {
        let t0 = Instant::now();
        let mut t = SyncTracker::default();
        assert!(!t.observe(STATUS_LISTENING, None, t0), "not synchronised");
        assert!(!t.observe(STATUS_LISTENING, Some(5), t0 + SETTLE * 2));
        assert!(
            !t.observe(STATUS_LISTENING, Some(5), t0 + SETTLE * 4),
            "a steady count without a connection is not done"
        );
        assert!(!t.observe(BOTH, Some(10), t0 + SETTLE * 5), "still growing");
        assert!(!t.observe(BOTH, Some(20), t0 + SETTLE * 6), "still growing");
        assert!(t.observe(BOTH, Some(20), t0 + SETTLE * 7), "settled");
        assert!(t.is_done());
        assert!(
            t.observe(STATUS_LISTENING, None, t0 + SETTLE * 8),
            "done stays done"
        );
    }

    #[test]
    fn a_count_that_grows_restarts_the_settling() {
        let t0 = Instant::now();
        let mut t = SyncTracker::default();
        assert!(!t.observe(BOTH, Some(1), t0));
        assert!(!t.observe(BOTH, Some(2), t0 + SETTLE));
        assert!(!t.observe(BOTH, Some(2), t0 + SETTLE + SETTLE / 2));
        assert!(t.observe(BOTH, Some(2), t0 + SETTLE * 2));
    }
}
