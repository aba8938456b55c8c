//! The system under test's stack: the compose model, interpolation, Docker
//! Engine calls (bollard) and local stand-in images. Knows nothing of HTTP load.

pub mod compose;
pub mod context;
pub mod docker;
pub mod images;
pub mod interpolate;
pub mod observe;
pub mod probe;
pub mod progress;
pub mod up;
pub mod usage;
