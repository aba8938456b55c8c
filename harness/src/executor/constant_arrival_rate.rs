//! `constant-arrival-rate`: `rate` iterations per `time_unit`, evenly spaced.

use std::rc::Rc;
use std::time::Duration;

use super::arrival::Plan;
use super::Runner;
use serde_json::json;

use super::{Executor, Spec};
use crate::duration;
use super::raw::{dur, err, need, time_unit, OptError, RawOptions};

/// `rate` iterations per `time_unit` for `duration`, whatever the latency
/// (open model), on VUs taken from a pool.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantArrivalRate {
    pub rate: f64,
    pub time_unit: Duration,
    pub duration: Duration,
    pub pre_allocated_vus: u32,
    pub max_vus: u32,
}

impl Spec for ConstantArrivalRate {
    const NAME: &'static str = "constant-arrival-rate";
    const KEYS: &'static [&'static str] = &[
        "rate",
        "time_unit",
        "duration",
        "pre_allocated_vus",
        "max_vus",
    ];
    const OPEN_MODEL: bool = true;

    fn parse(raw: &RawOptions) -> Result<Self, OptError> {
        let pre = need(raw.pre_allocated_vus, "pre_allocated_vus", Self::NAME)?;
        let rate = need(raw.rate, "rate", Self::NAME)?;
        if rate <= 0.0 || !rate.is_finite() {
            return Err(err(&["rate"], "rate must be above zero"));
        }
        Ok(ConstantArrivalRate {
            rate,
            time_unit: time_unit(raw)?,
            duration: need(dur("duration", &raw.duration)?, "duration", Self::NAME)?,
            pre_allocated_vus: pre,
            max_vus: raw.max_vus.unwrap_or(pre).max(pre),
        })
    }

    fn to_json(&self) -> serde_json::Value {
        json!({"rate": self.rate, "time_unit": duration::format(self.time_unit),
               "duration": duration::format(self.duration),
               "pre_allocated_vus": self.pre_allocated_vus, "max_vus": self.max_vus})
    }

    fn max_vus(&self) -> u32 {
        self.max_vus
    }

    fn vus_demand(&self) -> (&'static str, f64) {
        ("max_vus", self.max_vus as f64)
    }

    fn peak_rate(&self) -> Option<(&'static str, f64)> {
        Some(("rate", self.rate / self.time_unit.as_secs_f64()))
    }

    fn planned_duration(&self) -> Duration {
        self.duration
    }

    fn with_overrides(
        mut self,
        vus: Option<u32>,
        dur: Option<Duration>,
        notes: &mut Vec<String>,
    ) -> Result<Executor, String> {
        if vus.is_some() {
            return Err("--vus does not apply to constant-arrival-rate: the rate drives the load; set pre_allocated_vus/max_vus in the scenario".into());
        }
        if let Some(x) = dur {
            self.duration = x;
            notes.push(format!("duration = {} (--duration)", duration::format(x)));
        }
        Ok(Executor::ConstantArrivalRate(self))
    }

    async fn run<R: Runner>(&self, w: &Rc<R>, graceful: Duration) {
        run(
            w,
            self.rate,
            self.time_unit,
            self.duration,
            self.pre_allocated_vus,
            self.max_vus,
            graceful,
        )
        .await
    }
}


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

    /// Every (shard, worker) pair's planned starts: together exactly the
    /// whole run's schedule, each arrival once.
    fn sharded_starts(shards: usize, workers: usize, rate: f64) -> Vec<Vec<u64>> {
        let ms = Duration::from_millis;
        let mut all = Vec::new();
        for s in 0..shards {
            // As the engine does: no more workers than the shard has VUs.
            let stripe = crate::executor::segment::Stripe::equal(s, shards).unwrap();
            let workers = workers.min(stripe.count_below(8) as usize);
            for w in 0..workers {
                let f = paused(|| async {
                    let mut f = Fake::new(w, workers, ms(1));
                    f.stripe = crate::executor::segment::Stripe::equal(s, shards).unwrap();
                    let f = Rc::new(f);
                    super::run(&f, rate, ms(1000), ms(2000), 8, 8, ms(1000)).await;
                    f
                });
                let planned: Vec<u64> = f.starts.borrow().iter().map(|s| s.planned_ms.unwrap()).collect();
                all.push(planned);
            }
        }
        all
    }

    #[test]
    fn shards_fire_exactly_their_stripe_of_the_global_ticks() {
        let whole: Vec<u64> = sharded_starts(1, 1, 50.0).concat();
        assert_eq!(whole.len(), 100);
        for shards in [2, 3, 4, 7] {
            let parts = sharded_starts(shards, 2, 50.0);
            let mut union: Vec<u64> = parts.concat();
            union.sort_unstable();
            assert_eq!(union, whole, "{shards} shards");
            // Shard 0's share is its stripe's count of the 100 ticks.
            let want = crate::executor::segment::Stripe::equal(0, shards).unwrap().count_below(100);
            let shard0 = 2.min(crate::executor::segment::Stripe::equal(0, shards).unwrap().count_below(8) as usize);
            assert_eq!(parts[..shard0].iter().map(Vec::len).sum::<usize>() as u64, want);
        }
    }
}
