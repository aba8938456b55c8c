//! Executors decide when VUs run iterations (k6's names and semantics).
//! Each runs inside one worker on that worker's share of the VUs or iterations.

mod arrival;
mod constant_arrival_rate;
mod constant_vus;
mod per_vu_iterations;
mod ramping_arrival_rate;
mod ramping_vus;

use std::rc::Rc;
use std::time::Instant;

use tokio::task::JoinSet;

use super::worker::Worker;
use crate::scenario::Executor;

pub async fn run(w: &Rc<Worker>) {
    let graceful = w.shared.scenario.options.graceful_stop;
    match w.shared.scenario.options.executor.clone() {
        Executor::ConstantVus { vus, duration } => {
            constant_vus::run(w, vus, duration, graceful).await
        }
        Executor::RampingVus { start_vus, stages } => {
            ramping_vus::run(w, start_vus, &stages, graceful).await
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
async fn wait_all(w: &Worker, mut set: JoinSet<()>, deadline: Instant) {
    let all = async { while set.join_next().await.is_some() {} };
    if tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), all)
        .await
        .is_err()
    {
        set.abort_all();
        w.mark_interrupted();
    }
}
