//! The control plane: the session registry (and, later, auth, hooks, stats and metrics).

pub mod sessions;
