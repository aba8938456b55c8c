//! One scenario split across several generators and put back together:
//! which share of the VUs, iterations and arrivals each shard runs (k6's
//! execution segments), how shards start on one instant and hand their
//! results back (the coordinator), and the exact merge of their results.

pub mod coordinate;
pub mod kubernetes;
pub mod merge;
pub mod swarm;

pub use crate::executor::segment::Stripe;
