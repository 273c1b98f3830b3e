//! The per-client line rate: a generic cell rate algorithm (a token bucket
//! without a timer). A client may send `burst` lines at once, then one per
//! interval; the connection simply does not read the next line before
//! [`Throttle::ready_at`], so TCP flow control slows the sender and no line
//! is ever dropped.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Option<Duration>,
    /// How far ahead of now the theoretical arrival time may run.
    tolerance: Duration,
    theoretical_arrival: Instant,
}

impl Throttle {
    /// `interval` between lines once `burst` lines are spent; `None` disables it.
    pub fn new(interval: Option<Duration>, burst: u32) -> Self {
        let tolerance = interval.map_or(Duration::ZERO, |i| i * burst.saturating_sub(1));
        Throttle { interval, tolerance, theoretical_arrival: Instant::now() }
    }

    /// When the next line may be read, if not right away.
    pub fn ready_at(&self) -> Option<Instant> {
        self.interval?;
        let at = self.theoretical_arrival.checked_sub(self.tolerance)?;
        (at > Instant::now()).then_some(at)
    }

    /// Accounts for one line read.
    pub fn took_line(&mut self) {
        if let Some(interval) = self.interval {
            self.theoretical_arrival = self.theoretical_arrival.max(Instant::now()) + interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_a_burst_then_one_line_per_interval() {
        let mut throttle = Throttle::new(Some(Duration::from_millis(100)), 3);
        for _ in 0..3 {
            assert_eq!(throttle.ready_at(), None);
            throttle.took_line();
        }
        let next = throttle.ready_at().expect("burst spent");
        assert_eq!(next - Instant::now(), Duration::from_millis(100));
        tokio::time::sleep_until(next).await;
        assert_eq!(throttle.ready_at(), None);
    }

    #[test]
    fn disabled_throttle_never_waits() {
        let mut throttle = Throttle::new(None, 1);
        for _ in 0..1000 {
            throttle.took_line();
        }
        assert_eq!(throttle.ready_at(), None);
    }
}
