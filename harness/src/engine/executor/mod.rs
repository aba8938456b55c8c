//! Executors decide when VUs run iterations (k6's names and semantics).
//! Each runs inside one worker on that worker's share of the VUs or iterations,
//! through the [`Runner`] seam: the worker runs real iterations, the tests
//! beside each executor run timed stand-ins on tokio's paused clock, so a
//! schedule is checked exactly and without any network.

mod arrival;
mod constant_arrival_rate;
mod constant_vus;
mod per_vu_iterations;
mod ramping_arrival_rate;
mod ramping_vus;

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::scenario::Executor;

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

    /// This worker's part of `n` things numbered 0..n (round robin).
    fn share(&self, n: u64) -> impl Iterator<Item = u64> {
        (self.index() as u64..n).step_by(self.count())
    }

    /// How many of `n` things fall to this worker.
    fn share_count(&self, n: u64) -> u64 {
        self.share(n).count() as u64
    }
}

pub async fn run<R: Runner>(w: &Rc<R>, executor: &Executor, graceful: std::time::Duration) {
    match executor.clone() {
        Executor::ConstantVus { vus, duration } => {
            constant_vus::run(w, vus, duration, graceful).await
        }
        Executor::RampingVus { start_vus, stages } => {
            ramping_vus::run(w, start_vus, &stages, executor.max_vus(), graceful).await
        }
        Executor::PerVuIterations {
            vus,
            iterations,
            max_duration,
        } => per_vu_iterations::run(w, vus, iterations, max_duration, graceful).await,
        Executor::ConstantArrivalRate {
            rate,
            time_unit,
            duration,
            pre_allocated_vus,
            max_vus,
        } => {
            constant_arrival_rate::run(
                w,
                rate,
                time_unit,
                duration,
                pre_allocated_vus,
                max_vus,
                graceful,
            )
            .await
        }
        Executor::RampingArrivalRate {
            start_rate,
            time_unit,
            stages,
            pre_allocated_vus,
            max_vus,
        } => {
            ramping_arrival_rate::run(
                w,
                start_rate,
                time_unit,
                &stages,
                pre_allocated_vus,
                max_vus,
                graceful,
            )
            .await
        }
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
