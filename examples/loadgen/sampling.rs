//! Sampling the processes a run observes: CPU time and memory summed over a set of them (several
//! daemons, or a backplane's Redis), taken before and after the measured phase, and the CPU they
//! keep spending once the last message is delivered (`--cpu-tail`).
//!
//! The figures come from [`Process`], which reads `/proc`; a process that cannot be read counts
//! as no memory and NaN seconds, so a vanished server shows in the report instead of ending it.

use std::time::Duration;

use tokio::time::Instant;

use crate::system::{Memory, Process};

/// How often `--cpu-tail` looks whether the servers went idle.
const CPU_TAIL_STEP: Duration = Duration::from_millis(300);
/// CPU seconds that count as idle in one step: one clock tick (10 ms).
const IDLE_STEP_CPU: f64 = 0.011;

/// CPU and memory of a set of processes: totals, and each process's own.
pub struct Sample {
    pub cpu_s: f64,
    pub memory: Memory,
    pub each: Vec<(f64, Memory)>,
}

pub fn sample_all(processes: &[Process]) -> Sample {
    let each: Vec<(f64, Memory)> = processes
        .iter()
        .map(|p| (p.cpu_seconds().unwrap_or(f64::NAN), p.memory().unwrap_or_default()))
        .collect();
    Sample {
        cpu_s: each.iter().map(|(cpu, _)| cpu).sum(),
        memory: total_memory(each.iter().map(|(_, m)| *m)),
        each,
    }
}

/// Resident memory now and at the peak, summed over `processes`.
pub fn memory_of(processes: &[Process]) -> Memory {
    total_memory(processes.iter().map(|p| p.memory().unwrap_or_default()))
}

fn total_memory(each: impl Iterator<Item = Memory>) -> Memory {
    each.fold(Memory::default(), |total, m| Memory {
        rss_kib: total.rss_kib + m.rss_kib,
        peak_kib: total.peak_kib + m.peak_kib,
    })
}

/// Resets every process's peak so a run reports its own; false if there are none or one failed.
pub fn reset_peaks(processes: &[Process]) -> bool {
    !processes.is_empty() && processes.iter().all(|p| p.reset_peak().is_ok())
}

/// CPU seconds summed over `processes`; `None` if there are none or one cannot be read.
pub fn cpu_seconds_of(processes: &[Process]) -> Option<f64> {
    if processes.is_empty() {
        return None;
    }
    processes.iter().map(|p| p.cpu_seconds().ok()).sum()
}

/// Waits, at most `limit`, until `processes` spend no more than a clock tick of CPU in a step;
/// returns the seconds it waited.
pub async fn wait_until_idle(processes: &[Process], limit: Duration) -> f64 {
    let started = Instant::now();
    let total = || -> f64 { processes.iter().filter_map(|p| p.cpu_seconds().ok()).sum() };
    let mut last = total();
    while started.elapsed() < limit {
        tokio::time::sleep(CPU_TAIL_STEP).await;
        let now = total();
        if now - last <= IDLE_STEP_CPU {
            break;
        }
        last = now;
    }
    started.elapsed().as_secs_f64()
}

/// A set of processes watched over a run, from its first sample on.
pub struct Observed {
    processes: Vec<Process>,
    peak_reset: bool,
    before: Sample,
}

impl Observed {
    /// Resets the peaks and takes the first sample; `None` when there is nothing to observe.
    pub fn begin(processes: Vec<Process>) -> Option<Observed> {
        if processes.is_empty() {
            return None;
        }
        let peak_reset = reset_peaks(&processes);
        let before = sample_all(&processes);
        Some(Observed { processes, peak_reset, before })
    }

    pub fn processes(&self) -> &[Process] {
        &self.processes
    }

    pub fn sample(&self) -> Sample {
        sample_all(&self.processes)
    }

    /// What the processes used between the first sample and `after`, and from `after` to
    /// `tail` (the work they went on doing after the run).
    pub fn usage(self, after: Sample, tail: Option<Sample>) -> Usage {
        let each = self
            .before
            .each
            .iter()
            .zip(&after.each)
            .map(|((b, _), (a, m))| (a - b, m.peak_kib))
            .collect();
        Usage {
            cpu_s: after.cpu_s - self.before.cpu_s,
            cpu_tail_s: tail.map(|t| t.cpu_s - after.cpu_s),
            before: self.before.memory,
            after: after.memory,
            peak_reset: self.peak_reset,
            each,
        }
    }
}

/// What a set of processes used during a run.
pub struct Usage {
    pub cpu_s: f64,
    /// CPU spent after the run's last delivery until the processes went idle (`--cpu-tail`).
    pub cpu_tail_s: Option<f64>,
    pub before: Memory,
    pub after: Memory,
    pub peak_reset: bool,
    /// Per process when there are several: CPU seconds and peak RSS.
    pub each: Vec<(f64, u64)>,
}

/// What a load run measures around itself: the servers, the backplane's Redis, and the load
/// generator's own CPU (to show that it was not the bottleneck).
pub struct Meters {
    servers: Option<Observed>,
    backplane: Option<Observed>,
    own_cpu_before: f64,
}

/// What [`Meters`] found.
pub struct Measured {
    pub server: Option<Usage>,
    pub backplane: Option<Usage>,
    /// How long `--cpu-tail` waited for the servers to go idle.
    pub tail_s: Option<f64>,
    pub own_cpu_s: f64,
}

impl Meters {
    pub fn start(server_pids: &[u32], backplane_pid: Option<u32>) -> Meters {
        Meters {
            servers: Observed::begin(server_pids.iter().map(|&pid| Process::Pid(pid)).collect()),
            backplane: Observed::begin(backplane_pid.map(Process::Pid).into_iter().collect()),
            own_cpu_before: Process::Myself.cpu_seconds().unwrap_or(0.0),
        }
    }

    pub fn servers(&self) -> Vec<Process> {
        self.servers.as_ref().map(|s| s.processes().to_vec()).unwrap_or_default()
    }

    /// Takes the closing samples; with a `cpu_tail`, then waits up to that long for the servers
    /// (and backplane) to go idle and samples them again.
    pub async fn stop(self, cpu_tail: Duration) -> Measured {
        let server_after = self.servers.as_ref().map(Observed::sample);
        let backplane_after = self.backplane.as_ref().map(Observed::sample);
        let own_cpu_s = Process::Myself.cpu_seconds().unwrap_or(0.0) - self.own_cpu_before;
        let tail_s = match &self.servers {
            Some(servers) if !cpu_tail.is_zero() => {
                let mut all = servers.processes().to_vec();
                all.extend(self.backplane.iter().flat_map(|b| b.processes()));
                Some(wait_until_idle(&all, cpu_tail).await)
            }
            _ => None,
        };
        let tail_of = |observed: &Option<Observed>| {
            tail_s.and_then(|_| observed.as_ref().map(Observed::sample))
        };
        let (server_tail, backplane_tail) = (tail_of(&self.servers), tail_of(&self.backplane));
        Measured {
            server: self.servers.zip(server_after).map(|(o, after)| o.usage(after, server_tail)),
            backplane: self
                .backplane
                .zip(backplane_after)
                .map(|(o, after)| o.usage(after, backplane_tail)),
            tail_s,
            own_cpu_s,
        }
    }
}
