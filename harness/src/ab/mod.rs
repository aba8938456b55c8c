//! `loadtest ab` and `loadtest calibrate` below their flags: both sides
//! built (B from the working tree, A in a kept worktree of its commit),
//! served at once on one stack, measured in alternating trials with the
//! database reset before each; `compare::ab` judges them.

pub mod git;
mod sides;
mod trial;
pub mod trials;

pub use trials::{Context, Mode, Options, Plan};
