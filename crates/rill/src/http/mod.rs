//! The HTTP listener and router: HTTP-FLV and WS-FLV on `/{app}/{stream}.flv`, the API under
//! `/api` and `/metrics` (see [`api`]), CORS as configured, 404 for unknown paths and 405 for wrong
//! methods. Mutating API requests pass through [`api_guard`] first.

mod api;
pub mod api_guard;
pub mod basic_auth;
mod conn;
mod direct;
mod flv;
mod media;
mod recordings;
mod relay_api;
pub mod tls;
pub(crate) mod ws_frame;

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::routing::get;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::server::Context;

pub use conn::serve;

/// Builds the router.
pub fn router(ctx: Arc<Context>) -> Router {
    let origin = ctx.config.http.allow_origin.clone();
    let router = Router::new()
        .route("/{app}/{file}", get(flv::play))
        .route("/{app}/{stream}/{file}", get(media::serve))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(ctx.clone())
        .merge(api::router(ctx.clone()))
        .merge(recordings::router(ctx.clone()))
        // On the whole router, not on each API sub-router: a route added under `/api` later is
        // guarded without anyone having to remember to.
        .layer(axum::middleware::from_fn_with_state(
            api_guard::Guard::new(&ctx.config.auth),
            api_guard::guard,
        ));
    if origin.is_empty() {
        return router;
    }
    let allow = if origin == "*" {
        AllowOrigin::any()
    } else {
        match HeaderValue::from_str(&origin) {
            Ok(v) => AllowOrigin::exact(v),
            Err(_) => return router,
        }
    };
    router.layer(CorsLayer::new().allow_origin(allow))
}
