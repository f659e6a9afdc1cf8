//! The XML documents of STS answers, shaped as AWS STS writes them (namespace, element names
//! and order), so that every SDK parses them.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::error::StsError;

/// The namespace of every STS document.
pub const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// What an `AssumeRoleWithWebIdentity` answer says (`arn` and `id` of the assumed role user).
pub(crate) struct AssumedRole<'a> {
    pub(crate) subject: &'a str,
    pub(crate) audience: &'a str,
    pub(crate) provider: &'a str,
    pub(crate) arn: &'a str,
    pub(crate) id: &'a str,
    pub(crate) access_key_id: &'a str,
    pub(crate) secret_access_key: &'a str,
    pub(crate) session_token: &'a str,
    /// ISO 8601, `2026-11-26T18:00:00Z`.
    pub(crate) expiration: &'a str,
}

#[derive(Serialize)]
#[serde(rename = "AssumeRoleWithWebIdentityResponse")]
struct AssumeRoleDocument<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "AssumeRoleWithWebIdentityResult")]
    result: AssumeRoleResult<'a>,
    #[serde(rename = "ResponseMetadata")]
    metadata: Metadata<'a>,
}

#[derive(Serialize)]
struct AssumeRoleResult<'a> {
    #[serde(rename = "SubjectFromWebIdentityToken")]
    subject: &'a str,
    #[serde(rename = "Audience")]
    audience: &'a str,
    #[serde(rename = "AssumedRoleUser")]
    user: AssumedRoleUser<'a>,
    #[serde(rename = "Credentials")]
    credentials: Credentials<'a>,
    #[serde(rename = "Provider")]
    provider: &'a str,
}

#[derive(Serialize)]
struct AssumedRoleUser<'a> {
    #[serde(rename = "Arn")]
    arn: &'a str,
    #[serde(rename = "AssumedRoleId")]
    id: &'a str,
}

#[derive(Serialize)]
struct Credentials<'a> {
    #[serde(rename = "SessionToken")]
    session_token: &'a str,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: &'a str,
    #[serde(rename = "Expiration")]
    expiration: &'a str,
    #[serde(rename = "AccessKeyId")]
    access_key_id: &'a str,
}

#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(rename = "RequestId")]
    request_id: &'a str,
}

/// The caller a `GetCallerIdentity` answer names.
pub(crate) struct CallerIdentity<'a> {
    pub(crate) arn: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) account: &'a str,
}

#[derive(Serialize)]
#[serde(rename = "GetCallerIdentityResponse")]
struct CallerIdentityDocument<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "GetCallerIdentityResult")]
    result: CallerIdentityResult<'a>,
    #[serde(rename = "ResponseMetadata")]
    metadata: Metadata<'a>,
}

#[derive(Serialize)]
struct CallerIdentityResult<'a> {
    #[serde(rename = "Arn")]
    arn: &'a str,
    #[serde(rename = "UserId")]
    user_id: &'a str,
    #[serde(rename = "Account")]
    account: &'a str,
}

#[derive(Serialize)]
#[serde(rename = "ErrorResponse")]
struct ErrorDocument<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "Error")]
    error: ErrorBody<'a>,
    #[serde(rename = "RequestId")]
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "Type")]
    fault: &'a str,
    #[serde(rename = "Code")]
    code: &'a str,
    #[serde(rename = "Message")]
    message: &'a str,
}

fn xml<T: Serialize>(document: &T) -> Result<String, StsError> {
    quick_xml::se::to_string(document).map_err(|e| StsError::Internal(e.to_string()))
}

fn response<B: From<Bytes>>(status: StatusCode, body: String, request_id: &str) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// The `200` answer of `AssumeRoleWithWebIdentity`.
pub(crate) fn assumed_role<B: From<Bytes>>(
    role: &AssumedRole<'_>,
    request_id: &str,
) -> Result<Response<B>, StsError> {
    let document = AssumeRoleDocument {
        xmlns: STS_NAMESPACE,
        result: AssumeRoleResult {
            subject: role.subject,
            audience: role.audience,
            user: AssumedRoleUser {
                arn: role.arn,
                id: role.id,
            },
            credentials: Credentials {
                session_token: role.session_token,
                secret_access_key: role.secret_access_key,
                expiration: role.expiration,
                access_key_id: role.access_key_id,
            },
            provider: role.provider,
        },
        metadata: Metadata { request_id },
    };
    Ok(response(StatusCode::OK, xml(&document)?, request_id))
}

/// The `200` answer of `GetCallerIdentity`.
pub(crate) fn caller_identity<B: From<Bytes>>(
    caller: &CallerIdentity<'_>,
    request_id: &str,
) -> Result<Response<B>, StsError> {
    let document = CallerIdentityDocument {
        xmlns: STS_NAMESPACE,
        result: CallerIdentityResult {
            arn: caller.arn,
            user_id: caller.user_id,
            account: caller.account,
        },
        metadata: Metadata { request_id },
    };
    Ok(response(StatusCode::OK, xml(&document)?, request_id))
}

/// The `<ErrorResponse>` of `error`.
pub(crate) fn error<B: From<Bytes>>(error: &StsError, request_id: &str) -> Response<B> {
    let code = error.code();
    let message = error.to_string();
    let document = ErrorDocument {
        xmlns: STS_NAMESPACE,
        error: ErrorBody {
            fault: code.fault,
            code: code.code,
            message: &message,
        },
        request_id,
    };
    // Plain strings always serialize; the fallback keeps the code if they ever do not.
    let body = xml(&document).unwrap_or_else(|_| {
        format!(
            "<ErrorResponse xmlns=\"{STS_NAMESPACE}\"><Error><Type>{}</Type><Code>{}</Code>\
             </Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            code.fault, code.code
        )
    });
    response(code.status, body, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: Response<Bytes>) -> String {
        String::from_utf8(response.into_body().to_vec()).unwrap()
    }

    #[test]
    fn documents_are_shaped_as_aws_writes_them() {
        let role = AssumedRole {
            subject: "alice",
            audience: "s3-gateway",
            provider: "https://sso.example.com",
            arn: "arn:aws:sts::000000000000:assumed-role/r/s1",
            id: "AROAABCDEFGHIJKLMNOPQ:s1",
            access_key_id: "ASIAABCDEFGHIJKLMNOP",
            secret_access_key: "secret",
            session_token: "token+/=",
            expiration: "2026-11-26T18:00:00Z",
        };
        let text = body(assumed_role(&role, "req-1").unwrap());
        assert_eq!(
            text,
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleWithWebIdentityResult>\
             <SubjectFromWebIdentityToken>alice</SubjectFromWebIdentityToken>\
             <Audience>s3-gateway</Audience>\
             <AssumedRoleUser><Arn>arn:aws:sts::000000000000:assumed-role/r/s1</Arn>\
             <AssumedRoleId>AROAABCDEFGHIJKLMNOPQ:s1</AssumedRoleId></AssumedRoleUser>\
             <Credentials><SessionToken>token+/=</SessionToken>\
             <SecretAccessKey>secret</SecretAccessKey>\
             <Expiration>2026-11-26T18:00:00Z</Expiration>\
             <AccessKeyId>ASIAABCDEFGHIJKLMNOP</AccessKeyId></Credentials>\
             <Provider>https://sso.example.com</Provider>\
             </AssumeRoleWithWebIdentityResult>\
             <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>\
             </AssumeRoleWithWebIdentityResponse>"
        );

        let response: Response<Bytes> = error(&StsError::AccessDenied, "req-2");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            body(response),
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <Error><Type>Sender</Type><Code>AccessDenied</Code>\
             <Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error>\
             <RequestId>req-2</RequestId></ErrorResponse>"
        );
        // Attacker-chosen text is escaped.
        let response: Response<Bytes> = error(&StsError::InvalidAction("<x>&".to_owned()), "req-3");
        assert!(body(response).contains("could not find operation &lt;x&gt;&amp;"));
    }
}
