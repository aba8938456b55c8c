//! loadtest: a benchmarking harness that runs declarative HTTP load scenarios,
//! records HDR latency histograms and writes comparable result files.
//!
//! Layers, top to bottom: `commands` (one file per sub-command, the only
//! layer that knows the whole pipeline), `prepare` (the stack and database
//! before a run), `config`, then the stages (`compare`/`report`, `results`,
//! `engine`, `populate`, `db`, `metrics`, `stack`, `scenario`) and the shared
//! helpers (`files`, `output`, `duration`, `exit`).

pub mod ab;
pub mod commands;
pub mod compare;
pub mod config;
pub mod db;
pub mod detect;
pub mod duration;
pub mod engine;
pub mod executor;
pub mod exit;
pub mod files;
pub mod k6;
pub mod metrics;
pub mod output;
pub mod populate;
pub mod prepare;
pub mod redact;
pub mod report;
pub mod resolve;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod shard;
pub mod stack;
pub mod view;
