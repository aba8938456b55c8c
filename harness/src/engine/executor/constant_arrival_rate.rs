//! `constant-arrival-rate`: `rate` iterations per `time_unit`, evenly spaced.

use std::rc::Rc;
use std::time::Duration;

use super::arrival::Plan;
use super::Runner;

/// Arrival `k` at `k * interval` seconds.
struct Even {
    interval: f64,
}

impl Plan for Even {
    fn offset(&self, k: u64) -> Option<Duration> {
        Some(Duration::from_secs_f64(k as f64 * self.interval))
    }
    fn estimate_before(&self, t: Duration) -> u64 {
        (t.as_secs_f64() / self.interval).ceil() as u64
    }
}

pub async fn run<R: Runner>(
    w: &Rc<R>,
    rate: f64,
    time_unit: Duration,
    duration: Duration,
    pre_allocated: u32,
    max_vus: u32,
    graceful: Duration,
) {
    let plan = Even {
        interval: time_unit.as_secs_f64() / rate,
    };
    super::arrival::run(w, &plan, duration, pre_allocated, max_vus, graceful).await
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::super::fake::{paused, Fake, Start};

    #[test]
    fn arrivals_keep_their_schedule_and_drop_when_no_vu_is_free() {
        let ms = Duration::from_millis;
        // 10/s for 1 s, iterations of 250 ms, one VU ready and room for one more.
        let f = paused(|| async {
            let f = Rc::new(Fake::new(0, 1, ms(250)));
            super::run(&f, 10.0, ms(1000), ms(1000), 1, 2, ms(1000)).await;
            f
        });
        let starts: Vec<u64> = f.starts.borrow().iter().map(|s| s.at_ms).collect();
        assert_eq!(starts, vec![0, 100, 300, 400, 600, 700, 900]);
        // 200, 500 and 800 found both VUs busy: dropped, never queued.
        assert_eq!(f.dropped.get(), 3);
        assert_eq!(f.vus.get(), 2);
        assert!(f
            .starts
            .borrow()
            .iter()
            .all(|s: &Start| s.planned_ms == Some(s.at_ms)));
        assert_eq!(f.interrupted.get(), 0);
    }

    #[test]
    fn workers_take_alternate_arrivals() {
        let ms = Duration::from_millis;
        let f = paused(|| async {
            let f = Rc::new(Fake::new(1, 2, ms(10)));
            super::run(&f, 10.0, ms(1000), ms(1000), 2, 2, ms(1000)).await;
            f
        });
        let starts: Vec<u64> = f.starts.borrow().iter().map(|s| s.at_ms).collect();
        assert_eq!(starts, vec![100, 300, 500, 700, 900]);
        // The VUs are split too: one of the two is this worker's (global index 1).
        assert_eq!(f.vus.get(), 1);
        assert!(f.starts.borrow().iter().all(|s| s.vu == 1));
    }
}
