//! Keeping disk syncs off the async workers. A durable write (a record transaction with
//! `synchronous=FULL`, a group file written atomically) waits for the disk, which can take
//! milliseconds; done on a tokio worker it would hold up every task queued behind it
//! (connection readers, other groups' drivers, the service's sessions).

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, which may wait for the disk, so that it holds up no other task: on a worker of a
/// multi-thread runtime, the worker first hands its queued tasks to another thread
/// (`block_in_place`); outside a runtime (an application's thread: the C library's calls) or
/// on a current-thread runtime (where nothing could take over) it simply runs. Either way `f`
/// has finished when this returns, so a write acknowledged after it is on disk.
pub fn off_the_workers<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_outside_a_runtime() {
        assert_eq!(off_the_workers(|| 7), 7);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_on_a_current_thread_runtime() {
        assert_eq!(off_the_workers(|| 8), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocked_worker_leaves_the_other_tasks_running() {
        // One worker: while `f` blocks it, a task spawned before must still run, because the
        // worker handed its queue to another thread.
        let (tx, rx) = std::sync::mpsc::channel();
        let other = tokio::spawn(async move { tx.send(()).unwrap() });
        let got = off_the_workers(|| rx.recv_timeout(std::time::Duration::from_secs(30)));
        assert!(got.is_ok(), "the other task ran while this one blocked");
        other.await.unwrap();
    }
}
