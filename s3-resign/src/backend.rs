//! A backend S3 endpoint and the buckets routed to it.

use std::sync::Arc;

use globset::{Glob, GlobMatcher};
use http::Uri;

use crate::credentials::BackendCredentials;
use crate::error::ResignError;

/// How the gateway addresses buckets on a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendAddressing {
    /// `https://endpoint/bucket/key` (MinIO, Ceph RGW, Garage, most on-premise stores).
    #[default]
    Path,
    /// `https://bucket.endpoint/key` (AWS, most public clouds).
    Virtual,
}

/// A backend S3 endpoint: where to send requests and how to sign them.
#[derive(Debug, Clone)]
pub struct Backend {
    name: String,
    endpoint: Uri,
    region: String,
    addressing: BackendAddressing,
    credentials: BackendCredentials,
}

impl Backend {
    /// A backend at `endpoint` (`http(s)://host[:port][/base-path]`), signing for `region`.
    pub fn new(
        name: impl Into<String>,
        endpoint: &str,
        region: impl Into<String>,
        addressing: BackendAddressing,
        credentials: BackendCredentials,
    ) -> Result<Self, ResignError> {
        let endpoint: Uri = endpoint.trim_end_matches('/').parse().map_err(|e| {
            ResignError::Build(format!("invalid backend endpoint {endpoint:?}: {e}"))
        })?;
        match endpoint.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(ResignError::Build(format!(
                    "backend endpoint {endpoint} must start with http:// or https://"
                )));
            }
        }
        if endpoint.host().is_none() || endpoint.query().is_some() {
            return Err(ResignError::Build(format!(
                "backend endpoint {endpoint} needs a host and no query"
            )));
        }
        Ok(Self {
            name: name.into(),
            endpoint,
            region: region.into(),
            addressing,
            credentials,
        })
    }

    /// The backend's name, for logs and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint URI.
    pub fn endpoint(&self) -> &Uri {
        &self.endpoint
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Path or virtual-hosted addressing.
    pub fn addressing(&self) -> BackendAddressing {
        self.addressing
    }

    /// The gateway's credentials for this backend.
    pub fn credentials(&self) -> &BackendCredentials {
        &self.credentials
    }
}

/// A bucket-name pattern: an exact name or a glob (`data-*`, `team-?-logs`).
#[derive(Debug, Clone)]
pub struct BucketPattern {
    source: String,
    matcher: GlobMatcher,
}

impl BucketPattern {
    /// Compiles a pattern. `*` matches any run of characters, `?` one character, `[..]` a
    /// class; anything else matches itself.
    pub fn new(pattern: &str) -> Result<Self, ResignError> {
        let glob = Glob::new(pattern)
            .map_err(|e| ResignError::Build(format!("invalid bucket pattern {pattern:?}: {e}")))?;
        Ok(Self {
            source: pattern.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether `bucket` matches.
    pub fn matches(&self, bucket: &str) -> bool {
        self.source == bucket || self.matcher.is_match(bucket)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Chooses the backend for each bucket: the first rule whose pattern matches, else the
/// default backend, else none (the request is refused with `NoSuchBucket`).
#[derive(Debug, Clone, Default)]
pub struct BackendRouter {
    rules: Vec<(BucketPattern, Arc<Backend>)>,
    default: Option<Arc<Backend>>,
}

impl BackendRouter {
    /// A router with no backends: every request is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// A router that sends every bucket to `backend`.
    pub fn single(backend: Backend) -> Self {
        Self::new().default_backend(Arc::new(backend))
    }

    /// Routes buckets matching `pattern` to `backend`. Rules are tried in the order added.
    #[must_use]
    pub fn route(mut self, pattern: BucketPattern, backend: Arc<Backend>) -> Self {
        self.rules.push((pattern, backend));
        self
    }

    /// The backend for buckets no rule matches, and for `ListBuckets`.
    #[must_use]
    pub fn default_backend(mut self, backend: Arc<Backend>) -> Self {
        self.default = Some(backend);
        self
    }

    /// The backend for `bucket` (`None` = a request without bucket, i.e. `ListBuckets`).
    pub fn backend_for(&self, bucket: Option<&str>) -> Result<&Arc<Backend>, ResignError> {
        match bucket {
            Some(bucket) => self
                .rules
                .iter()
                .find(|(pattern, _)| pattern.matches(bucket))
                .map(|(_, backend)| backend)
                .or(self.default.as_ref())
                .ok_or_else(|| ResignError::NoBackend(bucket.to_owned())),
            None => self.default.as_ref().ok_or(ResignError::NoDefaultBackend),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(
            Backend::new(
                name,
                "http://127.0.0.1:9000",
                "us-east-1",
                BackendAddressing::Path,
                BackendCredentials::from_static("a", "b", None),
            )
            .unwrap(),
        )
    }

    #[test]
    fn exact_then_glob_then_default() {
        let router = BackendRouter::new()
            .route(BucketPattern::new("logs").unwrap(), backend("logs"))
            .route(BucketPattern::new("data-*").unwrap(), backend("data"))
            .default_backend(backend("default"));
        assert_eq!(router.backend_for(Some("logs")).unwrap().name(), "logs");
        assert_eq!(router.backend_for(Some("data-eu")).unwrap().name(), "data");
        assert_eq!(router.backend_for(Some("datax")).unwrap().name(), "default");
        assert_eq!(router.backend_for(None).unwrap().name(), "default");
    }

    #[test]
    fn without_default_unmatched_buckets_are_refused() {
        let router =
            BackendRouter::new().route(BucketPattern::new("data-*").unwrap(), backend("data"));
        assert!(matches!(
            router.backend_for(Some("other")),
            Err(ResignError::NoBackend(b)) if b == "other"
        ));
        assert!(matches!(
            router.backend_for(None),
            Err(ResignError::NoDefaultBackend)
        ));
    }

    #[test]
    fn endpoints_are_validated() {
        let creds = BackendCredentials::from_static("a", "b", None);
        for bad in ["ftp://x", "localhost:9000", "http://h/?q=1"] {
            assert!(
                Backend::new("b", bad, "r", BackendAddressing::Path, creds.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
