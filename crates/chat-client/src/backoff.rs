//! How long to wait before connecting again after a lost connection.
//!
//! [`Backoff`] waits [`FIRST_WAIT`], then twice as long after each failed
//! attempt, up to [`MAX_WAIT`]; each wait is moved by up to a fifth either
//! way at random (never beyond [`MAX_WAIT`]), so the clients of a restarted
//! daemon do not all knock at the same instant. A session that is back in
//! starts again from [`FIRST_WAIT`].

use std::time::Duration;

/// The wait before the first attempt to connect again.
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// How far a wait may be moved either way, as a fraction of it.
const JITTER: f64 = 0.2;

/// The waits between attempts to connect again.
#[derive(Debug)]
pub struct Backoff {
    /// The next wait before jitter.
    base: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: FIRST_WAIT }
    }
}

impl Backoff {
    /// The wait before the next attempt; each call doubles the following one.
    pub fn next_wait(&mut self) -> Duration {
        let factor = rand::random_range(1.0 - JITTER..=1.0 + JITTER);
        let wait = self.base.mul_f64(factor).min(MAX_WAIT);
        self.base = (self.base * 2).min(MAX_WAIT);
        wait
    }

    /// Back in: the next loss starts from [`FIRST_WAIT`] again.
    pub fn reset(&mut self) {
        self.base = FIRST_WAIT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within_jitter(wait: Duration, base: Duration) -> bool {
        wait >= base.mul_f64(1.0 - JITTER) && wait <= base.mul_f64(1.0 + JITTER).min(MAX_WAIT)
    }

    #[test]
    fn waits_double_from_one_second_up_to_thirty() {
        let mut backoff = Backoff::default();
        let bases = [1, 2, 4, 8, 16, 30, 30, 30].map(Duration::from_secs);
        for base in bases {
            let wait = backoff.next_wait();
            assert!(within_jitter(wait, base), "{wait:?} for a base of {base:?}");
        }
    }

    #[test]
    fn waits_are_spread_and_never_beyond_the_maximum() {
        let waits: Vec<Duration> = (0..200).map(|_| Backoff::default().next_wait()).collect();
        let (shortest, longest) = (waits.iter().min(), waits.iter().max());
        assert!(shortest < longest, "jitter spreads the first wait: {shortest:?} {longest:?}");
        let mut backoff = Backoff { base: MAX_WAIT };
        assert!((0..200).all(|_| backoff.next_wait() <= MAX_WAIT));
    }

    #[test]
    fn being_back_in_starts_again_from_the_first_wait() {
        let mut backoff = Backoff::default();
        for _ in 0..6 {
            backoff.next_wait();
        }
        backoff.reset();
        assert!(within_jitter(backoff.next_wait(), FIRST_WAIT));
    }
}
