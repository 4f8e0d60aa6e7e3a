//! The kernels' thread pool: threads created once, woken for each parallel region
//! by a generation counter they spin on, so a region costs about a microsecond
//! instead of the tens of microseconds of a general work-stealing scheduler.
//!
//! Decoding one token runs about 150 parallel regions (a few per layer), each only
//! tens of microseconds long, back to back; with rayon, a fifth of the decode time
//! went to waking and parking threads. Here workers spin between regions
//! ([`SPIN_ITERS`], a fraction of a millisecond) and only then sleep on a condition
//! variable, so a busy decode loop never sleeps and an idle program costs nothing.
//!
//! ```text
//! run(tasks, f):   caller publishes f, bumps the generation, wakes sleepers
//!                  caller and workers claim task indices from one atomic counter
//!                  each worker signals when it has stopped looking at f
//!                  caller returns once every task ran and every worker signalled
//! ```
//!
//! Tasks are claimed dynamically, so a slow or descheduled thread costs balance,
//! never correctness: the split of work into tasks is the caller's, and never
//! depends on how many threads ran them. A call made while the pool is busy (from
//! another thread, or from inside a task) runs its tasks on the calling thread.
//!
//! A thread that cannot be started (`ulimit -u`, memory): [`Pool::try_new`] and
//! [`set_threads`] return a [`SpawnError`] and leave none of the pool's threads
//! running; [`Pool::new`] and the global pool created on first use, which have no
//! way to report an error, keep the threads that did start (the same results, more
//! slowly).

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

/// Spin iterations a worker waits for the next region before sleeping.
const SPIN_ITERS: u32 = 1 << 16;
/// Spin iterations between `yield_now` calls while waiting: when the machine has
/// more runnable threads than cores, a pure spin would hold a core that the
/// thread being waited for needs.
const YIELD_EVERY: u32 = 256;
/// Spin iterations before the first `yield_now` (a few microseconds): the gaps
/// between the regions of one decoded token are shorter, and a thread inside a
/// `sched_yield` call when work arrives starts that much later.
const PURE_SPIN: u32 = 4096;

/// One step of a wait that has lasted `spins` iterations: a pause, or from
/// [`PURE_SPIN`] on, a `yield_now` every [`YIELD_EVERY`] iterations.
#[inline]
fn wait_step(spins: u32) {
    if spins >= PURE_SPIN && spins.is_multiple_of(YIELD_EVERY) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// A task body with its lifetime erased; valid while the publishing `run` waits.
type Job = *const (dyn Fn(usize) + Sync);

/// State shared between the caller of [`Pool::run`] and the workers.
struct Shared {
    /// Bumped once per region; workers run a region when they see it change.
    generation: AtomicU64,
    /// The current region's body (written only while every worker is idle).
    job: UnsafeCell<Option<Job>>,
    /// Tasks of the current region.
    n_tasks: AtomicUsize,
    /// Next unclaimed task index.
    next: AtomicUsize,
    /// Workers that have not yet finished with the current region.
    pending: AtomicUsize,
    /// A task panicked in the current region.
    panicked: AtomicBool,
    /// Workers asleep (or about to sleep) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
}

// SAFETY: `job` is written only by the thread holding `Pool::busy` while no worker
// reads it (every worker has finished the previous region: `pending` is 0), and read
// by workers only between seeing a new generation (Acquire, after the write) and
// decrementing `pending` (Release, before the next write).
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A fixed set of worker threads that run parallel regions; see the module docs.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Held by the thread running a region.
    busy: Mutex<()>,
}

/// Starting a worker thread failed (the process or user hit its thread limit,
/// `ulimit -u`, or memory ran out). The threads started before the failure have
/// been stopped and joined again.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {requested} threads: {source} (after starting {started})")]
pub struct SpawnError {
    /// Threads asked for (the caller's included).
    pub requested: usize,
    /// Threads that were running when the spawn failed (the caller's included).
    pub started: usize,
    /// The operating system's answer.
    #[source]
    pub source: std::io::Error,
}

/// Starts worker `i` (1-based) running `body`; the seam that lets tests make a
/// spawn fail.
type Spawner<'a> =
    &'a mut dyn FnMut(usize, Box<dyn FnOnce() + Send>) -> std::io::Result<JoinHandle<()>>;

fn os_spawn(i: usize, body: Box<dyn FnOnce() + Send>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("mamba-worker-{i}"))
        .spawn(body)
}

impl Pool {
    /// A pool that runs regions on up to `threads` threads: the caller and
    /// `threads - 1` workers (none for 0 or 1). Never fails: if a worker cannot be
    /// started, the pool keeps the ones already running (see [`Pool::threads`]),
    /// since a pool of fewer threads computes the same results, only slower. Use
    /// [`Pool::try_new`] to treat that as an error.
    pub fn new(threads: usize) -> Pool {
        Pool::build(threads, &mut os_spawn).0
    }

    /// A pool of exactly `threads` threads (see [`Pool::new`]).
    ///
    /// # Errors
    /// [`SpawnError`] when a worker cannot be started; the workers already started
    /// are stopped and joined before it returns, so nothing is left running.
    pub fn try_new(threads: usize) -> Result<Pool, SpawnError> {
        Pool::try_build(threads, &mut os_spawn)
    }

    fn try_build(threads: usize, spawn: Spawner<'_>) -> Result<Pool, SpawnError> {
        match Pool::build(threads, spawn) {
            (pool, None) => Ok(pool),
            (pool, Some(source)) => {
                let started = pool.threads();
                drop(pool); // stops and joins the workers started so far
                Err(SpawnError {
                    requested: threads.max(1),
                    started,
                    source,
                })
            }
        }
    }

    /// Starts workers until `threads - 1` run or one fails to start; returns the
    /// pool of those that run and the failure, if any.
    fn build(threads: usize, spawn: Spawner<'_>) -> (Pool, Option<std::io::Error>) {
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            n_tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let mut workers = Vec::new();
        let mut failure = None;
        for i in 1..threads.max(1) {
            let s = Arc::clone(&shared);
            match spawn(i, Box::new(move || worker(&s))) {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let pool = Pool {
            shared,
            workers,
            busy: Mutex::new(()),
        };
        (pool, failure)
    }

    /// Threads that run a region (the caller included).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(i)` for every `i < tasks`, each exactly once, spread over the pool's
    /// threads, and returns when all have run. If a task panics, the panic is
    /// re-raised here after every thread has left the region.
    pub fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if tasks <= 1 || self.workers.is_empty() {
            return (0..tasks).for_each(f);
        }
        // Busy (another thread's region, or a task of ours calling back in): run here.
        let Ok(_busy) = self.busy.try_lock() else {
            return (0..tasks).for_each(f);
        };
        let s = &*self.shared;
        // SAFETY: we hold `busy` and the previous region ended with `pending` at 0,
        // so no worker reads `job` now (see `Shared`). The pointer's lifetime is
        // erased; it stays valid because this function does not return before
        // every worker has finished with it (`pending` back to 0 below).
        unsafe {
            let job: Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f);
            *s.job.get() = Some(job);
        }
        s.n_tasks.store(tasks, Ordering::Relaxed);
        s.next.store(0, Ordering::Relaxed);
        s.panicked.store(false, Ordering::Relaxed);
        s.pending.store(self.workers.len(), Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| claim_tasks(s, f)));
        let mut spins = 0u32;
        while s.pending.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            wait_step(spins);
        }
        // SAFETY: every worker has finished with the region (`pending` is 0).
        unsafe { *s.job.get() = None };
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if s.panicked.load(Ordering::Relaxed) {
            panic!("a kernel task panicked on a worker thread");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::SeqCst);
        s.generation.fetch_add(1, Ordering::SeqCst);
        {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Claims and runs tasks of the current region until none is left.
fn claim_tasks(s: &Shared, f: &(dyn Fn(usize) + Sync)) {
    let n = s.n_tasks.load(Ordering::Relaxed);
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return;
        }
        f(i);
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // Wait for a new region: spin first, then sleep.
        let mut spins = 0u32;
        let generation = loop {
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                break g;
            }
            if spins < SPIN_ITERS {
                spins += 1;
                wait_step(spins);
                continue;
            }
            let guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            let mut guard = guard;
            while s.generation.load(Ordering::SeqCst) == seen {
                guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
            drop(guard);
            spins = 0;
        };
        seen = generation;
        if s.shutdown.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: the generation changed after the caller wrote `job` (Acquire
        // above), and the caller keeps it valid until `pending` reaches 0, which
        // happens only after this worker's decrement below.
        let job = unsafe { *s.job.get() };
        if let Some(job) = job {
            // SAFETY: as above.
            let f = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| claim_tasks(s, f))).is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

static GLOBAL: OnceLock<Pool> = OnceLock::new();

thread_local! {
    /// A pool installed for this thread by [`install`], overriding the global one.
    static CURRENT: Cell<Option<*const Pool>> = const { Cell::new(None) };
}

/// Serialises [`set_threads`] calls, so that two of them never both build a pool.
static SETTING: Mutex<()> = Mutex::new(());

/// Creates the global pool now with `threads` threads (0: the machine's available
/// parallelism) and returns its thread count. Once the global pool exists (an
/// earlier call, or a kernel already ran), it is not rebuilt: the call returns the
/// existing pool's thread count, which the caller may compare with its request.
///
/// # Errors
/// [`SpawnError`] when a thread cannot be started; the global pool is then not
/// created, and the next call (or the first kernel call) may try again.
pub fn set_threads(threads: usize) -> Result<usize, SpawnError> {
    let _one_at_a_time = SETTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pool) = GLOBAL.get() {
        return Ok(pool.threads());
    }
    let pool = Pool::try_new(resolve(threads))?;
    // A kernel call on another thread may have created the pool meanwhile (first
    // use without a `set_threads`); then ours is dropped and joined here.
    let _ = GLOBAL.set(pool);
    Ok(GLOBAL.get().map_or(1, Pool::threads))
}

fn resolve(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The global pool, created on first use with the machine's available parallelism
/// unless [`set_threads`] created it before. Created here, it has as many threads
/// as could be started ([`Pool::new`]): a kernel call has no way to report an
/// error, and fewer threads give the same results.
pub fn global() -> &'static Pool {
    GLOBAL.get_or_init(|| Pool::new(resolve(0)))
}

/// Runs `f` with `pool` as this thread's pool for the kernels (tests and
/// benchmarks compare thread counts this way).
pub fn install<R>(pool: &Pool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<*const Pool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(pool as *const Pool))));
    f()
}

/// Runs `f(i)` for every `i < tasks` on this thread's pool (the installed one, or
/// the global one); see [`Pool::run`].
pub fn run(tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    match CURRENT.with(Cell::get) {
        // SAFETY: `install` keeps the pool borrowed for as long as it is current.
        Some(p) => unsafe { &*p }.run(tasks, f),
        None => global().run(tasks, f),
    }
}

/// Threads of this thread's pool.
pub fn threads() -> usize {
    match CURRENT.with(Cell::get) {
        // SAFETY: as in `run`.
        Some(p) => unsafe { &*p }.threads(),
        None => global().threads(),
    }
}

/// Runs `f(i, a_i, b_i)` on this thread's pool for the `i`-th chunks of `a` (of
/// `a_chunk` elements) and of `b` (of `b_chunk`), as many as the shorter sequence
/// of chunks (the last chunk of each may be shorter): rayon's
/// `a.par_chunks_mut(..).zip(b.par_chunks_mut(..)).enumerate()`.
pub fn for_each_chunk_pair<T: Send, U: Send>(
    a: &mut [T],
    a_chunk: usize,
    b: &mut [U],
    b_chunk: usize,
    f: impl Fn(usize, &mut [T], &mut [U]) + Sync,
) {
    assert!(a_chunk > 0 && b_chunk > 0, "chunk sizes must be positive");
    let tasks = a.len().div_ceil(a_chunk).min(b.len().div_ceil(b_chunk));
    let (pa, la, pb, lb) = (Ptr(a.as_mut_ptr()), a.len(), Ptr(b.as_mut_ptr()), b.len());
    run(tasks, &|i| {
        let (a0, b0) = (i * a_chunk, i * b_chunk);
        // SAFETY: task i alone touches chunk i of each slice (in bounds: i < tasks),
        // and both slices stay mutably borrowed until the region ends.
        let (ca, cb) = unsafe {
            (
                std::slice::from_raw_parts_mut(pa.get().add(a0), a_chunk.min(la - a0)),
                std::slice::from_raw_parts_mut(pb.get().add(b0), b_chunk.min(lb - b0)),
            )
        };
        f(i, ca, cb)
    });
}

/// Runs `f(i, chunk_i)` on this thread's pool for the chunks of `a` of `chunk`
/// elements (the last may be shorter): rayon's `a.par_chunks_mut(chunk).enumerate()`.
pub fn for_each_chunk<T: Send>(a: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    assert!(chunk > 0, "chunk size must be positive");
    let (p, len) = (Ptr(a.as_mut_ptr()), a.len());
    run(len.div_ceil(chunk), &|i| {
        let start = i * chunk;
        // SAFETY: task i alone touches chunk i (in bounds: start < len), and `a`
        // stays mutably borrowed until the region ends.
        let c =
            unsafe { std::slice::from_raw_parts_mut(p.get().add(start), chunk.min(len - start)) };
        f(i, c)
    });
}

/// A pointer handed to tasks that use disjoint parts of its buffer.
struct Ptr<T>(*mut T);

// SAFETY: only used for buffers whose disjoint parts go to different tasks, with
// `T: Send` so the parts may be used on other threads.
unsafe impl<T: Send> Sync for Ptr<T> {}

impl<T> Ptr<T> {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn get(&self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_task_runs_once() {
        for threads in [1, 2, 3, 5] {
            let pool = Pool::new(threads);
            for tasks in [0, 1, 2, 7, 64, 1000] {
                let hits: Vec<AtomicU32> = (0..tasks).map(|_| AtomicU32::new(0)).collect();
                pool.run(tasks, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn nested_and_concurrent_calls_run_inline() {
        let pool = Pool::new(2);
        let total = AtomicU32::new(0);
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    for _ in 0..200 {
                        pool.run(4, &|_| {
                            pool.run(3, &|_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 200 * 4 * 3);
    }

    #[test]
    fn sleeping_workers_wake() {
        let pool = Pool::new(3);
        let n = AtomicU32::new(0);
        pool.run(8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        // Long enough for the workers to stop spinning and sleep.
        std::thread::sleep(std::time::Duration::from_millis(50));
        pool.run(8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 16);
    }

    #[test]
    fn worker_panic_reaches_the_caller() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(64, &|i| {
                if i == 63 {
                    panic!("task 63");
                }
            })
        }));
        assert!(r.is_err());
        // The pool still works afterwards.
        let n = AtomicU32::new(0);
        pool.run(10, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn chunk_pairs_cover_both_slices() {
        let pool = Pool::new(3);
        let mut a = vec![0u32; 103];
        let mut b = vec![0u64; 40];
        install(&pool, || {
            for_each_chunk_pair(&mut a, 10, &mut b, 4, |i, ca, cb| {
                ca.iter_mut().for_each(|v| *v = i as u32 + 1);
                cb.iter_mut().for_each(|v| *v = i as u64 + 1);
            })
        });
        // 11 chunks of a, 10 of b: the pairs are the first 10.
        assert!(a[..100]
            .iter()
            .enumerate()
            .all(|(k, &v)| v == k as u32 / 10 + 1));
        assert!(a[100..].iter().all(|&v| v == 0));
        assert!(b.iter().enumerate().all(|(k, &v)| v == k as u64 / 4 + 1));
    }

    /// A spawner whose `fail_at`-th worker cannot start, counting live workers.
    fn failing_spawner(
        fail_at: usize,
        live: &Arc<AtomicUsize>,
    ) -> impl FnMut(usize, Box<dyn FnOnce() + Send>) -> std::io::Result<JoinHandle<()>> {
        let live = Arc::clone(live);
        move |i, body| {
            if i == fail_at {
                return Err(std::io::Error::from_raw_os_error(libc::EAGAIN));
            }
            let live = Arc::clone(&live);
            live.fetch_add(1, Ordering::SeqCst);
            os_spawn(
                i,
                Box::new(move || {
                    body();
                    live.fetch_sub(1, Ordering::SeqCst);
                }),
            )
        }
    }

    #[test]
    fn spawn_failure_is_an_error_and_leaves_no_thread() {
        let live = Arc::new(AtomicUsize::new(0));
        let err = Pool::try_build(6, &mut failing_spawner(3, &live))
            .err()
            .expect("the third worker fails");
        assert_eq!((err.requested, err.started), (6, 3));
        assert!(
            err.to_string().starts_with("cannot start 6 threads: "),
            "{err}"
        );
        // Dropping the partial pool joined its workers.
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn spawn_failure_falls_back_to_the_threads_started() {
        let live = Arc::new(AtomicUsize::new(0));
        let (pool, err) = Pool::build(6, &mut failing_spawner(3, &live));
        assert!(err.is_some());
        assert_eq!(pool.threads(), 3);
        assert_eq!(live.load(Ordering::SeqCst), 2);
        let hits: Vec<AtomicU32> = (0..100).map(|_| AtomicU32::new(0)).collect();
        pool.run(100, &|i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        drop(pool);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn install_overrides_the_global_pool() {
        let pool = Pool::new(3);
        install(&pool, || assert_eq!(threads(), 3));
        let one = Pool::new(1);
        install(&one, || assert_eq!(threads(), 1));
    }
}
