//! `constant-arrival-rate`: `rate` iterations per `time_unit`, evenly spaced.

use std::rc::Rc;
use std::time::Duration;

use crate::engine::worker::Worker;

pub async fn run(
    w: &Rc<Worker>,
    rate: f64,
    time_unit: Duration,
    duration: Duration,
    pre_allocated: u32,
    max_vus: u32,
    graceful: Duration,
) {
    let interval = time_unit.as_secs_f64() / rate;
    let (index, count) = (w.index as u64, w.count as u64);
    let offsets = (0u64..)
        .skip(index as usize)
        .step_by(count as usize)
        .map(move |k| Duration::from_secs_f64(k as f64 * interval));
    super::arrival::run(w, offsets, duration, pre_allocated, max_vus, graceful).await
}
