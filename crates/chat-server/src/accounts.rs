//! Registered names: passwords and the throttle on guessing them.
//!
//! A password is hashed with argon2id (the `argon2` crate's defaults: 19 MiB,
//! 2 passes, 1 lane, a random 16-byte salt) and only the PHC string is
//! stored; a password is never logged, echoed or kept. Hashing and checking
//! run on a few threads of their own ([`HASH_THREADS`] at most, started on
//! first use), never on a runtime worker, and at the lowest nice value
//! (19): argon2's tens of milliseconds of CPU give way to the room's
//! workers, so logins do not stall the room (they wait instead when the CPU
//! is saturated), and are still not starved by other busy processes. Each
//! thread keeps argon2's 19 MiB from one hash to the next: allocated per
//! hash, it would be mapped, faulted in page by page and unmapped every
//! time, and each unmapping interrupts every thread of the daemon to flush
//! its TLB. So memory for hashing is paid once per thread, however many
//! log in at once. [`LoginThrottle`] slows failed attempts on
//! one name, whichever connections they come from: the first three are
//! free, then each waits one second, then two, four... up to 30 s, and the
//! waits are handed out in turn, so attempts made at once queue behind each
//! other rather than share a slot. With a backplane the same schedule is
//! kept in Redis (see [`crate::store::Accounts::login_turn`]), so it holds
//! across daemons; this one is the fallback while Redis cannot answer.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::password_hash::try_generate_salt;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use chat_proto::NameKey;
use tokio::time::Instant;
use tracing::warn;

use crate::priority::lower_this_threads_priority;

/// The shortest password `/register` and `/password` accept.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Failed attempts on a name before each further one waits.
pub const FREE_ATTEMPTS: u32 = 3;
/// The first wait, which doubles with each failure, up to [`MAX_WAIT`].
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// A name's record of failures is forgotten after this long without one.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Why a password cannot be used.
pub fn password_problem(password: &str) -> Option<String> {
    (password.chars().count() < MIN_PASSWORD_CHARS)
        .then(|| format!("a password needs at least {MIN_PASSWORD_CHARS} characters"))
}

/// The most threads that hash passwords (fewer on a machine with fewer cores).
pub const HASH_THREADS: usize = 4;
/// What the hashing threads are called (`chat-hash-0`...), as `top -H` shows them.
pub const HASH_THREAD_NAME: &str = "chat-hash";

/// Hashes a password (argon2id, fresh salt) on the hashing threads.
pub async fn hash(password: String) -> Result<String, String> {
    match on_hash_threads(move |memory| hash_with(memory, password.as_bytes())).await {
        Some(Ok(hash)) => Ok(hash),
        Some(Err(error)) => Err(format!("could not hash the password: {error}")),
        None => Err("could not hash the password: the hashing threads are gone".to_owned()),
    }
}

/// Checks a password against a stored hash on the hashing threads.
pub async fn verify(password: String, hash: String) -> bool {
    let checked = on_hash_threads(move |memory| verify_with(memory, password.as_bytes(), &hash));
    checked.await.unwrap_or(false)
}

/// The memory argon2 fills, kept by a hashing thread between hashes.
type Memory = Vec<Block>;

/// The first `params.block_count()` blocks of `memory`, grown if needed.
fn blocks<'a>(memory: &'a mut Memory, params: &Params) -> &'a mut [Block] {
    let count = params.block_count();
    if memory.len() < count {
        memory.resize(count, Block::new());
    }
    &mut memory[..count]
}

/// `password` hashed with argon2id and the crate's default parameters, a
/// fresh salt, in `memory`: the PHC string `Argon2::hash_password` makes.
fn hash_with(memory: &mut Memory, password: &[u8]) -> Result<String, String> {
    let params = Params::default();
    let salt = try_generate_salt().map_err(|error| error.to_string())?;
    let salt = Salt::new(&salt).map_err(|error| error.to_string())?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut output, blocks(memory, &params))
        .map_err(|error| error.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|error| error.to_string())?,
        salt: Some(salt),
        hash: Some(Output::new(&output).map_err(|error| error.to_string())?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored` (with the algorithm,
/// version and parameters it names), computed in `memory` and compared in
/// constant time.
fn verify_with(memory: &mut Memory, password: &[u8], stored: &str) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(phc.algorithm.as_str()) else { return false };
    let Ok(version) = phc.version.map_or(Ok(Version::default()), Version::try_from) else {
        return false;
    };
    let Ok(params) = Params::try_from(&phc) else { return false };
    let mut computed = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    argon2
        .hash_password_into_with_memory(password, salt, &mut computed, blocks(memory, &params))
        .is_ok()
        && Output::new(&computed).is_ok_and(|computed| computed == *expected)
}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// Runs `work` on the hashing threads, in turn with other hashes; `None`
/// if no thread could run it.
async fn on_hash_threads<T: Send + 'static>(
    work: impl FnOnce(&mut Memory) -> T + Send + 'static,
) -> Option<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move |memory| {
        let _ = done.send(work(memory));
    });
    hash_threads().send(job).ok()?;
    result.await.ok()
}

/// The queue of the hashing threads, started on first use. The queue has no
/// bound of its own: each connection waits for at most one hash, so the
/// connection limit bounds it.
fn hash_threads() -> &'static Sender<Job> {
    static QUEUE: OnceLock<Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let count = std::thread::available_parallelism().map_or(1, usize::from).min(HASH_THREADS);
        for n in 0..count {
            let jobs = Arc::clone(&jobs);
            let spawned = std::thread::Builder::new()
                .name(format!("{HASH_THREAD_NAME}-{n}"))
                .spawn(move || run_hash_jobs(&jobs));
            if let Err(error) = spawned {
                warn!(%error, "cannot start a password hashing thread");
            }
        }
        queue
    })
}

/// One hashing thread: lowest priority, then jobs until the queue closes,
/// with one argon2 memory for all of them.
fn run_hash_jobs(jobs: &Mutex<Receiver<Job>>) {
    if let Err(error) = lower_this_threads_priority() {
        warn!(%error, "cannot lower the priority of password hashing; logins compete with chat for the CPU");
    }
    let mut memory = Memory::new();
    loop {
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match job {
            Ok(job) => job(&mut memory),
            Err(_) => return,
        }
    }
}

/// How long the next attempt after `failures` failures waits.
pub fn wait_after(failures: u32) -> Duration {
    match failures.checked_sub(FREE_ATTEMPTS) {
        None => Duration::ZERO,
        Some(extra) => FIRST_WAIT.saturating_mul(1 << extra.min(5)).min(MAX_WAIT),
    }
}

#[derive(Debug)]
struct Attempts {
    /// Failures so far, counting the attempts now waiting as failures.
    failures: u32,
    /// When the next attempt may be checked.
    next_at: Instant,
    last_failure: Instant,
}

/// Failed password attempts per name, on this daemon.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    names: Mutex<HashMap<NameKey, Attempts>>,
}

impl LoginThrottle {
    /// Reserves the next attempt on `key`: returns when it may be checked.
    /// The attempt counts as a failure until [`LoginThrottle::succeeded`].
    pub fn reserve(&self, key: &NameKey) -> Instant {
        let now = Instant::now();
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.retain(|_, a| now.duration_since(a.last_failure) < FORGET_AFTER || a.next_at > now);
        let attempts = names.entry(key.clone()).or_insert(Attempts {
            failures: 0,
            next_at: now,
            last_failure: now,
        });
        let at = attempts.next_at.max(now);
        attempts.failures += 1;
        attempts.next_at = at + wait_after(attempts.failures);
        attempts.last_failure = now;
        at
    }

    /// The right password: the name's record is cleared.
    pub fn succeeded(&self, key: &NameKey) {
        self.names.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_start_after_three_failures_and_double_up_to_thirty_seconds() {
        let waits: Vec<u64> = (0..12).map(|f| wait_after(f).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30, 30]);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_at_once_queue_behind_each_other() {
        let throttle = LoginThrottle::default();
        let key = NameKey::of("alice");
        let start = Instant::now();
        let slots: Vec<u64> =
            (0..7).map(|_| throttle.reserve(&key).duration_since(start).as_secs()).collect();
        assert_eq!(slots, [0, 0, 0, 1, 3, 7, 15]);
        throttle.succeeded(&key);
        assert_eq!(throttle.reserve(&key), Instant::now(), "a success starts afresh");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_forgotten_fifteen_minutes_after_the_last_one() {
        // The documented figure, not the constant: changing it must fail here.
        const FIFTEEN_MINUTES: Duration = Duration::from_secs(15 * 60);
        let throttle = LoginThrottle::default();
        let key = NameKey::of("alice");
        let three_failures = || {
            for _ in 0..FREE_ATTEMPTS {
                assert_eq!(throttle.reserve(&key), Instant::now(), "a free attempt");
            }
        };
        three_failures();
        // Just short of 15 minutes the failures still count: the next
        // attempt is checked at once (its wait is long over), and the one
        // after it waits.
        tokio::time::advance(FIFTEEN_MINUTES - Duration::from_secs(1)).await;
        assert_eq!(throttle.reserve(&key), Instant::now());
        let waited = throttle.reserve(&key).duration_since(Instant::now());
        assert_eq!(waited, wait_after(FREE_ATTEMPTS + 1), "still remembered");
        // 15 minutes after the last failure (and past its wait), the
        // name starts afresh: three free attempts again, then a wait.
        tokio::time::advance(waited + FIFTEEN_MINUTES).await;
        three_failures();
        let waited = throttle.reserve(&key).duration_since(Instant::now());
        assert_eq!(waited, FIRST_WAIT, "forgotten: the fourth failure waits the first wait");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_a_hundred_guesses_takes_at_least_what_the_schedule_says() {
        let throttle = LoginThrottle::default();
        let key = NameKey::of("alice");
        let start = Instant::now();
        let last = (0..100).map(|_| throttle.reserve(&key)).last().expect("a hundred slots");
        // 0, 0, 0, then 1 + 2 + 4 + 8 + 16 s, then 30 s for each of the other 92.
        assert_eq!(last.duration_since(start).as_secs(), 31 + 30 * 92);
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut memory = Memory::new();
        let ours = hash_with(&mut memory, b"correct horse").expect("hashed");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        let crates = Argon2::default();
        assert!(crates.verify_password(b"correct horse", &parsed).is_ok(), "{ours}");
        let theirs = crates.hash_password(b"battery staple").expect("hashed").to_string();
        assert_eq!(theirs.split('$').nth(3), ours.split('$').nth(3), "same parameters");
        assert!(verify_with(&mut memory, b"battery staple", &theirs));
        assert!(!verify_with(&mut memory, b"battery stable", &theirs));
        assert!(!verify_with(&mut memory, b"correct horse", "not a hash"));
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let hash = hash("correct horse".to_owned()).await.expect("hashed");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify("correct horse".to_owned(), hash.clone()).await);
        assert!(!verify("wrong horse".to_owned(), hash).await);
    }
}
