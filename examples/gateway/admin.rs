//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and with `--dev` the development
//! token issuer's discovery document and JWKS under `/dev/oidc`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::dev_idp::{DEV_OIDC_PATH, DevOidcDocuments};

#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) metrics: PrometheusHandle,
    pub(crate) ready: Arc<AtomicBool>,
    /// The `--dev` issuer's documents, served under `/dev/oidc`.
    pub(crate) dev_oidc: Option<Arc<DevOidcDocuments>>,
}

pub(crate) fn router(state: AdminState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if let Some(docs) = state.dev_oidc.clone() {
        let discovery = docs.discovery.clone();
        let jwks = docs.jwks.clone();
        router = router
            .route(
                &format!("{DEV_OIDC_PATH}/.well-known/openid-configuration"),
                get(move || async move { json(discovery) }),
            )
            .route(
                &format!("{DEV_OIDC_PATH}/jwks.json"),
                get(move || async move { json(jwks) }),
            );
    }
    router.with_state(state)
}

fn json(body: String) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(state): State<AdminState>) -> String {
    state.metrics.render()
}
