//! Staggered racing of connection attempts ("happy eyeballs", RFC 8305 §5): the first
//! attempt starts at once, each next one [`DIAL_STAGGER`] later or as soon as the previous
//! one failed, and the first success wins.
//!
//! Every attempt is polled in the caller's task, so the winner is decided before any loser
//! can complete: the losers are dropped unfinished, which matters when all of them dial under
//! one reserved connection id (only a finished attempt registers its connection).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The head start each attempt gets over the next (RFC 8305's recommended 250 ms).
pub const DIAL_STAGGER: Duration = Duration::from_millis(250);

/// One attempt, boxed so that attempts of different kinds (a direct address, a tunnel
/// through a relay) race together.
pub(crate) type Attempt<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Runs `attempts` in order with `stagger` between their starts; the first `Ok` wins and
/// the rest are dropped. With every attempt failed, the last error; `None` when there were
/// no attempts.
pub(crate) async fn first_ok<T, E>(
    attempts: Vec<Attempt<T, E>>,
    stagger: Duration,
) -> Option<Result<T, E>> {
    let mut waiting = attempts.into_iter();
    let mut running: Vec<Attempt<T, E>> = Vec::new();
    let mut last_err = None;
    loop {
        match waiting.next() {
            Some(next) => running.push(next),
            None if running.is_empty() => return last_err.map(Err),
            None => {}
        }
        let more = waiting.len() > 0;
        // Poll the running attempts until one wins, all fail, or the next one is due.
        let delay = tokio::time::sleep(stagger);
        tokio::pin!(delay);
        let outcome = std::future::poll_fn(|cx: &mut Context<'_>| {
            let mut i = 0;
            while i < running.len() {
                match running[i].as_mut().poll(cx) {
                    Poll::Ready(Ok(v)) => return Poll::Ready(Some(Ok(v))),
                    Poll::Ready(Err(e)) => {
                        drop(running.swap_remove(i));
                        last_err = Some(e);
                    }
                    Poll::Pending => i += 1,
                }
            }
            if running.is_empty() {
                // Every started attempt failed: start the next at once (or give up).
                return Poll::Ready(None);
            }
            if more && delay.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        if let Some(won) = outcome {
            return Some(won);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn after(ms: u64, out: Result<u32, u32>, done: Arc<AtomicUsize>) -> Attempt<u32, u32> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            done.fetch_add(1, Ordering::SeqCst);
            out
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_success_wins_and_losers_never_finish() {
        let done = Arc::new(AtomicUsize::new(0));
        let attempts = vec![
            after(10_000, Ok(1), done.clone()),
            after(100, Ok(2), done.clone()),
            after(50, Ok(3), done.clone()),
        ];
        let won = first_ok(attempts, DIAL_STAGGER).await;
        // Starts: 0, 250, 500 ms; the second finishes at 350 ms, before the third starts.
        assert_eq!(won, Some(Ok(2)));
        assert_eq!(done.load(Ordering::SeqCst), 1, "no loser ran to its end");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_starts_the_next_attempt_at_once() {
        let done = Arc::new(AtomicUsize::new(0));
        let start = tokio::time::Instant::now();
        let attempts = vec![
            after(10, Err(7), done.clone()),
            after(10, Ok(8), done.clone()),
        ];
        assert_eq!(
            first_ok(attempts, Duration::from_secs(60)).await,
            Some(Ok(8))
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "did not wait the stagger"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn all_failed_gives_the_last_error_and_none_gives_none() {
        let done = Arc::new(AtomicUsize::new(0));
        let attempts = vec![
            after(30, Err(1), done.clone()),
            after(10, Err(2), done.clone()),
        ];
        assert_eq!(first_ok(attempts, DIAL_STAGGER).await, Some(Err(2)));
        assert_eq!(first_ok::<u32, u32>(Vec::new(), DIAL_STAGGER).await, None);
    }
}
