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

/// Runs iterations at the given offsets from the start (this worker's share).
pub async fn run<R: Runner>(
    w: &Rc<R>,
    offsets: impl Iterator<Item = Duration>,
    end: Duration,
    pre_allocated: u32,
    max_vus: u32,
    graceful: Duration,
) {
    let pre = w.share_count(pre_allocated as u64);
    let max = w.share_count(max_vus as u64).max(pre);
    let idle: Rc<RefCell<Vec<mpsc::UnboundedSender<Instant>>>> = Rc::new(RefCell::new(Vec::new()));
    let mut set = JoinSet::new();
    let mut created = 0u64;
    let spawn = |set: &mut JoinSet<()>, created: &mut u64| {
        // Global VU index: this worker's n-th VU.
        let idx = w.index() as u64 + *created * w.count() as u64;
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
    for off in offsets {
        if off >= end {
            break;
        }
        let at = w.t0() + off;
        tokio::time::sleep_until(at).await;
        let free = idle.borrow_mut().pop();
        match free {
            Some(tx) => {
                let _ = tx.send(at);
            }
            None if created < max => {
                let tx = spawn(&mut set, &mut created);
                let _ = tx.send(at);
            }
            None => w.record_dropped(),
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
