//! [`KmsKek`]: a key-encryption key in AWS KMS or any KMS-compatible service.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::{DataKey, KekFuture, KeyContext, KeyEncryptionKey, WrappedKey};
use crate::error::EncryptError;

/// Static credentials for a [`KmsKek`].
#[derive(Clone)]
pub struct KmsCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for KmsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Drop for KmsCredentials {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.secret_access_key.zeroize();
        if let Some(token) = &mut self.session_token {
            token.zeroize();
        }
    }
}

/// Where a [`KmsKek`]'s key is and how to reach it.
#[derive(Debug, Clone)]
pub struct KmsConfig {
    /// The key: id, ARN, alias name (`alias/...`) or alias ARN.
    pub key_id: String,
    /// The region, e.g. `eu-central-1`.
    pub region: String,
    /// A KMS-compatible endpoint (`None`: the AWS endpoint of the region).
    pub endpoint: Option<String>,
    /// The credentials.
    pub credentials: KmsCredentials,
    /// How long one operation may take, attempts included.
    pub timeout: Duration,
    /// Accept a plain `http://` endpoint on another machine (refused by default: the
    /// request signatures and the data keys would travel in the clear). Loopback endpoints
    /// are always allowed.
    pub allow_insecure_http: bool,
}

/// A key-encryption key in the AWS KMS API: `GenerateDataKey` (`AES_256`) makes data keys,
/// `Decrypt` (with the key id, so a blob of another key is refused) unwraps them. A
/// [`KeyContext`] is the `EncryptionContext` (`s3t-bucket`, `s3t-key`).
///
/// Wrapped keys are the `CiphertextBlob` in standard base64; the name is `kms:<key id>`.
/// Unreachable, timed-out or failing (5xx) service: [`EncryptError::KeyServiceUnavailable`];
/// `InvalidCiphertextException` (tampered, other context): [`EncryptError::KeyUnwrap`]; other
/// refusals (unknown or disabled key, permissions): [`EncryptError::KeyServiceRefused`]. At
/// most two attempts per operation, within the timeout.
pub struct KmsKek {
    client: aws_sdk_kms::Client,
    key_id: String,
    name: String,
}

impl fmt::Debug for KmsKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsKek")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KmsKek {
    /// A KMS KEK for `config`. Nothing is contacted yet: call [`KeyEncryptionKey::check`] at
    /// startup.
    pub fn new(config: KmsConfig) -> Result<Self, EncryptError> {
        if config.region.is_empty() {
            return Err(EncryptError::Config("the KMS region is empty".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(EncryptError::Config(
                "the KMS timeout must be positive".to_owned(),
            ));
        }
        if config.credentials.access_key_id.is_empty()
            || config.credentials.secret_access_key.is_empty()
        {
            return Err(EncryptError::Config(
                "the KMS credentials are incomplete".to_owned(),
            ));
        }
        let credentials = Credentials::new(
            config.credentials.access_key_id.clone(),
            config.credentials.secret_access_key.clone(),
            config.credentials.session_token.clone(),
            None,
            "s3-tower-kms-kek",
        );
        let mut builder = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(config.timeout)
                    .operation_timeout(config.timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if let Some(endpoint) = &config.endpoint {
            let uri: http::Uri = endpoint.parse().map_err(|e| {
                EncryptError::Config(format!("invalid KMS endpoint {endpoint}: {e}"))
            })?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return Err(EncryptError::Config(format!(
                    "the KMS endpoint {endpoint} must be an http:// or https:// URL"
                )));
            }
            super::check_transport("KMS endpoint", &uri, config.allow_insecure_http)?;
            builder = builder.endpoint_url(endpoint.trim_end_matches('/'));
        }
        Self::from_client(
            aws_sdk_kms::Client::from_conf(builder.build()),
            config.key_id,
        )
    }

    /// A KMS KEK using a client configured elsewhere (e.g. from `aws-config`'s default
    /// credential chain).
    pub fn from_client(
        client: aws_sdk_kms::Client,
        key_id: impl Into<String>,
    ) -> Result<Self, EncryptError> {
        let key_id = key_id.into();
        if key_id.is_empty() {
            return Err(EncryptError::Config("the KMS key id is empty".to_owned()));
        }
        Ok(Self {
            client,
            name: format!("kms:{key_id}"),
            key_id,
        })
    }
}

/// The `EncryptionContext` of a data key: the binding's pairs plus a constant purpose pair,
/// always. Without it, an unbound data key would have an empty context, the same as any
/// other application's data keys under the same KMS key: a backend could then plant another
/// application's ciphertext (of a key it knows) as an object's wrapped key.
fn encryption_context(context: &KeyContext) -> HashMap<String, String> {
    let mut pairs: HashMap<String, String> = context
        .pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    pairs.insert(PURPOSE_NAME.to_owned(), PURPOSE_VALUE.to_owned());
    pairs
}

/// The purpose pair every data key's `EncryptionContext` holds.
const PURPOSE_NAME: &str = "s3t-purpose";
const PURPOSE_VALUE: &str = "s3-tower object data key v1";

/// The error of a failed KMS call; `InvalidCiphertextException` is a [`EncryptError::KeyUnwrap`]
/// when unwrapping.
fn kms_error<E>(error: &SdkError<E>, op: &str, unwrapping: bool) -> EncryptError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error.code().unwrap_or("unknown");
    match error {
        // Throttling is a passing condition: unavailable (503), not a refusal.
        SdkError::ServiceError(_)
            if status.is_some_and(|s| (400..500).contains(&s))
                && !matches!(
                    code,
                    "ThrottlingException" | "LimitExceededException" | "KMSInternalException"
                ) =>
        {
            if unwrapping && code == "InvalidCiphertextException" {
                tracing::debug!(op, code, "KMS did not decrypt a data key");
                EncryptError::KeyUnwrap
            } else {
                let message = error.message().unwrap_or("");
                EncryptError::KeyServiceRefused(format!("KMS {op}: {code}: {message}"))
            }
        }
        _ => {
            EncryptError::KeyServiceUnavailable(format!("KMS {op}: {}", DisplayErrorContext(error)))
        }
    }
}

impl KmsKek {
    async fn generate(&self, context: &KeyContext) -> Result<(DataKey, WrappedKey), EncryptError> {
        let mut output = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(encryption_context(context)))
            .send()
            .await
            .map_err(|e| kms_error(&e, "GenerateDataKey", false))?;
        let plaintext = output
            .plaintext
            .take()
            .map(|b| Zeroizing::new(b.into_inner()));
        let (Some(plaintext), Some(blob)) = (plaintext, output.ciphertext_blob.take()) else {
            return Err(EncryptError::KeyServiceUnavailable(
                "KMS GenerateDataKey returned no key".to_owned(),
            ));
        };
        let data_key = super::data_key_from_slice(&plaintext, "KMS GenerateDataKey")?;
        Ok((data_key, WrappedKey::new(STANDARD.encode(blob.as_ref()))))
    }

    async fn decrypt(
        &self,
        wrapped: &WrappedKey,
        context: &KeyContext,
    ) -> Result<DataKey, EncryptError> {
        let blob = STANDARD
            .decode(wrapped.as_str())
            .map_err(|_| EncryptError::KeyUnwrap)?;
        if blob.is_empty() {
            return Err(EncryptError::KeyUnwrap);
        }
        let mut output = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(blob))
            .set_encryption_context(Some(encryption_context(context)))
            .send()
            .await
            .map_err(|e| kms_error(&e, "Decrypt", true))?;
        let plaintext = output
            .plaintext
            .take()
            .map(|b| Zeroizing::new(b.into_inner()))
            .ok_or_else(|| {
                EncryptError::KeyServiceUnavailable("KMS Decrypt returned no plaintext".to_owned())
            })?;
        super::data_key_from_slice(&plaintext, "KMS Decrypt").map_err(|_| EncryptError::KeyUnwrap)
    }
}

impl KeyEncryptionKey for KmsKek {
    fn name(&self) -> &str {
        &self.name
    }

    fn generate_data_key<'a>(
        &'a self,
        context: &'a KeyContext,
    ) -> KekFuture<'a, (DataKey, WrappedKey)> {
        Box::pin(self.generate(context))
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        context: &'a KeyContext,
    ) -> KekFuture<'a, DataKey> {
        Box::pin(self.decrypt(wrapped, context))
    }

    fn check(&self) -> KekFuture<'_, ()> {
        Box::pin(async move {
            let what = format!("startup check of the KMS key {}", self.key_id);
            let context = KeyContext::bucket("s3t-startup-check");
            let result = async {
                let (data_key, wrapped) = self.generate(&context).await?;
                let back = self.decrypt(&wrapped, &context).await?;
                if back.as_bytes() == data_key.as_bytes() {
                    Ok(())
                } else {
                    Err(EncryptError::Config(
                        "KMS decrypted a data key to other bytes".to_owned(),
                    ))
                }
            }
            .await;
            result.map_err(|e| match e {
                EncryptError::KeyServiceUnavailable(m) => {
                    EncryptError::KeyServiceUnavailable(format!("{what}: {m}"))
                }
                EncryptError::KeyServiceRefused(m) => {
                    EncryptError::KeyServiceRefused(format!("{what}: {m}"))
                }
                EncryptError::KeyUnwrap => EncryptError::Config(format!(
                    "{what}: a data key it made does not decrypt again"
                )),
                EncryptError::Config(m) => EncryptError::Config(format!("{what}: {m}")),
                other => other,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KmsConfig {
        KmsConfig {
            key_id: "alias/app".to_owned(),
            region: "eu-central-1".to_owned(),
            endpoint: Some("http://127.0.0.1:4566".to_owned()),
            credentials: KmsCredentials {
                access_key_id: "AKIDEXAMPLE".to_owned(),
                secret_access_key: "very-secret-access-key".to_owned(),
                session_token: Some("very-secret-session".to_owned()),
            },
            timeout: Duration::from_secs(5),
            allow_insecure_http: false,
        }
    }

    #[test]
    fn plain_http_is_only_for_this_machine_unless_allowed() {
        for endpoint in [
            "http://127.0.0.1:4566",
            "http://localhost:4566",
            "http://[::1]:4566",
            "https://kms.example.eu",
        ] {
            let mut c = config();
            c.endpoint = Some(endpoint.to_owned());
            assert!(KmsKek::new(c).is_ok(), "{endpoint}");
        }
        let mut c = config();
        c.endpoint = Some("http://kms.example.eu".to_owned());
        let Err(EncryptError::Config(message)) = KmsKek::new(c.clone()) else {
            panic!("plain http to another machine accepted");
        };
        assert!(message.contains("in the clear"), "{message}");
        c.allow_insecure_http = true;
        assert!(KmsKek::new(c).is_ok());
    }

    #[test]
    fn debug_hides_secrets() {
        let config = config();
        let text = format!("{config:?}");
        assert!(!text.contains("very-secret"), "{text}");
        let kek = KmsKek::new(config).expect("valid config");
        assert_eq!(kek.name(), "kms:alias/app");
        assert!(!format!("{kek:?}").contains("very-secret"));
    }

    #[test]
    fn config_is_validated() {
        for bad in [
            KmsConfig {
                key_id: String::new(),
                ..config()
            },
            KmsConfig {
                region: String::new(),
                ..config()
            },
            KmsConfig {
                endpoint: Some("ftp://x".to_owned()),
                ..config()
            },
            KmsConfig {
                timeout: Duration::ZERO,
                ..config()
            },
        ] {
            assert!(matches!(KmsKek::new(bad), Err(EncryptError::Config(_))));
        }
    }

    #[test]
    fn encryption_context_pairs() {
        let none = encryption_context(&KeyContext::None);
        assert_eq!(none.len(), 1);
        assert_eq!(
            none.get(PURPOSE_NAME).map(String::as_str),
            Some(PURPOSE_VALUE)
        );
        let ctx = encryption_context(&KeyContext::object("b", "k"));
        assert_eq!(ctx.get("s3t-bucket").map(String::as_str), Some("b"));
        assert_eq!(ctx.get("s3t-key").map(String::as_str), Some("k"));
        assert_eq!(ctx.len(), 3);
    }
}
