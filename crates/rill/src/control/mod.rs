//! The control plane: the session registry (and, later, auth, hooks, stats and metrics).

pub mod auth;
pub mod hooks;
pub mod metrics;
pub mod sessions;
pub mod stats;
pub mod webhooks;
