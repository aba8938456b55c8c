//! The open model shared by the arrival-rate executors: iterations start on a
//! schedule whatever the server does; an iteration that finds no free VU (and no
//! room to create one) is dropped and counted, never queued.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Runner;

/// When arrivals start, numbered 0, 1, 2, ... across all workers.
pub trait Plan {
    /// Start offset of arrival `k`; `None` past the last one.
    fn offset(&self, k: u64) -> Option<Duration>;
    /// How many arrivals start before `t`, up to rounding (corrected by [`count_before`]).
    fn estimate_before(&self, t: Duration) -> u64;
}

/// How many arrivals start before `t`, exactly as [`Plan::offset`] places them.
pub fn count_before(plan: &impl Plan, t: Duration) -> u64 {
    let mut c = plan.estimate_before(t);
    while c > 0 && plan.offset(c - 1).is_none_or(|o| o >= t) {
        c -= 1;
    }
    while plan.offset(c).is_some_and(|o| o < t) {
        c += 1;
    }
    c
}

/// Runs this worker's share of the plan's arrivals (its shard's stripe,
/// every `count()`-th of it from its `index()`) until `end`.
pub async fn run<R: Runner>(
    w: &Rc<R>,
    plan: &impl Plan,
    end: Duration,
    pre_allocated: u32,
    max_vus: u32,
    graceful: Duration,
) {
    let pre = w.share_count(pre_allocated as u64);
    let max = w.share_count(max_vus as u64).max(pre);
    // This worker's j-th arrival: its shard's stripe of the plan's arrivals,
    // dealt round robin among the shard's workers.
    let global = |j: u64| w.nth(j);
    let mine_below = |c: u64| w.share_count(c);
    let idle: Rc<RefCell<Vec<mpsc::UnboundedSender<Instant>>>> = Rc::new(RefCell::new(Vec::new()));
    let mut set = JoinSet::new();
    let mut created = 0u64;
    let spawn = |set: &mut JoinSet<()>, created: &mut u64| {
        // Global VU index: this worker's n-th VU.
        let idx = w.nth(*created);
        *created += 1;
        let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
        let w = w.clone();
        let idle = idle.clone();
        let me = tx.clone();
        set.spawn_local(async move {
            let mut vu = w.new_vu(idx);
            while let Some(at) = rx.recv().await {
                w.active().set(w.active().get() + 1);
                w.iteration(&mut vu, Some(at)).await;
                w.active().set(w.active().get() - 1);
                idle.borrow_mut().push(me.clone());
            }
        });
        tx
    };
    for _ in 0..pre {
        let tx = spawn(&mut set, &mut created);
        idle.borrow_mut().push(tx);
    }
    let mut j = 0u64;
    while let Some(off) = plan.offset(global(j)).filter(|o| *o < end) {
        let at = w.t0() + off;
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        } else {
            // Behind schedule: still let the VUs run between arrivals.
            tokio::task::yield_now().await;
        }
        j += 1;
        let free = idle.borrow_mut().pop();
        match free {
            Some(tx) => {
                let _ = tx.send(at);
            }
            None if created < max => {
                let tx = spawn(&mut set, &mut created);
                let _ = tx.send(at);
            }
            None => {
                // No VU now, so every other arrival already due is dropped too:
                // counted in one step, because at a high rate walking them one by
                // one would keep this loop behind for the rest of the run.
                let now = Instant::now().saturating_duration_since(w.t0()).min(end);
                let due = mine_below(count_before(plan, now)).max(j);
                w.record_dropped(1 + due - j);
                j = due;
            }
        }
    }
    // Let running iterations finish, then close every VU's queue.
    let deadline = w.t0() + end + graceful;
    tokio::time::sleep_until(w.t0() + end).await;
    let drain = async {
        while w.busy() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout_at(deadline, drain).await.is_err() {
        set.abort_all();
        w.mark_interrupted();
        return;
    }
    idle.borrow_mut().clear();
    set.abort_all();
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::super::fake::{paused, Fake};
    use super::{count_before, Plan};

    /// `rate` per second, evenly spaced, counting how often it is asked.
    struct Counted {
        rate: f64,
        asked: Cell<u64>,
    }

    impl Plan for Counted {
        fn offset(&self, k: u64) -> Option<Duration> {
            self.asked.set(self.asked.get() + 1);
            Some(Duration::from_secs_f64(k as f64 / self.rate))
        }
        fn estimate_before(&self, t: Duration) -> u64 {
            // Deliberately off by a few: count_before must correct it.
            ((t.as_secs_f64() * self.rate) as u64).saturating_sub(2)
        }
    }

    #[test]
    fn count_before_agrees_with_the_offsets() {
        let p = Counted {
            rate: 7.0,
            asked: Cell::new(0),
        };
        for ms in [0u64, 1, 142, 143, 1000, 2001] {
            let t = Duration::from_millis(ms);
            let want = (0..100).filter(|k| p.offset(*k).unwrap() < t).count() as u64;
            assert_eq!(count_before(&p, t), want, "{ms} ms");
        }
    }

    #[test]
    fn arrivals_missed_while_the_worker_stalled_are_counted_not_walked() {
        // 1,000,000/s for 1 s and one VU whose iterations hold the thread for
        // 600 ms each: the arrivals due meanwhile find no VU.
        let (f, asked) = paused(|| async {
            let f = Rc::new(Fake::new(0, 1, Duration::from_millis(1)));
            f.stall.set(Duration::from_millis(600));
            let plan = Counted {
                rate: 1e6,
                asked: Cell::new(0),
            };
            let second = Duration::from_secs(1);
            super::run(&f, &plan, second, 1, 1, second).await;
            (f, plan.asked.get())
        });
        // The VU started at 0 and, free again at 601 ms, at the next arrival.
        let starts: Vec<u64> = f.starts.borrow().iter().map(|s| s.at_ms).collect();
        assert_eq!(starts, vec![0, 601]);
        // Every other arrival is dropped and counted ...
        assert_eq!(f.dropped.get(), 999_998);
        // ... in a few steps, not one by one (that took a million).
        assert!(asked < 1_000, "offsets asked {asked} times");
    }
}
