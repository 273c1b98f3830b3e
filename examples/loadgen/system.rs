//! What the operating system tells about a process, and the one limit the load generator raises.
//!
//! CPU time comes from `/proc/PID/stat` (utime + stime, in clock ticks), memory from
//! `/proc/PID/status` (VmRSS now, VmHWM the peak); writing `5` to `/proc/PID/clear_refs` resets
//! the peak so each run reports its own. The same readers applied to `self` show whether the load
//! generator itself ran out of CPU. `RLIMIT_NOFILE` is raised to its hard limit for the idle mode.

use std::io;

use anyhow::{Context as _, Result, bail};

/// A process to observe: the server by PID, or the load generator itself.
#[derive(Debug, Clone, Copy)]
pub enum Process {
    Pid(u32),
    Myself,
}

impl Process {
    fn proc_dir(self) -> String {
        match self {
            Process::Pid(pid) => format!("/proc/{pid}"),
            Process::Myself => "/proc/self".to_owned(),
        }
    }

    /// User plus system CPU time so far, in seconds.
    pub fn cpu_seconds(self) -> io::Result<f64> {
        let stat = std::fs::read_to_string(format!("{}/stat", self.proc_dir()))?;
        // The command name may contain spaces and parentheses: fields restart after the last ')'.
        let after_name = stat
            .rfind(')')
            .map(|i| &stat[i + 1..])
            .ok_or_else(|| io::Error::other("malformed stat"))?;
        // After the name: state is field 3, utime field 14, stime field 15.
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| -> io::Result<u64> {
            fields
                .get(n - 3)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| io::Error::other(format!("stat field {n} missing")))
        };
        let ticks = field(14)? + field(15)?;
        Ok(ticks as f64 / clock_ticks_per_second())
    }

    /// Resident memory now and at its peak, in KiB.
    pub fn memory(self) -> io::Result<Memory> {
        let status = std::fs::read_to_string(format!("{}/status", self.proc_dir()))?;
        let kib = |key: &str| -> io::Result<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| io::Error::other(format!("{key} missing from status")))
        };
        Ok(Memory { rss_kib: kib("VmRSS:")?, peak_kib: kib("VmHWM:")? })
    }

    /// Resets the peak resident size (VmHWM) to the current one; needs to own the process.
    pub fn reset_peak(self) -> io::Result<()> {
        std::fs::write(format!("{}/clear_refs", self.proc_dir()), "5")
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Raises the soft limit on open files to the hard limit and returns the new soft limit.
pub fn raise_open_file_limit() -> Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error()).context("reading RLIMIT_NOFILE");
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error()).context("raising RLIMIT_NOFILE");
        }
    }
    Ok(limit.rlim_cur)
}

/// Fails unless `needed` descriptors fit under the open-file limit.
pub fn ensure_descriptors(needed: u64) -> Result<()> {
    let limit = raise_open_file_limit()?;
    if needed > limit {
        bail!(
            "this run needs about {needed} file descriptors but the limit is {limit}: \
             use fewer clients"
        );
    }
    Ok(())
}
