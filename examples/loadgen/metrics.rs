//! The clock that senders and receivers share, and the latency histogram.
//!
//! Senders stamp each message with nanoseconds of `CLOCK_MONOTONIC` since an epoch; receivers
//! subtract, so latency needs no clock synchronisation. The epoch is the process's first reading
//! unless `--clock-epoch` names one: `CLOCK_MONOTONIC` is one clock for every process on a
//! machine, so load generators started with the same epoch read the same times and one process
//! can time a message another sent (the W6 broadcast over six daemons). The histogram is
//! log-linear (128 sub-buckets per power of two, under 0.8% error); each receiver records into
//! its own and the run merges them, so the hot path has no atomic operation. Also here: the
//! per-run tag that tells this run's messages from replayed history, waiting for a stream of
//! lines to go quiet, and the once-a-second tick of the progress lines.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

static EPOCH: OnceLock<u64> = OnceLock::new();

/// Raw `CLOCK_MONOTONIC` in nanoseconds (the clock `std::time::Instant` reads on Linux).
pub fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Sets the epoch to a `CLOCK_MONOTONIC` reading shared with other processes; must come before
/// the first [`now_nanos`]. Fails if the epoch was already set or lies in the future.
pub fn set_epoch(epoch: u64) -> Result<(), String> {
    if epoch > monotonic_nanos() {
        return Err(format!("--clock-epoch {epoch} lies in the future of CLOCK_MONOTONIC"));
    }
    EPOCH.set(epoch).map_err(|_| "the clock epoch was already set".to_owned())
}

/// The epoch as a `CLOCK_MONOTONIC` reading.
pub fn epoch() -> u64 {
    *EPOCH.get_or_init(monotonic_nanos)
}

/// Nanoseconds since the epoch on `CLOCK_MONOTONIC`.
pub fn now_nanos() -> u64 {
    monotonic_nanos().saturating_sub(epoch())
}

/// Wall-clock nanoseconds minus process-clock nanoseconds, measured once.
static WALL_OFFSET: OnceLock<i128> = OnceLock::new();

/// Converts a wall-clock time (a kernel timestamp) to the process clock; `None` for a zero or
/// out-of-range stamp.
pub fn from_wall_clock(seconds: i64, nanos: i64) -> Option<u64> {
    if seconds <= 0 {
        return None;
    }
    let offset = *WALL_OFFSET.get_or_init(|| {
        // The smallest of a few readings: the one least disturbed between the two clock reads.
        (0..5)
            .map(|_| {
                let process = i128::from(now_nanos());
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as i128)
                    .unwrap_or(0);
                wall - process
            })
            .min()
            .unwrap_or(0)
    });
    let wall = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    u64::try_from(wall - offset).ok()
}

/// Seconds between two readings of [`now_nanos`].
pub fn seconds_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1e9
}

/// A tag that differs between runs and processes, so lines replayed from an earlier run's
/// history are never counted as deliveries of this one.
pub fn run_tag(run: usize) -> u32 {
    let mixed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ now_nanos().rotate_left(17)
        ^ run as u64;
    (mixed % 1_000_000_000) as u32
}

/// Waits until `lines` has not moved for `quiet` (joins, presence notices and history have
/// settled), at most `limit`; returns the seconds it took.
pub async fn wait_until_quiet(lines: &AtomicU64, quiet: Duration, limit: Duration) -> f64 {
    let started = now_nanos();
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = lines.load(Ordering::Relaxed);
    let mut quiet_since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = lines.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = tokio::time::Instant::now();
        } else if quiet_since.elapsed() >= quiet {
            break;
        }
    }
    seconds_between(started, now_nanos())
}

/// Calls `tick` once a second, from one second after the start, until `stop` changes: what
/// prints a run's progress lines.
pub fn spawn_every_second(
    mut stop: watch::Receiver<bool>,
    mut tick: impl FnMut() + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = ticks.tick() => tick(),
            }
        }
    })
}

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for every u64 value.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of values (nanoseconds) in log-linear buckets. Each receiver keeps its own (no atomic
/// operation on the hot path); the run merges them at the end.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Allocated on the first value, so a receiver that gets nothing costs nothing.
    buckets: Vec<u32>,
    count: u64,
    sum: u64,
    max: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        let bucket = &mut self.buckets[bucket_of(value)];
        *bucket = bucket.saturating_add(1);
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.saturating_add(*theirs);
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1): the upper edge of its bucket, capped at the maximum.
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &bucket) in self.buckets.iter().enumerate() {
            seen += u64::from(bucket);
            if seen >= rank {
                return upper_edge(index).min(self.max);
            }
        }
        self.max
    }

    pub fn percentiles(&self) -> Percentiles {
        let us = |nanos: u64| nanos as f64 / 1e3;
        Percentiles {
            count: self.count,
            mean: if self.count == 0 { 0.0 } else { self.sum as f64 / self.count as f64 / 1e3 },
            p50: us(self.quantile(0.5)),
            p99: us(self.quantile(0.99)),
            p999: us(self.quantile(0.999)),
            max: us(self.max),
        }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BITS;
    let mantissa = (value >> shift) - SUB;
    ((shift as u64 + 1) * SUB + mantissa) as usize
}

fn upper_edge(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let shift = index / SUB - 1;
    let mantissa = index % SUB + SUB;
    let upper = (u128::from(mantissa + 1) << shift) - 1;
    u64::try_from(upper).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for value in [0u64, 1, 127, 128, 255, 256, 1000, 1_000_000, 5_000_000_000, u64::MAX] {
            let index = bucket_of(value);
            assert!(index >= last && index < BUCKETS, "{value}");
            assert!(upper_edge(index) >= value, "{value}");
            assert!(upper_edge(index) - value <= value / 100 + 1, "{value}");
            last = index;
        }
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p = h.percentiles();
        assert!((p.p50 - 5000.0).abs() < 50.0, "{p:?}");
        assert!((p.p99 - 9900.0).abs() < 100.0, "{p:?}");
        assert_eq!(p.max, 10_000.0);
    }
}
