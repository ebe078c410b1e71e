//! The control plane: the session registry (and, later, auth, hooks, stats and metrics).

pub mod auth;
pub mod hooks;
pub mod sessions;
pub mod webhooks;
