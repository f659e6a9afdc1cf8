//! Reading the SigV4 signature parameters a request carries: the `Authorization` header or
//! the presigned-URL query parameters.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::error::AuthError;
use crate::sigv4::canonical::QueryParam;
use crate::sigv4::signing::is_lower_hex_64;

/// The only signing algorithm accepted.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The longest presigned URL lifetime S3 accepts: seven days.
pub(crate) const MAX_PRESIGN_EXPIRES: u64 = 604_800;

/// The longest region or service name accepted in a credential scope.
const MAX_SCOPE_PART: usize = 64;

/// The longest access key id accepted (AWS's are 16 to 128 characters).
const MAX_ACCESS_KEY_ID: usize = 128;

/// How the request carries its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureLocation {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=...`.
    Header,
    /// `?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=...`.
    Query,
}

/// The parts of a credential scope `AKID/20130524/us-east-1/s3/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    pub(crate) access_key_id: String,
    pub(crate) date: String,
    pub(crate) region: String,
    pub(crate) service: String,
}

impl Credential {
    fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split('/');
        let (Some(ak), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let valid_date = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
        // Region and service names are short; a long one only costs memory and log space.
        let short = |s: &str| !s.is_empty() && s.len() <= MAX_SCOPE_PART;
        if ak.is_empty()
            || ak.len() > MAX_ACCESS_KEY_ID
            || !valid_date
            || !short(region)
            || !short(service)
        {
            return None;
        }
        Some(Self {
            access_key_id: ak.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        })
    }

    /// `date/region/service/aws4_request`.
    pub(crate) fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The signature parameters of a SigV4-signed request.
#[derive(Debug, Clone)]
pub(crate) struct SignatureParams {
    pub(crate) location: SignatureLocation,
    pub(crate) credential: Credential,
    /// Lower-case header names in the order the client listed them.
    pub(crate) signed_headers: Vec<String>,
    /// The client's signature, 64 lower-case hex digits.
    pub(crate) signature: String,
    /// `X-Amz-Date` of a presigned URL (header auth reads `x-amz-date` from the headers).
    pub(crate) query_date: Option<String>,
    /// `X-Amz-Expires` of a presigned URL.
    pub(crate) expires: Option<u64>,
    /// `X-Amz-Security-Token` of a presigned URL.
    pub(crate) query_token: Option<String>,
}

/// What the request presents, before any cryptography.
#[derive(Debug)]
pub(crate) enum Presented {
    /// No credentials at all.
    Anonymous,
    /// A SigV4 signature.
    SigV4(Box<SignatureParams>),
}

/// Finds the signature of a request in its `Authorization` header or query, refusing SigV2,
/// other algorithms, both mechanisms at once, and malformed parameters.
pub(crate) fn read_signature(
    headers: &HeaderMap,
    query: &[QueryParam],
) -> Result<Presented, AuthError> {
    if headers.get_all(AUTHORIZATION).iter().nth(1).is_some() {
        return Err(AuthError::MalformedHeader(
            "more than one Authorization header",
        ));
    }
    let header = match headers.get(AUTHORIZATION) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| AuthError::MalformedHeader("it is not ASCII"))?,
        ),
        None => None,
    };
    let presign_algorithm = query_value(query, "X-Amz-Algorithm")?;
    let sigv2_query = query
        .iter()
        .any(|p| p.name == "AWSAccessKeyId" || p.name == "Signature");
    match (header, presign_algorithm) {
        (Some(_), Some(_)) => Err(AuthError::MultipleAuthMechanisms),
        (Some(header), None) => {
            if sigv2_query {
                return Err(AuthError::MultipleAuthMechanisms);
            }
            parse_header(header).map(|p| Presented::SigV4(Box::new(p)))
        }
        (None, Some(algorithm)) => {
            parse_query(algorithm, query).map(|p| Presented::SigV4(Box::new(p)))
        }
        (None, None) if sigv2_query => Err(AuthError::SigV2Presigned),
        (None, None) => Ok(Presented::Anonymous),
    }
}

fn parse_header(header: &str) -> Result<SignatureParams, AuthError> {
    let (algorithm, rest) = header
        .trim()
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((header.trim(), ""));
    if algorithm == "AWS" {
        return Err(AuthError::SigV2);
    }
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(truncate(algorithm)));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        let (name, value) = part
            .split_once('=')
            .ok_or(AuthError::MalformedHeader("a component is not name=value"))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(AuthError::MalformedHeader("unknown component")),
        };
        if slot.replace(value).is_some() {
            return Err(AuthError::MalformedHeader("a component appears twice"));
        }
    }
    let credential = credential.ok_or(AuthError::MalformedHeader("missing Credential"))?;
    let credential = Credential::parse(credential).ok_or(AuthError::MalformedHeader(
        "Credential must be AKID/YYYYMMDD/region/service/aws4_request",
    ))?;
    let signed_headers = parse_signed_headers(
        signed_headers.ok_or(AuthError::MalformedHeader("missing SignedHeaders"))?,
    )
    .ok_or(AuthError::MalformedHeader(
        "SignedHeaders must be lower-case names, sorted, each once",
    ))?;
    let signature = signature.ok_or(AuthError::MalformedHeader("missing Signature"))?;
    if !is_lower_hex_64(signature) {
        return Err(AuthError::MalformedHeader(
            "Signature must be 64 lower-case hex digits",
        ));
    }
    Ok(SignatureParams {
        location: SignatureLocation::Header,
        credential,
        signed_headers,
        signature: signature.to_owned(),
        query_date: None,
        expires: None,
        query_token: None,
    })
}

fn parse_query(algorithm: &str, query: &[QueryParam]) -> Result<SignatureParams, AuthError> {
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(truncate(algorithm)));
    }
    let required = |name: &'static str, why: &'static str| {
        query_value(query, name)?.ok_or(AuthError::MalformedQuery(why))
    };
    let credential = Credential::parse(required("X-Amz-Credential", "missing X-Amz-Credential")?)
        .ok_or(AuthError::MalformedQuery(
        "X-Amz-Credential must be AKID/YYYYMMDD/region/service/aws4_request",
    ))?;
    let date = required("X-Amz-Date", "missing X-Amz-Date")?;
    let expires = required("X-Amz-Expires", "missing X-Amz-Expires")?;
    let expires: u64 = expires
        .parse()
        .ok()
        .filter(|e| (1..=MAX_PRESIGN_EXPIRES).contains(e))
        .ok_or(AuthError::MalformedQuery(
            "X-Amz-Expires must be between 1 and 604800 seconds (seven days)",
        ))?;
    let signed_headers = parse_signed_headers(required(
        "X-Amz-SignedHeaders",
        "missing X-Amz-SignedHeaders",
    )?)
    .ok_or(AuthError::MalformedQuery(
        "X-Amz-SignedHeaders must be lower-case names, sorted, each once",
    ))?;
    let signature = required("X-Amz-Signature", "missing X-Amz-Signature")?;
    if !is_lower_hex_64(signature) {
        return Err(AuthError::MalformedQuery(
            "X-Amz-Signature must be 64 lower-case hex digits",
        ));
    }
    Ok(SignatureParams {
        location: SignatureLocation::Query,
        credential,
        signed_headers,
        signature: signature.to_owned(),
        query_date: Some(date.to_owned()),
        expires: Some(expires),
        query_token: query_value(query, "X-Amz-Security-Token")?.map(str::to_owned),
    })
}

/// The decoded value of query parameter `name`; twice is malformed.
fn query_value<'q>(query: &'q [QueryParam], name: &str) -> Result<Option<&'q str>, AuthError> {
    let mut found = query.iter().filter(|p| p.name == name);
    let first = found.next();
    if found.next().is_some() {
        return Err(AuthError::MalformedQuery(
            "a signature parameter appears twice",
        ));
    }
    Ok(first.map(|p| p.value.as_str()))
}

/// `host;x-amz-date` → `["host", "x-amz-date"]`; `None` unless the names are lower-case
/// tokens in strictly ascending order, as SigV4 signers write them. Repeats are refused: each
/// would add its header's whole value to the canonical request again, so a small request
/// could make the verifier build a huge one.
fn parse_signed_headers(value: &str) -> Option<Vec<String>> {
    let names: Vec<&str> = value.split(';').collect();
    let valid = names.iter().all(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| is_token_byte(b) && !b.is_ascii_uppercase())
    }) && names.windows(2).all(|pair| pair[0] < pair[1]);
    valid.then(|| names.into_iter().map(str::to_owned).collect())
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// At most 32 characters of a client-supplied string, for error messages.
fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_query_string(raw: &str) -> Vec<QueryParam> {
        crate::sigv4::canonical::parse_query(raw).unwrap()
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, auth.parse().unwrap());
        h
    }

    const SIG: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    #[test]
    fn header_with_and_without_spaces() {
        for sep in [", ", ",", " , "] {
            let h = headers(&format!(
                "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/s3/aws4_request{sep}SignedHeaders=host;x-amz-date{sep}Signature={SIG}"
            ));
            let Presented::SigV4(p) = read_signature(&h, &[]).unwrap() else {
                panic!("not sigv4")
            };
            assert_eq!(p.credential.access_key_id, "AK");
            assert_eq!(p.credential.scope(), "20150830/us-east-1/s3/aws4_request");
            assert_eq!(p.signed_headers, ["host", "x-amz-date"]);
            assert_eq!(p.signature, SIG);
        }
    }

    #[test]
    fn malformed_headers_are_refused_with_the_reason() {
        let cases = [
            ("AWS AKID:c2lnbmF0dXJl", AuthError::SigV2),
            (
                "AWS4-ECDSA-P256-SHA256 Credential=x",
                AuthError::UnsupportedAlgorithm("AWS4-ECDSA-P256-SHA256".into()),
            ),
            (
                "Bearer abc",
                AuthError::UnsupportedAlgorithm("Bearer".into()),
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AK/2015/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=00",
                AuthError::MalformedHeader(
                    "Credential must be AKID/YYYYMMDD/region/service/aws4_request",
                ),
            ),
            (
                &format!(
                    "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/s3/aws4_request,SignedHeaders=host,Signature={}",
                    SIG.to_uppercase()
                ),
                AuthError::MalformedHeader("Signature must be 64 lower-case hex digits"),
            ),
            (
                &format!(
                    "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/s3/aws4_request,Signature={SIG}"
                ),
                AuthError::MalformedHeader("missing SignedHeaders"),
            ),
            (
                &format!(
                    "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/s3/aws4_request,SignedHeaders=host,SignedHeaders=host,Signature={SIG}"
                ),
                AuthError::MalformedHeader("a component appears twice"),
            ),
            (
                &format!(
                    "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/s3/aws4_request,SignedHeaders=a;a;host,Signature={SIG}"
                ),
                AuthError::MalformedHeader(
                    "SignedHeaders must be lower-case names, sorted, each once",
                ),
            ),
            (
                &format!(
                    "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/s3/aws4_request,SignedHeaders=x-amz-date;host,Signature={SIG}"
                ),
                AuthError::MalformedHeader(
                    "SignedHeaders must be lower-case names, sorted, each once",
                ),
            ),
            (
                &format!(
                    "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/s3/aws4_request,SignedHeaders=Host,Signature={SIG}"
                ),
                AuthError::MalformedHeader(
                    "SignedHeaders must be lower-case names, sorted, each once",
                ),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(
                read_signature(&headers(header), &[]).unwrap_err(),
                expected,
                "{header}"
            );
        }
        let long_region = format!(
            "AWS4-HMAC-SHA256 Credential=AK/20150830/{}/s3/aws4_request,SignedHeaders=host,Signature={SIG}",
            "r".repeat(65)
        );
        assert_eq!(
            read_signature(&headers(&long_region), &[]).unwrap_err(),
            AuthError::MalformedHeader(
                "Credential must be AKID/YYYYMMDD/region/service/aws4_request"
            )
        );
        let mut two = headers("AWS4-HMAC-SHA256 a");
        two.append(AUTHORIZATION, "AWS4-HMAC-SHA256 b".parse().unwrap());
        assert_eq!(
            read_signature(&two, &[]).unwrap_err(),
            AuthError::MalformedHeader("more than one Authorization header")
        );
    }

    #[test]
    fn presigned_parameters_are_checked() {
        let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20150830%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host";
        let ok = parse_query_string(&format!(
            "{base}&X-Amz-Expires=604800&X-Amz-Signature={SIG}"
        ));
        let Presented::SigV4(p) = read_signature(&HeaderMap::new(), &ok).unwrap() else {
            panic!("not sigv4")
        };
        assert_eq!(p.location, SignatureLocation::Query);
        assert_eq!(p.expires, Some(604_800));
        for expires in ["604801", "0", "-1", "soon"] {
            let q = parse_query_string(&format!(
                "{base}&X-Amz-Expires={expires}&X-Amz-Signature={SIG}"
            ));
            assert_eq!(
                read_signature(&HeaderMap::new(), &q).unwrap_err(),
                AuthError::MalformedQuery(
                    "X-Amz-Expires must be between 1 and 604800 seconds (seven days)"
                )
            );
        }
        let both = read_signature(&headers("AWS4-HMAC-SHA256 x"), &ok).unwrap_err();
        assert_eq!(both, AuthError::MultipleAuthMechanisms);
        let v2 = parse_query_string("AWSAccessKeyId=AK&Expires=1&Signature=abc");
        assert_eq!(
            read_signature(&HeaderMap::new(), &v2).unwrap_err(),
            AuthError::SigV2Presigned
        );
        assert!(matches!(
            read_signature(&HeaderMap::new(), &[]).unwrap(),
            Presented::Anonymous
        ));
    }
}
