//! [`StsLayer`]: answers STS calls (`AssumeRoleWithWebIdentity`, `GetCallerIdentity`) on the
//! S3 listener and passes every other request on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use data_encoding::BASE64URL_NOPAD;
use http::{Method, Request, Response, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use s3_auth::jwt::JwtValidator;
use s3_auth::{AuthError, SigV4Verifier};
use s3_core::{Principal, RequestId, SessionPolicy};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::StsError;
use crate::keyring::SessionKeyring;
use crate::params::{Action, AssumeRoleParams, DEFAULT_DURATION, Params};
use crate::response::{self, AssumedRole, CallerIdentity};
use crate::roles::{Role, Roles};
use crate::session::SessionClaims;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The default largest STS form body read (the longest web identity token AWS accepts is
/// 20,000 characters).
pub const DEFAULT_STS_BODY_LIMIT: usize = 64 * 1024;

/// The account `GetCallerIdentity` names for users that are not sessions of a role, unless
/// set with [`StsLayer::account_id`].
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// Answers STS calls on the S3 listener, as unmodified AWS SDKs and CLIs send them: an
/// `application/x-www-form-urlencoded` `POST /` or a `GET /?Action=...`.
///
/// - `AssumeRoleWithWebIdentity` (unsigned): the web identity token is checked with the
///   [`JwtValidator`], the role must admit it, and the answer holds temporary credentials
///   sealed by the [`SessionKeyring`] — to be resolved by `SigV4Layer` through
///   [`crate::SessionCredentials`].
/// - `GetCallerIdentity` (signed, with the service `sts`): answered when a verifier is given
///   with [`StsLayer::caller_identity`].
///
/// Every other request goes to the inner service untouched. Place it outside
/// `S3RequestLayer`, which would refuse STS calls as unknown S3 operations.
///
/// ```
/// use std::sync::Arc;
/// use s3_sts::{Role, Roles, SessionKey, SessionKeyring, StsLayer};
/// use s3_auth::jwt::{IssuerConfig, JwtValidator};
///
/// let validator = Arc::new(JwtValidator::new([
///     IssuerConfig::new("https://sso.example.com").audience("s3-gateway"),
/// ])?);
/// let roles = Roles::new([Role::new("arn:aws:iam::123456789012:role/readers")?])?;
/// let keyring = Arc::new(SessionKeyring::new(SessionKey::generate("k1")?, [])?);
/// let layer = StsLayer::new(validator, roles, keyring);
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StsLayer {
    endpoint: Arc<Endpoint>,
}

#[derive(Clone)]
struct Endpoint {
    validator: Arc<JwtValidator>,
    roles: Roles,
    keyring: Arc<SessionKeyring>,
    caller_identity: Option<SigV4Verifier>,
    account_id: String,
    body_limit: usize,
}

impl std::fmt::Debug for StsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsLayer")
            .field("roles", &self.endpoint.roles.len())
            .field("account_id", &self.endpoint.account_id)
            .finish_non_exhaustive()
    }
}

impl StsLayer {
    /// An STS endpoint for `roles`, validating web identity tokens with `validator` and
    /// sealing sessions with `keyring`.
    pub fn new(validator: Arc<JwtValidator>, roles: Roles, keyring: Arc<SessionKeyring>) -> Self {
        Self {
            endpoint: Arc::new(Endpoint {
                validator,
                roles,
                keyring,
                caller_identity: None,
                account_id: DEFAULT_ACCOUNT_ID.to_owned(),
                body_limit: DEFAULT_STS_BODY_LIMIT,
            }),
        }
    }

    fn endpoint_mut(&mut self) -> &mut Endpoint {
        Arc::make_mut(&mut self.endpoint)
    }

    /// Answers `GetCallerIdentity`, verifying its signature with `verifier` (set to the
    /// service `sts` here) — typically over the same resolver as `SigV4Layer`, sessions and
    /// static users alike. Without it, `GetCallerIdentity` is refused as an unknown action.
    #[must_use]
    pub fn caller_identity(mut self, verifier: SigV4Verifier) -> Self {
        self.endpoint_mut().caller_identity = Some(verifier.service("sts"));
        self
    }

    /// The account `GetCallerIdentity` names for users that are not role sessions (default
    /// [`DEFAULT_ACCOUNT_ID`]).
    #[must_use]
    pub fn account_id(mut self, account_id: impl Into<String>) -> Self {
        self.endpoint_mut().account_id = account_id.into();
        self
    }

    /// The largest form body read (default [`DEFAULT_STS_BODY_LIMIT`]); larger calls are
    /// refused with `RequestEntityTooLarge`.
    #[must_use]
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.endpoint_mut().body_limit = limit;
        self
    }
}

impl<S> Layer<S> for StsLayer {
    type Service = StsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StsService {
            inner,
            endpoint: Arc::clone(&self.endpoint),
        }
    }
}

/// The service of [`StsLayer`].
#[derive(Clone)]
pub struct StsService<S> {
    inner: S,
    endpoint: Arc<Endpoint>,
}

impl<S> std::fmt::Debug for StsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsService").finish_non_exhaustive()
    }
}

/// What an STS call was, in the extensions of every response [`StsLayer`] writes, for
/// metrics and access logs outside the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StsCall {
    /// `AssumeRoleWithWebIdentity`, `GetCallerIdentity`, or `Unknown` when the call named no
    /// action the endpoint answers.
    pub action: &'static str,
    /// The STS error code of a refused call.
    pub error_code: Option<&'static str>,
}

/// The response future of [`StsService`].
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if !is_sts_call(&req) {
            return Box::pin(self.inner.call(req));
        }
        let endpoint = Arc::clone(&self.endpoint);
        Box::pin(async move { Ok(endpoint.answer(req).await) })
    }
}

/// Whether `req` is an STS call: `/` with `Action` in the query, or a form `POST /` whose
/// query is empty or names only `Action`, `Version` and `X-Amz-*` parameters. S3 has no
/// operation of that shape: a browser-form upload is `multipart/form-data`, and the S3
/// `POST`s on a virtual-hosted bucket's `/` carry a sub-resource (`?delete`), whatever
/// content type the client sends.
fn is_sts_call<B>(req: &Request<B>) -> bool {
    if req.uri().path() != "/" {
        return false;
    }
    let query_action = req
        .uri()
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "Action"));
    let form_post = req.method() == Method::POST
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|t| {
                    t.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
    let sts_query = req.uri().query().is_none_or(|q| {
        form_urlencoded::parse(q.as_bytes())
            .all(|(name, _)| matches!(&*name, "Action" | "Version") || name.starts_with("X-Amz-"))
    });
    (form_post && sts_query)
        || (query_action && matches!(*req.method(), Method::GET | Method::POST))
}

impl Endpoint {
    async fn answer<B, ResBody>(&self, req: Request<B>) -> Response<ResBody>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
        ResBody: From<Bytes>,
    {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::random);
        let (parts, body) = req.into_parts();
        let now = SystemTime::now();
        let mut call = StsCall {
            action: "Unknown",
            error_code: None,
        };
        let result = match self.read_body(body).await {
            Ok(bytes) => {
                self.dispatch(&parts, &bytes, now, request_id.as_str(), &mut call)
                    .await
            }
            Err(err) => Err(err),
        };
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                let code = err.code();
                call.error_code = Some(code.code);
                // Debug: unauthenticated callers must not be able to flood the log.
                tracing::debug!(
                    target: "s3_tower::sts",
                    request_id = request_id.as_str(),
                    action = call.action,
                    code = code.code,
                    reason = %err,
                    "STS call refused"
                );
                response::error(&err, request_id.as_str())
            }
        };
        response.extensions_mut().insert(call);
        response
    }

    async fn read_body<B>(&self, body: B) -> Result<Bytes, StsError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        Limited::new(body, self.body_limit)
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .map_err(|err| {
                if err.is::<http_body_util::LengthLimitError>() {
                    StsError::BodyTooLarge(self.body_limit)
                } else {
                    StsError::MalformedRequest("the request body could not be read".to_owned())
                }
            })
    }

    async fn dispatch<ResBody: From<Bytes>>(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: SystemTime,
        request_id: &str,
        call: &mut StsCall,
    ) -> Result<Response<ResBody>, StsError> {
        let query = parts.uri.query().unwrap_or("").as_bytes();
        let params = Params::parse([query, body])?;
        let action = params.action()?;
        call.action = match action {
            Action::AssumeRoleWithWebIdentity => "AssumeRoleWithWebIdentity",
            Action::GetCallerIdentity => "GetCallerIdentity",
        };
        match action {
            Action::AssumeRoleWithWebIdentity => {
                self.assume_role(&params.assume_role()?, now, request_id)
                    .await
            }
            Action::GetCallerIdentity => self.caller(parts, body, now, request_id).await,
        }
    }

    async fn assume_role<ResBody: From<Bytes>>(
        &self,
        params: &AssumeRoleParams,
        now: SystemTime,
        request_id: &str,
    ) -> Result<Response<ResBody>, StsError> {
        // The token first: an unauthenticated caller learns nothing about the roles.
        let principal = self
            .validator
            .validate(&params.token)
            .await
            .map_err(StsError::from_identity_token)?;
        let role = self
            .roles
            .get(&params.role_arn)
            .filter(|role| role.admits(&principal))
            .ok_or(StsError::AccessDenied)?;
        let duration = params.duration.unwrap_or(DEFAULT_DURATION);
        if duration > role.max_session() {
            return Err(StsError::DurationAboveRoleMaximum);
        }
        if let Some(policy) = &params.policy {
            SessionPolicy::parse(policy).map_err(StsError::from_session_policy)?;
        }
        let issued_at = whole_seconds(now);
        let claims = SessionClaims {
            subject: principal.subject.clone(),
            groups: role.session_groups(&principal),
            claims: principal.claims.clone(),
            role_arn: role.arn().to_owned(),
            session_name: params.session_name.clone(),
            policy: params.policy.clone(),
            issued_at,
            expires_at: issued_at + duration,
        };
        let issued = self.keyring.seal(&claims)?;
        let assumed_role_arn = assumed_role_arn(role, &params.session_name);
        let assumed_role_id = format!("{}:{}", role.id(), params.session_name);
        let expiration = iso8601(issued.expiration)?;
        let audience = match principal.claims.get("aud") {
            Some(Value::String(aud)) => aud.as_str(),
            Some(Value::Array(items)) => items.iter().find_map(Value::as_str).unwrap_or(""),
            _ => "",
        };
        let provider = principal
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or("");
        let token_subject = token_sub(&params.token);
        let token_subject = token_subject.as_deref().unwrap_or(&principal.subject);
        tracing::info!(
            target: "s3_tower::sts",
            request_id,
            subject = %principal.subject,
            role = role.arn(),
            session = %params.session_name,
            access_key_id = %issued.access_key_id,
            expiration = %expiration,
            session_policy = params.policy.is_some(),
            "temporary credentials issued"
        );
        response::assumed_role(
            &AssumedRole {
                subject: token_subject,
                audience,
                provider,
                arn: &assumed_role_arn,
                id: &assumed_role_id,
                access_key_id: &issued.access_key_id,
                secret_access_key: issued.secret_access_key.expose(),
                session_token: &issued.session_token,
                expiration: &expiration,
            },
            request_id,
        )
    }

    async fn caller<ResBody: From<Bytes>>(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: SystemTime,
        request_id: &str,
    ) -> Result<Response<ResBody>, StsError> {
        let verifier = self
            .caller_identity
            .as_ref()
            .ok_or_else(|| StsError::InvalidAction("GetCallerIdentity".to_owned()))?;
        let verified = verifier
            .verify_with_body_at(parts, body, now)
            .await
            .map_err(StsError::Authentication)?
            .ok_or(StsError::Authentication(AuthError::AnonymousNotAllowed))?;
        let principal: Principal = verified.principal;
        let (arn, user_id, account) = match &principal.session {
            Some(session) => {
                let role = Role::new(&session.role_arn)?;
                (
                    assumed_role_arn(&role, &session.session_name),
                    format!("{}:{}", role.id(), session.session_name),
                    role.account().to_owned(),
                )
            }
            None => (
                format!(
                    "arn:aws:iam::{}:user/{}",
                    self.account_id, principal.subject
                ),
                principal.subject.clone(),
                self.account_id.clone(),
            ),
        };
        response::caller_identity(
            &CallerIdentity {
                arn: &arn,
                user_id: &user_id,
                account: &account,
            },
            request_id,
        )
    }
}

/// `arn:aws:sts::<account>:assumed-role/<role name>/<session name>`, as AWS names a session.
fn assumed_role_arn(role: &Role, session_name: &str) -> String {
    format!(
        "arn:aws:sts::{}:assumed-role/{}/{session_name}",
        role.account(),
        role.name()
    )
}

/// The `sub` claim of `token`, a JWT the validator has verified (so its payload is
/// authentic), as `SubjectFromWebIdentityToken` reports it: the raw claim, whatever subject
/// claim and prefix the issuer maps to the principal. `None` if the token has no string or
/// number `sub`.
fn token_sub(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Sub {
        sub: Option<Value>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = BASE64URL_NOPAD
        .decode(payload.trim_end_matches('=').as_bytes())
        .ok()?;
    match serde_json::from_slice::<Sub>(&bytes).ok()?.sub? {
        Value::String(sub) => Some(sub),
        Value::Number(sub) => Some(sub.to_string()),
        _ => None,
    }
}

/// `time` without its sub-second part, as sessions record it.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs())
}

/// `2026-11-26T18:00:00Z`.
fn iso8601(time: SystemTime) -> Result<String, StsError> {
    OffsetDateTime::from(time)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .map_err(|e| StsError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, uri: &str, content_type: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn sts_calls_are_told_from_s3_requests() {
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        assert!(is_sts_call(&request(Method::POST, "/", form)));
        assert!(is_sts_call(&request(
            Method::GET,
            "/?Action=GetCallerIdentity&Version=2011-06-15",
            None
        )));
        assert!(!is_sts_call(&request(Method::GET, "/", None)));
        assert!(!is_sts_call(&request(Method::POST, "/bucket", form)));
        assert!(!is_sts_call(&request(
            Method::POST,
            "/",
            Some("multipart/form-data; boundary=x")
        )));
        assert!(!is_sts_call(&request(Method::PUT, "/?Action=x", None)));
        assert!(!is_sts_call(&request(Method::GET, "/?Actions=x", None)));
    }

    #[test]
    fn form_posts_with_an_s3_sub_resource_are_not_sts() {
        let form = Some("application/x-www-form-urlencoded");
        // DeleteObjects on a virtual-hosted bucket, sent with a form content type.
        for uri in [
            "/?delete",
            "/?delete=",
            "/?delete&Version=2011-06-15",
            "/?uploads",
            "/?x-amz-foo=1",
            "/?=x",
        ] {
            assert!(!is_sts_call(&request(Method::POST, uri, form)), "{uri}");
        }
        for uri in [
            "/",
            "/?",
            "/?Version=2011-06-15",
            "/?Action=GetCallerIdentity&Version=2011-06-15",
            "/?X-Amz-Date=20261126T000000Z&X-Amz-Security-Token=t",
        ] {
            assert!(is_sts_call(&request(Method::POST, uri, form)), "{uri}");
        }
    }

    #[test]
    fn the_token_subject_is_the_raw_sub() {
        let token = |payload: &str| {
            format!(
                "eyJhbGciOiJFUzI1NiJ9.{}.c2ln",
                BASE64URL_NOPAD.encode(payload.as_bytes())
            )
        };
        assert_eq!(
            token_sub(&token(r#"{"sub":"etl-bot","email":"x@y"}"#)).as_deref(),
            Some("etl-bot")
        );
        assert_eq!(token_sub(&token(r#"{"sub":42}"#)).as_deref(), Some("42"));
        assert_eq!(token_sub(&token(r#"{"email":"x@y"}"#)), None);
        assert_eq!(token_sub(&token(r#"{"sub":["a"]}"#)), None);
        assert_eq!(token_sub("not-a-jwt"), None);
        assert_eq!(token_sub("a.!!!.c"), None);
    }

    /// The events logged while `f` runs: level, target and every field as text.
    fn logged(f: impl FnOnce()) -> Vec<(tracing::Level, String, String)> {
        use std::sync::Mutex;
        use tracing::field::{Field, Visit};
        use tracing::span::{Attributes, Id, Record};
        use tracing::{Event, Metadata, Subscriber};

        #[derive(Default)]
        struct Capture(Arc<Mutex<Vec<(tracing::Level, String, String)>>>);
        struct Fields(String);
        impl Visit for Fields {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, "{}={value:?} ", field.name());
            }
        }
        impl Subscriber for Capture {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &Attributes<'_>) -> Id {
                Id::from_u64(1)
            }
            fn record(&self, _: &Id, _: &Record<'_>) {}
            fn record_follows_from(&self, _: &Id, _: &Id) {}
            fn event(&self, event: &Event<'_>) {
                let mut fields = Fields(String::new());
                event.record(&mut fields);
                let meta = event.metadata();
                self.0
                    .lock()
                    .unwrap()
                    .push((*meta.level(), meta.target().to_owned(), fields.0));
            }
            fn enter(&self, _: &Id) {}
            fn exit(&self, _: &Id) {}
        }

        let capture = Capture::default();
        let events = Arc::clone(&capture.0);
        tracing::subscriber::with_default(capture, f);
        events.lock().unwrap().clone()
    }

    #[test]
    fn refusals_are_logged_at_debug_and_idp_failures_at_warn() {
        use s3_auth::jwt::IssuerConfig;

        let validator = Arc::new(
            JwtValidator::new([IssuerConfig::new("https://idp.example").audience("s3")]).unwrap(),
        );
        let keyring =
            Arc::new(SessionKeyring::new(crate::SessionKey::generate("k1").unwrap(), []).unwrap());
        let layer = StsLayer::new(validator, Roles::default(), keyring);
        let request = Request::post("/")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(Bytes::from_static(
                b"Action=Nope&Version=2011-06-15",
            )))
            .unwrap();
        let events = logged(|| {
            let future = layer
                .endpoint
                .answer::<_, http_body_util::Full<Bytes>>(request);
            let mut future = std::pin::pin!(future);
            let poll = future
                .as_mut()
                .poll(&mut Context::from_waker(std::task::Waker::noop()));
            assert!(poll.is_ready());
        });
        assert_eq!(events.len(), 1, "{events:?}");
        let (level, target, fields) = &events[0];
        assert_eq!(
            (*level, target.as_str()),
            (tracing::Level::DEBUG, "s3_tower::sts")
        );
        assert!(
            fields.contains("STS call refused") && fields.contains("InvalidAction"),
            "{fields}"
        );

        let detail = "GET http://10.1.2.3/certs: tls handshake eof";
        let events = logged(|| {
            let err = StsError::from_identity_token(AuthError::JwksUnavailable(detail.to_owned()));
            assert!(!err.to_string().contains("10.1.2.3"));
        });
        assert_eq!(events.len(), 1, "{events:?}");
        let (level, target, fields) = &events[0];
        assert_eq!(
            (*level, target.as_str()),
            (tracing::Level::WARN, "s3_tower::sts")
        );
        assert!(fields.contains(detail), "{fields}");
    }

    #[test]
    fn expirations_are_iso8601_to_the_second() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_712_978_284);
        assert_eq!(iso8601(whole_seconds(t)).unwrap(), "2026-11-26T17:09:38Z");
    }
}
