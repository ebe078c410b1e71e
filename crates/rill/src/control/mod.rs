//! The control plane: the admission gate, the session registry, auth, hooks, stats and metrics.

pub mod auth;
pub mod gate;
pub mod hooks;
pub mod limits;
pub mod metrics;
pub mod sessions;
pub mod stats;
pub mod webhooks;
