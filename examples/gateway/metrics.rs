//! Prometheus metrics: requests by operation and status, latency, bytes in and out, and
//! authorization decisions.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pin_project_lite::pin_project;
use s3_tower::authz::{Authorizer, AuthzError, AuthzInput, Decision};
use s3_tower::core::S3Operation;
use s3_tower::sts::StsCall;
use tower::{Layer, Service};

const REQUESTS: &str = "s3_tower_requests_total";
const DURATION: &str = "s3_tower_request_duration_seconds";
const BYTES_IN: &str = "s3_tower_received_bytes_total";
const BYTES_OUT: &str = "s3_tower_sent_bytes_total";
const AUTHZ_DECISIONS: &str = "s3_tower_authz_decisions_total";

/// Installs the global Prometheus recorder and returns the handle that renders it.
pub(crate) fn install() -> Result<PrometheusHandle, Box<dyn std::error::Error + Send + Sync>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(DURATION.to_owned()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ],
        )?
        .install_recorder()?;
    metrics::describe_counter!(REQUESTS, "S3 requests by operation and status");
    metrics::describe_histogram!(DURATION, "Time to the response head, by operation");
    metrics::describe_counter!(BYTES_IN, "Request body bytes received");
    metrics::describe_counter!(BYTES_OUT, "Response body bytes sent");
    metrics::describe_counter!(
        AUTHZ_DECISIONS,
        "Policy decisions (one per resource a request touches) by decision, engine and operation"
    );
    Ok(handle)
}

/// Records one request's metrics. Sits outside `S3RequestLayer` so refused requests count
/// too; reads the operation from the response extensions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MetricsService<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for MetricsService<S>
where
    S: Service<Request<CountingBody<ReqB>>, Response = Response<ResB>>,
    ReqB: Body<Data = Bytes>,
    ResB: Body<Data = Bytes>,
{
    type Response = Response<CountingBody<ResB>>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let req = req.map(|body| CountingBody {
            inner: body,
            counter: BYTES_IN,
        });
        MetricsFuture {
            inner: self.inner.call(req),
            start: Instant::now(),
        }
    }
}

pin_project! {
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
    }
}

impl<F, B, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<CountingBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        // S3 operations by name; STS calls by their action (`AssumeRoleWithWebIdentity`).
        let extensions = response.extensions();
        let operation = extensions.get::<S3Operation>().map_or_else(
            || {
                extensions
                    .get::<StsCall>()
                    .map_or("Invalid", |call| call.action)
            },
            |op| op.name(),
        );
        let status = response.status().as_u16().to_string();
        metrics::counter!(REQUESTS, "operation" => operation, "status" => status).increment(1);
        metrics::histogram!(DURATION, "operation" => operation)
            .record(this.start.elapsed().as_secs_f64());
        Poll::Ready(Ok(response.map(|body| CountingBody {
            inner: body,
            counter: BYTES_OUT,
        })))
    }
}

pin_project! {
    /// A body that adds the bytes it yields to a counter.
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        counter: &'static str,
    }
}

impl<B: Body<Data = Bytes>> Body for CountingBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            metrics::counter!(*this.counter).increment(data.len() as u64);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An [`Authorizer`] that counts the decisions of the one it wraps in
/// `s3_tower_authz_decisions_total{decision, engine, operation}`: `decision` is `allow`,
/// `deny` or `error` (an engine error, which denies).
#[derive(Debug)]
pub(crate) struct CountingAuthorizer<A> {
    inner: A,
}

impl<A: Authorizer> CountingAuthorizer<A> {
    pub(crate) fn new(inner: A) -> Self {
        Self { inner }
    }
}

impl<A: Authorizer> Authorizer for CountingAuthorizer<A> {
    fn authorize(&self, input: &AuthzInput) -> Result<Decision, AuthzError> {
        let result = self.inner.authorize(input);
        let decision = match &result {
            Ok(decision) => decision.as_str(),
            Err(_) => "error",
        };
        metrics::counter!(
            AUTHZ_DECISIONS,
            "decision" => decision,
            "engine" => self.inner.engine(),
            "operation" => input.operation.clone(),
        )
        .increment(1);
        result
    }

    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
}
