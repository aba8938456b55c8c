//! The database of the stack: migrations now; reset strategies and seeding later.

pub mod migrate;
