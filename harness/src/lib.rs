//! loadtest: a benchmarking harness that runs declarative HTTP load scenarios,
//! records HDR latency histograms and writes comparable result files.

pub mod bench_cmd;
pub mod cli;
pub mod compare;
pub mod compare_cmd;
pub mod config;
pub mod db;
pub mod db_cmd;
pub mod duration;
pub mod engine;
pub mod exit;
pub mod metrics;
pub mod output;
pub mod populate;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod stack;
pub mod stack_cmd;
