//! The `--dev` token issuer: an EC P-256 key made at each start, whose OpenID Connect
//! discovery document and JWKS the admin listener serves under `/dev/oidc`, and bearer tokens
//! for the dev users written to `<data-dir>/.dev/<user>.jwt`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use s3_tower::auth::jwt::IssuerConfig;
use serde_json::json;

/// The audience of the dev tokens, and the one the dev issuer accepts.
pub(crate) const DEV_AUDIENCE: &str = "s3-tower";

/// Where the admin listener serves the dev issuer.
pub(crate) const DEV_OIDC_PATH: &str = "/dev/oidc";

/// How long the dev tokens are valid.
const TOKEN_LIFETIME: Duration = Duration::from_hours(12);

/// The key id of the dev key.
const KID: &str = "s3-tower-dev";

/// The development issuer: its signing key and the documents the admin listener serves.
pub(crate) struct DevIdp {
    issuer: String,
    key: EncodingKey,
    /// The PKCS#8 private key, written to `<data-dir>/.dev/oidc-signing-key.pem`.
    pkcs8: Vec<u8>,
    jwk: Jwk,
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("DevIdp")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The JSON documents of the dev issuer, served by the admin listener.
#[derive(Debug, Clone)]
pub(crate) struct DevOidcDocuments {
    /// `/dev/oidc/.well-known/openid-configuration`
    pub(crate) discovery: String,
    /// `/dev/oidc/jwks.json`
    pub(crate) jwks: String,
}

impl DevIdp {
    /// Makes a new key; the issuer is `http://<admin>/dev/oidc`.
    pub(crate) fn generate(admin: SocketAddr) -> Result<Self, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate the development issuer's EC P-256 key".to_owned())?;
        let pkcs8 = pkcs8.as_ref().to_vec();
        let key = EncodingKey::from_ec_der(&pkcs8);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| format!("cannot make the development issuer's JWK: {e}"))?;
        jwk.common.key_id = Some(KID.to_owned());
        Ok(Self {
            issuer: format!("http://{admin}{DEV_OIDC_PATH}"),
            key,
            pkcs8,
            jwk,
        })
    }

    /// The issuer URL (`iss` of its tokens).
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// What the validator accepts from this issuer: audience `s3-tower`, groups in `groups`,
    /// keys found by OIDC discovery on the admin listener.
    pub(crate) fn issuer_config(&self) -> IssuerConfig {
        IssuerConfig::new(&self.issuer)
            .audience(DEV_AUDIENCE)
            .algorithms([Algorithm::ES256])
            .groups_claim("groups")
    }

    /// The discovery document and JWKS.
    pub(crate) fn documents(&self) -> DevOidcDocuments {
        let discovery = json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/jwks.json", self.issuer),
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
        });
        let jwks = JwkSet {
            keys: vec![self.jwk.clone()],
        };
        DevOidcDocuments {
            discovery: discovery.to_string(),
            jwks: serde_json::to_string(&jwks).unwrap_or_else(|_| "{\"keys\":[]}".to_owned()),
        }
    }

    /// A token for `subject` in `groups`, audience `s3-tower`, valid for 12 hours.
    pub(crate) fn token(&self, subject: &str, groups: &[&str]) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": DEV_AUDIENCE,
            "groups": groups,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME.as_secs(),
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the development token of {subject}: {e}"))
    }

    /// Writes a token for each of `users` (subject, and only group, the user name) to
    /// `<dir>/<user>.jwt`, and the signing key (PKCS#8 PEM, to mint other tokens) to
    /// `<dir>/oidc-signing-key.pem`, all mode 0600. Returns the token files.
    pub(crate) fn write_files(&self, dir: &Path, users: &[&str]) -> Result<Vec<PathBuf>, String> {
        let mut files = Vec::new();
        for user in users {
            let token = self.token(user, &[user])?;
            let path = dir.join(format!("{user}.jwt"));
            crate::dev_users::write_private(&path, &format!("{token}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            files.push(path);
        }
        let path = Self::signing_key_file(dir);
        crate::dev_users::write_private(&path, &self.pem())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(files)
    }

    /// `<dir>/oidc-signing-key.pem`.
    pub(crate) fn signing_key_file(dir: &Path) -> PathBuf {
        dir.join("oidc-signing-key.pem")
    }

    /// The private key as PKCS#8 PEM.
    fn pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.pkcs8);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3_tower::auth::jwt::JwtValidator;

    #[test]
    fn documents_name_the_issuer_and_its_key() {
        let idp = DevIdp::generate(SocketAddr::from(([127, 0, 0, 1], 8191))).unwrap();
        assert_eq!(idp.issuer(), "http://127.0.0.1:8191/dev/oidc");
        let docs = idp.documents();
        let discovery: serde_json::Value = serde_json::from_str(&docs.discovery).unwrap();
        assert_eq!(discovery["issuer"], "http://127.0.0.1:8191/dev/oidc");
        assert_eq!(
            discovery["jwks_uri"],
            "http://127.0.0.1:8191/dev/oidc/jwks.json"
        );
        let jwks: serde_json::Value = serde_json::from_str(&docs.jwks).unwrap();
        assert_eq!(jwks["keys"][0]["kid"], KID);
        assert_eq!(jwks["keys"][0]["kty"], "EC");
        assert!(jwks["keys"][0].get("d").is_none(), "private part in {jwks}");
        JwtValidator::new([idp.issuer_config()]).unwrap();
    }

    #[test]
    fn token_files_are_private_and_the_pem_key_signs() {
        let dir = tempfile::tempdir().unwrap();
        let idp = DevIdp::generate(SocketAddr::from(([127, 0, 0, 1], 1))).unwrap();
        let files = idp.write_files(dir.path(), &["admin", "reader"]).unwrap();
        assert_eq!(
            files,
            [dir.path().join("admin.jwt"), dir.path().join("reader.jwt")]
        );
        let token = std::fs::read_to_string(&files[1]).unwrap();
        let payload = token.trim().split('.').nth(1).unwrap();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["sub"], "reader");
        assert_eq!(claims["groups"], json!(["reader"]));
        assert_eq!(claims["aud"], DEV_AUDIENCE);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            12 * 3600
        );
        let pem = std::fs::read_to_string(DevIdp::signing_key_file(dir.path())).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(der, idp.pkcs8);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for file in files.iter().chain([&DevIdp::signing_key_file(dir.path())]) {
                let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", file.display());
            }
        }
    }
}
