//! Executors decide when VUs run iterations (k6's names and semantics).
//! Each runs inside one worker on that worker's share of the VUs or iterations,
//! through the [`Runner`] seam: the worker runs real iterations, the tests
//! beside each executor run timed stand-ins on tokio's paused clock, so a
//! schedule is checked exactly and without any network.

mod arrival;
pub mod raw;
pub mod segment;

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use raw::{err, OptError, RawOptions};

/// Every executor, by the file that holds it: its settings, how they are
/// read from `[options]`, how they are recorded and how it runs. A new
/// executor is a file here implementing [`Spec`] and one line in this list.
macro_rules! executors {
    ($($variant:ident($module:ident::$ty:ident)),* $(,)?) => {
        $(mod $module;)*
        $(pub use $module::$ty;)*

        /// An executor with its settings.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Executor {
            $($variant($ty),)*
        }

        /// Every executor's name (k6's).
        pub const NAMES: &[&str] = &[$(<$ty as Spec>::NAME,)*];

        /// The `[options]` keys an executor takes (beyond the common ones);
        /// None for a name that is not an executor.
        pub fn keys(name: &str) -> Option<&'static [&'static str]> {
            $(if name == <$ty as Spec>::NAME {
                return Some(<$ty as Spec>::KEYS);
            })*
            None
        }

        /// Reads the executor `name` from `[options]` (a name from [`NAMES`]).
        pub fn parse(name: &str, raw: &RawOptions) -> Result<Executor, OptError> {
            $(if name == <$ty as Spec>::NAME {
                return <$ty as Spec>::parse(raw).map(Executor::$variant);
            })*
            Err(err(&["executor"], format!("unknown executor `{name}`")))
        }

        impl Executor {
            pub fn name(&self) -> &'static str {
                match self { $(Executor::$variant(_) => <$ty as Spec>::NAME,)* }
            }

            /// The most VUs this executor may run at once.
            pub fn max_vus(&self) -> u32 {
                match self { $(Executor::$variant(e) => e.max_vus(),)* }
            }

            /// How long the load phase is planned to last (an upper bound
            /// for per-vu-iterations), not counting the graceful stop.
            pub fn planned_duration(&self) -> Duration {
                match self { $(Executor::$variant(e) => e.planned_duration(),)* }
            }

            /// Whether latency is corrected for coordinated omission (open model).
            pub fn is_open_model(&self) -> bool {
                match self { $(Executor::$variant(_) => <$ty as Spec>::OPEN_MODEL,)* }
            }

            /// The settings as recorded in result files.
            pub fn to_json(&self) -> serde_json::Value {
                let mut v = match self { $(Executor::$variant(e) => e.to_json(),)* };
                if let Some(m) = v.as_object_mut() {
                    m.insert("executor".into(), self.name().into());
                }
                v
            }

            /// `--vus` / `--duration` applied as k6's command-line shortcuts
            /// do; notes say what changed.
            pub fn with_overrides(
                self,
                vus: Option<u32>,
                dur: Option<Duration>,
                notes: &mut Vec<String>,
            ) -> Result<Executor, String> {
                match self { $(Executor::$variant(e) => e.with_overrides(vus, dur, notes),)* }
            }

            fn vus_demand(&self) -> (&'static str, f64) {
                match self { $(Executor::$variant(e) => e.vus_demand(),)* }
            }

            fn peak_rate(&self) -> Option<(&'static str, f64)> {
                match self { $(Executor::$variant(e) => e.peak_rate(),)* }
            }
        }

        /// Runs the executor on one worker's share of its VUs or iterations.
        pub async fn run<R: Runner>(w: &Rc<R>, executor: &Executor, graceful: Duration) {
            match executor { $(Executor::$variant(e) => e.run(w, graceful).await,)* }
        }
    };
}

executors! {
    ConstantVus(constant_vus::ConstantVus),
    RampingVus(ramping_vus::RampingVus),
    PerVuIterations(per_vu_iterations::PerVuIterations),
    ConstantArrivalRate(constant_arrival_rate::ConstantArrivalRate),
    RampingArrivalRate(ramping_arrival_rate::RampingArrivalRate),
}

/// What one executor is: its name and keys, how its settings are read and
/// recorded, and how it runs.
pub trait Spec: Sized {
    /// k6's name, as written in `executor = "..."`.
    const NAME: &'static str;
    /// The `[options]` keys it takes besides the common ones.
    const KEYS: &'static [&'static str];
    /// Arrivals on a schedule, whatever the latency (coordinated omission corrected).
    const OPEN_MODEL: bool = false;
    /// Reads and checks its settings; errors name their key.
    fn parse(raw: &RawOptions) -> Result<Self, OptError>;
    /// Its settings as recorded in result files (without the name).
    fn to_json(&self) -> serde_json::Value;
    fn max_vus(&self) -> u32;
    fn planned_duration(&self) -> Duration;
    /// The key and the most VUs it asks for, checked against the machine.
    fn vus_demand(&self) -> (&'static str, f64) {
        ("vus", self.max_vus() as f64)
    }
    /// The key and the most iterations per second it schedules (open model).
    fn peak_rate(&self) -> Option<(&'static str, f64)> {
        None
    }
    /// `--vus` / `--duration`, or why they do not apply.
    fn with_overrides(
        self,
        vus: Option<u32>,
        dur: Option<Duration>,
        notes: &mut Vec<String>,
    ) -> Result<Executor, String>;
    fn run<R: Runner>(&self, w: &Rc<R>, graceful: Duration) -> impl Future<Output = ()>;
}

/// The most iterations per second an arrival-rate executor may schedule: far
/// above what one machine sends, far below a schedule that only spins.
pub const MAX_RATE_PER_S: f64 = 1_000_000.0;

/// The most VUs a run may hold: each keeps a connection (a file descriptor)
/// and its buffers, so at most 50,000 and within the open-file limit.
pub fn vu_limit() -> (u64, String) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
        r.rlim_cur
    } else {
        u64::MAX
    };
    let by_files = nofile.saturating_sub(100);
    if by_files < 50_000 {
        (
            by_files,
            format!("one connection per VU and the open-file limit is {nofile} (ulimit -n)"),
        )
    } else {
        (50_000, "each VU holds a connection and its buffers".into())
    }
}

impl Executor {
    /// Refuses, before anything is sent, VU counts and rates past what the
    /// machine can hold (they used to exhaust memory or spin).
    pub fn check_capacity(&self) -> Result<(), OptError> {
        let (limit, why) = vu_limit();
        let (key, vus) = self.vus_demand();
        if vus > limit as f64 {
            return Err(err(
                &[key],
                format!("{vus} VUs is more than this machine can hold: at most {limit} ({why})"),
            ));
        }
        if let Some((key, rate)) = self.peak_rate() {
            if rate > MAX_RATE_PER_S {
                return Err(err(
                    &[key],
                    format!(
                        "{rate} iterations/s is more than one machine can schedule: at most {MAX_RATE_PER_S}/s"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What an executor drives: the VUs of one worker and their iterations.
pub trait Runner: 'static {
    type Vu: 'static;
    /// This worker's index among `count()` workers.
    fn index(&self) -> usize;
    fn count(&self) -> usize;
    /// When the load phase starts, the same instant on every worker.
    fn t0(&self) -> Instant;
    /// A new VU with a global 0-based index.
    fn new_vu(&self, idx: u64) -> Self::Vu;
    /// Runs one iteration; `scheduled` is its planned start (open model).
    fn iteration<'a>(
        &'a self,
        vu: &'a mut Self::Vu,
        scheduled: Option<Instant>,
    ) -> impl Future<Output = ()> + 'a;
    /// VUs currently taking part in the load.
    fn active(&self) -> &Cell<u64>;
    /// VUs in the middle of an iteration.
    fn busy(&self) -> u64;
    /// Counts the iterations in flight as interrupted.
    fn mark_interrupted(&self);
    /// Counts `n` arrivals that found no VU.
    fn record_dropped(&self, n: u64);

    /// The share of the whole test this generator runs (its shard's stripe).
    fn stripe(&self) -> &crate::executor::segment::Stripe;

    /// The global index of this worker's k-th thing: the shard's own things
    /// dealt round robin among its workers.
    fn nth(&self, k: u64) -> u64 {
        self.stripe()
            .nth(self.index() as u64 + k * self.count() as u64)
    }

    /// How many of the things numbered 0..n fall to this worker.
    fn share_count(&self, n: u64) -> u64 {
        let in_shard = self.stripe().count_below(n);
        in_shard
            .saturating_sub(self.index() as u64)
            .div_ceil(self.count() as u64)
    }

    /// This worker's part of `n` things numbered 0..n.
    fn share(&self, n: u64) -> impl Iterator<Item = u64> {
        (0..self.share_count(n)).map(move |k| self.nth(k))
    }
}

/// Waits for every VU task, cutting those still running at `deadline`.
async fn wait_all<R: Runner>(w: &R, mut set: JoinSet<()>, deadline: Instant) {
    let all = async { while set.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline, all).await.is_err() {
        set.abort_all();
        w.mark_interrupted();
    }
}

/// A runner for the executors' own tests: each iteration takes a fixed time
/// on tokio's paused clock and is logged with its start and planned start.
#[cfg(test)]
pub(crate) mod fake {
    use std::cell::{Cell, RefCell};
    use std::future::Future;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::Runner;

    /// One iteration: the VU's global index, its start and its planned
    /// start, in milliseconds since t0.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Start {
        pub vu: u64,
        pub at_ms: u64,
        pub planned_ms: Option<u64>,
    }

    pub struct Fake {
        pub index: usize,
        pub count: usize,
        pub t0: Instant,
        pub iteration: Duration,
        /// How long an iteration holds the thread before it waits (a VU
        /// stalling the worker: the clock jumps while nothing else runs).
        pub stall: Cell<Duration>,
        pub starts: RefCell<Vec<Start>>,
        pub active: Cell<u64>,
        pub busy: Cell<u64>,
        pub dropped: Cell<u64>,
        pub interrupted: Cell<u64>,
        pub vus: Cell<u64>,
        pub stripe: crate::executor::segment::Stripe,
    }

    impl Fake {
        /// Worker `index` of `count`, iterations lasting `iteration`.
        pub fn new(index: usize, count: usize, iteration: Duration) -> Fake {
            Fake {
                index,
                count,
                t0: Instant::now(),
                iteration,
                stall: Cell::new(Duration::ZERO),
                starts: RefCell::new(Vec::new()),
                active: Cell::new(0),
                busy: Cell::new(0),
                dropped: Cell::new(0),
                interrupted: Cell::new(0),
                vus: Cell::new(0),
                stripe: crate::executor::segment::Stripe::whole(),
            }
        }

        fn ms(&self, at: Instant) -> u64 {
            at.duration_since(self.t0).as_millis() as u64
        }

        /// Start times (ms) of one VU's iterations.
        pub fn of_vu(&self, vu: u64) -> Vec<u64> {
            self.starts
                .borrow()
                .iter()
                .filter(|s| s.vu == vu)
                .map(|s| s.at_ms)
                .collect()
        }
    }

    impl Runner for Fake {
        type Vu = u64;

        fn index(&self) -> usize {
            self.index
        }
        fn count(&self) -> usize {
            self.count
        }
        fn t0(&self) -> Instant {
            self.t0
        }
        fn stripe(&self) -> &crate::executor::segment::Stripe {
            &self.stripe
        }
        fn new_vu(&self, idx: u64) -> u64 {
            self.vus.set(self.vus.get() + 1);
            idx
        }
        async fn iteration(&self, vu: &mut u64, scheduled: Option<Instant>) {
            self.busy.set(self.busy.get() + 1);
            self.starts.borrow_mut().push(Start {
                vu: *vu,
                at_ms: self.ms(Instant::now()),
                planned_ms: scheduled.map(|s| self.ms(s)),
            });
            if !self.stall.get().is_zero() {
                tokio::time::advance(self.stall.get()).await;
            }
            tokio::time::sleep(self.iteration).await;
            self.busy.set(self.busy.get() - 1);
        }
        fn active(&self) -> &Cell<u64> {
            &self.active
        }
        fn busy(&self) -> u64 {
            self.busy.get()
        }
        fn mark_interrupted(&self) {
            self.interrupted
                .set(self.interrupted.get() + self.busy.replace(0));
        }
        fn record_dropped(&self, n: u64) {
            self.dropped.set(self.dropped.get() + n);
        }
    }

    /// Runs `f` on a current-thread runtime whose clock is paused: time moves
    /// only when every task waits, straight to the next timer.
    pub fn paused<F: Future>(f: impl FnOnce() -> F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async move { f().await })
    }
}
