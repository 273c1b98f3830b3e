//! Threads that must give way to the room: the password hashers and the
//! store's writer do work that can wait, on the same cores as the runtime
//! workers that fan lines out.

/// The nice value of the threads that give way: the lowest there is.
pub const LOWEST_PRIORITY: libc::c_int = 19;

/// Gives the calling thread the lowest nice value, 19: next to a thread of
/// normal priority it gets about 1.5% of a busy CPU, so it gives way to the
/// room's workers, yet other busy processes cannot starve it altogether
/// (as they would a `SCHED_IDLE` thread). On Linux nice is per thread.
#[cfg(target_os = "linux")]
pub fn lower_this_threads_priority() -> std::io::Result<()> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority on our own thread id; raising nice needs no privilege.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, LOWEST_PRIORITY) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
pub fn lower_this_threads_priority() -> std::io::Result<()> {
    Ok(())
}
