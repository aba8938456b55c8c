//! `per-vu-iterations`: each VU runs a fixed number of iterations, bounded by `max_duration`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::engine::worker::Worker;

pub async fn run(
    w: &Rc<Worker>,
    vus: u32,
    iterations: u64,
    max_duration: Duration,
    graceful: Duration,
) {
    let end = w.t0 + max_duration;
    let mut set = JoinSet::new();
    for idx in w.share(vus as u64) {
        let w = w.clone();
        set.spawn_local(async move {
            let mut vu = w.new_vu(idx);
            w.active.set(w.active.get() + 1);
            for _ in 0..iterations {
                if Instant::now() >= end {
                    break;
                }
                w.iteration(&mut vu, None).await;
            }
            w.active.set(w.active.get() - 1);
        });
    }
    super::wait_all(w, set, end + graceful).await;
}
