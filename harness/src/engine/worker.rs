//! A worker thread: a single-threaded tokio runtime that owns a share of the
//! VUs and records into its own metrics, flushed to the controller each second.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::client::IoCounters;
use super::vu::{Shared, Vu};
use crate::executor::Runner;
use crate::metrics::MetricsSet;

/// What a worker sends to the controller.
pub enum Report {
    /// Everything recorded during second `second` of the run (0-based).
    Window {
        worker: usize,
        second: u64,
        set: Box<MetricsSet>,
        /// VUs active at the end of the window.
        vus: u64,
        /// VUs created so far.
        allocated: u64,
    },
    /// The worker finished; nothing more will come from it.
    Done { worker: usize },
}

pub struct Worker {
    pub index: usize,
    pub count: usize,
    pub shared: Arc<Shared>,
    /// When the load phase starts, the same instant on every worker.
    pub t0: Instant,
    pub metrics: RefCell<MetricsSet>,
    pub counters: Arc<IoCounters>,
    /// VUs currently taking part in the load.
    pub active: Cell<u64>,
    /// VUs in the middle of an iteration (what a hard stop interrupts).
    pub busy: Cell<u64>,
    pub allocated: Cell<u64>,
    last_bytes: Cell<(u64, u64)>,
    /// The last second reported, so the final (partial) window follows it.
    last_second: Cell<Option<u64>>,
    /// Sets the controller has merged and emptied, to record into again.
    recycled: std::sync::mpsc::Receiver<Box<MetricsSet>>,
}

impl Worker {
    pub fn new(
        index: usize,
        count: usize,
        shared: Arc<Shared>,
        t0: Instant,
        recycled: std::sync::mpsc::Receiver<Box<MetricsSet>>,
    ) -> Worker {
        let sc = &shared.scenario;
        let metrics = MetricsSet::for_scenario(sc);
        Worker {
            index,
            count,
            shared,
            t0,
            metrics: RefCell::new(metrics),
            counters: Arc::new(IoCounters::default()),
            active: Cell::new(0),
            busy: Cell::new(0),
            allocated: Cell::new(0),
            last_bytes: Cell::new((0, 0)),
            last_second: Cell::new(None),
            recycled,
        }
    }

    /// Takes what was recorded since the last flush.
    pub fn take(&self) -> Box<MetricsSet> {
        let fresh = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Box::new(MetricsSet::for_scenario(&self.shared.scenario)));
        let mut set = Box::new(self.metrics.replace(*fresh));
        let sent = self.counters.sent.load(Ordering::Relaxed);
        let received = self.counters.received.load(Ordering::Relaxed);
        let (s0, r0) = self.last_bytes.replace((sent, received));
        set.bytes_sent = sent - s0;
        set.bytes_received = received - r0;
        set
    }

    fn report(&self, tx: &mpsc::UnboundedSender<Report>, second: u64) {
        self.last_second.set(Some(second));
        let _ = tx.send(Report::Window {
            worker: self.index,
            second,
            set: self.take(),
            vus: self.active.get(),
            allocated: self.allocated.get(),
        });
    }
}

impl Runner for Worker {
    type Vu = Vu;

    fn index(&self) -> usize {
        self.index
    }

    fn count(&self) -> usize {
        self.count
    }

    fn t0(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.t0)
    }

    fn stripe(&self) -> &crate::executor::segment::Stripe {
        &self.shared.scenario.stripe
    }

    fn new_vu(&self, idx: u64) -> Vu {
        self.allocated.set(self.allocated.get() + 1);
        Vu::new(idx + 1, self.shared.target.clone(), self.counters.clone()).in_local_set()
    }

    /// Runs one iteration, keeping the busy count for interruption accounting.
    async fn iteration(&self, vu: &mut Vu, scheduled: Option<tokio::time::Instant>) {
        self.busy.set(self.busy.get() + 1);
        vu.iteration(
            &self.shared,
            &self.metrics,
            scheduled.map(tokio::time::Instant::into_std),
        )
        .await;
        self.busy.set(self.busy.get() - 1);
    }

    fn active(&self) -> &Cell<u64> {
        &self.active
    }

    fn busy(&self) -> u64 {
        self.busy.get()
    }

    /// Counts iterations cut short (VU tasks dropped mid-iteration).
    fn mark_interrupted(&self) {
        let n = self.busy.replace(0);
        self.metrics.borrow_mut().interrupted_iterations += n;
    }

    fn record_dropped(&self, n: u64) {
        self.metrics.borrow_mut().dropped_iterations += n;
    }
}

/// Body of a worker thread.
pub fn run(worker: Worker, tx: mpsc::UnboundedSender<Report>, mut stop: watch::Receiver<bool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime can be built");
    let local = tokio::task::LocalSet::new();
    let w = std::rc::Rc::new(worker);
    let w2 = w.clone();
    let tx2 = tx.clone();
    local.block_on(&rt, async move {
        let t0 = tokio::time::Instant::from_std(w.t0);
        tokio::time::sleep_until(t0).await;
        let ticker_w = w.clone();
        let ticker_tx = tx.clone();
        let ticker = tokio::task::spawn_local(async move {
            let mut tick =
                tokio::time::interval_at(t0 + Duration::from_secs(1), Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let second = (ticker_w.t0.elapsed().as_millis() as u64).saturating_sub(500) / 1000;
                ticker_w.report(&ticker_tx, second);
            }
        });
        tokio::select! {
            _ = crate::executor::run(
                &w,
                &w.shared.scenario.options.executor,
                w.shared.scenario.options.graceful_stop,
            ) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        ticker.abort();
    });
    // Dropping the LocalSet drops the VU tasks still running.
    drop(local);
    w2.mark_interrupted();
    // The window after the last one reported: when the load ends right on a
    // second boundary, before that second's tick, its data still lands in order.
    let second = w2.last_second.get().map_or(0, |s| s + 1);
    w2.report(&tx2, second);
    let _ = tx2.send(Report::Done { worker: w2.index });
}
