//! S3 errors as clients expect them: an error code, an HTTP status and the XML body
//! `<Error><Code>..</Code><Message>..</Message><Resource>..</Resource><RequestId>..</RequestId></Error>`.
//!
//! Every s3-tower crate maps its own `thiserror` enum into [`S3Error`] in one place, so the
//! wire format of an error is written here and nowhere else.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::request_id::{REQUEST_ID_HEADER, RequestId};

/// The S3 error codes the gateway answers with, each tied to its HTTP status.
///
/// The names are the `<Code>` values of the S3 API (plus `BadGateway` and `GatewayTimeout`
/// for a backend the gateway cannot reach in time), so clients and their retry logic
/// recognise them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum S3ErrorCode {
    /// 403: the request is not allowed.
    AccessDenied,
    /// 400: a bucket name that S3 does not accept.
    InvalidBucketName,
    /// 400: a query parameter or header value that is not valid.
    InvalidArgument,
    /// 400: the request is well formed HTTP but not a valid S3 request.
    InvalidRequest,
    /// 400: the URI cannot be parsed (bad percent-encoding, not UTF-8).
    InvalidURI,
    /// 400: an XML body that cannot be parsed.
    MalformedXML,
    /// 405: the method is not allowed on this resource.
    MethodNotAllowed,
    /// 501: an operation the gateway does not recognise or does not support.
    NotImplemented,
    /// 500: an unexpected failure inside the gateway.
    InternalError,
    /// 502: the backend answered with something that is not a valid HTTP response.
    BadGateway,
    /// 503: the backend (or a service the gateway needs) cannot be reached.
    ServiceUnavailable,
    /// 504: the backend did not answer in time.
    GatewayTimeout,
    /// 400: the request body is larger than allowed.
    EntityTooLarge,
    /// 411: a request body without a length where one is required.
    MissingContentLength,
    /// 403: the signature does not match.
    SignatureDoesNotMatch,
    /// 403: the access key id is not known.
    InvalidAccessKeyId,
    /// 403: the request time is too far from the gateway's clock.
    RequestTimeTooSkewed,
    /// 400: the temporary credentials have expired.
    ExpiredToken,
    /// 400: the body does not match its declared SHA-256.
    XAmzContentSHA256Mismatch,
    /// 400: the body does not match its declared `Content-MD5` or `x-amz-checksum-*`.
    BadDigest,
    /// 400: the `Authorization` header cannot be parsed or names the wrong scope.
    AuthorizationHeaderMalformed,
    /// 400: the presigned-URL query parameters are missing, malformed or out of range.
    AuthorizationQueryParametersError,
    /// 400: the session token is not valid.
    InvalidToken,
    /// 400: the body ended before the length the request declared.
    IncompleteBody,
    /// 400: the trailing headers of an aws-chunked body are missing or malformed.
    MalformedTrailerError,
    /// 416: the requested range cannot be served.
    InvalidRange,
    /// 404: the bucket is not served by this gateway.
    NoSuchBucket,
    /// 400: an object key longer than 1024 bytes.
    KeyTooLongError,
    /// 400: a `Content-MD5` header that is not the base64 of 16 bytes.
    InvalidDigest,
    /// 400: user metadata over the 2 KiB S3 allows.
    MetadataTooLarge,
    /// 403: the operation does not fit the object's state (e.g. an object stored without
    /// encryption in a bucket that only serves encrypted objects).
    InvalidObjectState,
    /// 404: the multipart upload does not exist (or its id is not one the gateway issued).
    NoSuchUpload,
    /// 400: a part of a multipart upload that cannot be used (missing, or of a shape the
    /// gateway cannot complete).
    InvalidPart,
    /// 400: the parts of a `CompleteMultipartUpload` are not in ascending order.
    InvalidPartOrder,
}

impl S3ErrorCode {
    /// The `<Code>` string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDenied",
            Self::InvalidBucketName => "InvalidBucketName",
            Self::InvalidArgument => "InvalidArgument",
            Self::InvalidRequest => "InvalidRequest",
            Self::InvalidURI => "InvalidURI",
            Self::MalformedXML => "MalformedXML",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotImplemented => "NotImplemented",
            Self::InternalError => "InternalError",
            Self::BadGateway => "BadGateway",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::GatewayTimeout => "GatewayTimeout",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::MissingContentLength => "MissingContentLength",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Self::ExpiredToken => "ExpiredToken",
            Self::XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
            Self::BadDigest => "BadDigest",
            Self::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            Self::AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            Self::InvalidToken => "InvalidToken",
            Self::IncompleteBody => "IncompleteBody",
            Self::MalformedTrailerError => "MalformedTrailerError",
            Self::InvalidRange => "InvalidRange",
            Self::NoSuchBucket => "NoSuchBucket",
            Self::KeyTooLongError => "KeyTooLongError",
            Self::InvalidDigest => "InvalidDigest",
            Self::MetadataTooLarge => "MetadataTooLarge",
            Self::InvalidObjectState => "InvalidObjectState",
            Self::NoSuchUpload => "NoSuchUpload",
            Self::InvalidPart => "InvalidPart",
            Self::InvalidPartOrder => "InvalidPartOrder",
        }
    }

    /// The HTTP status S3 answers this code with.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::AccessDenied
            | Self::SignatureDoesNotMatch
            | Self::InvalidAccessKeyId
            | Self::RequestTimeTooSkewed
            | Self::InvalidObjectState => StatusCode::FORBIDDEN,
            Self::InvalidBucketName
            | Self::InvalidArgument
            | Self::InvalidRequest
            | Self::InvalidURI
            | Self::MalformedXML
            | Self::EntityTooLarge
            | Self::ExpiredToken
            | Self::XAmzContentSHA256Mismatch
            | Self::BadDigest
            | Self::AuthorizationHeaderMalformed
            | Self::AuthorizationQueryParametersError
            | Self::InvalidToken
            | Self::IncompleteBody
            | Self::MalformedTrailerError
            | Self::KeyTooLongError
            | Self::InvalidDigest
            | Self::MetadataTooLarge
            | Self::InvalidPart
            | Self::InvalidPartOrder => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            Self::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::NoSuchBucket | Self::NoSuchUpload => StatusCode::NOT_FOUND,
        }
    }
}

impl fmt::Display for S3ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An S3 error answer: code, human-readable message, the resource it concerns and the
/// request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    code: S3ErrorCode,
    message: Cow<'static, str>,
    resource: Option<String>,
    request_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename = "Error", rename_all = "PascalCase")]
struct ErrorXml<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl S3Error {
    /// An error with the given code and message.
    pub fn new(code: S3ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            resource: None,
            request_id: None,
        }
    }

    /// Sets the `<Resource>` element (for example `/bucket/key`).
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Sets the `<RequestId>` element and the `x-amz-request-id` header.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// The error code.
    pub fn code(&self) -> S3ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The resource, if set.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The request id, if set.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The XML body, with its XML declaration.
    pub fn to_xml(&self) -> String {
        let doc = ErrorXml {
            code: self.code.as_str(),
            message: &self.message,
            resource: self.resource.as_deref(),
            request_id: self.request_id.as_deref(),
        };
        // Serialising a struct of strings cannot fail; fall back to a minimal body anyway
        // rather than panicking on a serializer change.
        let body = quick_xml::se::to_string(&doc)
            .unwrap_or_else(|_| format!("<Error><Code>{}</Code></Error>", self.code.as_str()));
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}")
    }

    /// The complete HTTP response: status, `Content-Type: application/xml`,
    /// `x-amz-request-id` (when known) and the XML body.
    ///
    /// A `HEAD` request must not get a body; use [`S3Error::into_head_response`] for those.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let body = Bytes::from(self.to_xml());
        self.response_with(body)
    }

    /// The response for a `HEAD` request: same status and headers, empty body.
    pub fn into_head_response<B: From<Bytes>>(self) -> Response<B> {
        self.response_with(Bytes::new())
    }

    fn response_with<B: From<Bytes>>(self, body: Bytes) -> Response<B> {
        let mut response = Response::new(B::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if let Some(id) = self
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        response
    }

    /// Builds the response for `request`: the request id from its extensions, no body for
    /// `HEAD`.
    pub fn into_response_for<B: From<Bytes>>(
        mut self,
        method: &http::Method,
        extensions: &http::Extensions,
    ) -> Response<B> {
        if self.request_id.is_none()
            && let Some(id) = extensions.get::<RequestId>()
        {
            self.request_id = Some(id.as_str().to_owned());
        }
        if method == http::Method::HEAD {
            self.into_head_response()
        } else {
            self.into_response()
        }
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_body_has_code_message_resource_and_request_id() {
        let err = S3Error::new(S3ErrorCode::AccessDenied, "no <way> & no how")
            .with_resource("/b/k")
            .with_request_id("ABC123");
        assert_eq!(
            err.to_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
             <Message>no &lt;way&gt; &amp; no how</Message><Resource>/b/k</Resource>\
             <RequestId>ABC123</RequestId></Error>"
        );
    }

    #[test]
    fn response_has_status_content_type_and_request_id_header() {
        let resp: Response<Bytes> = S3Error::new(S3ErrorCode::NotImplemented, "nope")
            .with_request_id("R1")
            .into_response();
        assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/xml");
        assert_eq!(resp.headers()[REQUEST_ID_HEADER], "R1");
        assert!(
            std::str::from_utf8(resp.body())
                .unwrap()
                .contains("<Code>NotImplemented</Code>")
        );
    }

    #[test]
    fn head_response_has_no_body() {
        let mut ext = http::Extensions::new();
        ext.insert(RequestId::new("R2"));
        let resp: Response<Bytes> = S3Error::new(S3ErrorCode::NoSuchBucket, "x")
            .into_response_for(&http::Method::HEAD, &ext);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert!(resp.body().is_empty());
        assert_eq!(resp.headers()[REQUEST_ID_HEADER], "R2");
    }
}
