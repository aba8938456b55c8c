//! One scenario split across several generators and put back together:
//! which share of the VUs, iterations and arrivals each shard runs (k6's
//! execution segments), how shards start on one instant and hand their
//! results back (the coordinator), and the exact merge of their results.

pub mod coordinate;
pub mod kubernetes;
pub mod merge;
pub mod swarm;

pub use crate::executor::segment::Stripe;

/// `--vus` / `--duration` as every shard is given them (the whole run's values).
pub fn load_flags(vus: Option<u32>, duration: Option<std::time::Duration>) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(v) = vus {
        a.extend(["--vus".to_string(), v.to_string()]);
    }
    if let Some(d) = duration {
        a.extend(["--duration".to_string(), format!("{}ms", d.as_millis())]);
    }
    a
}
