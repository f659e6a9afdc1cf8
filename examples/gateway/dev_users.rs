//! The `--dev` users: `admin` and `reader`, with random keys kept in the AWS shared
//! credentials file `<data-dir>/.dev/credentials` (reused across restarts), and the AWS config
//! file `<data-dir>/.dev/config` whose profiles of the same names point at the gateway, so
//! `aws --profile admin s3 ls` works with no other flag.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::Rng;
use s3_tower::auth::{SecretKey, StaticUser};

/// The profiles, with the prefix of their access key ids.
const PROFILES: [(&str, &str); 2] = [("admin", "DEVA"), ("reader", "DEVR")];

/// The region the dev profiles sign for.
pub(crate) const DEV_REGION: &str = "us-east-1";

/// A random secret access key: 40 ASCII letters and digits.
pub(crate) fn random_secret() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

/// A random access key id: `prefix`, then upper-case letters and digits up to 20 characters.
fn random_access_key_id(prefix: &str) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let mut id = prefix.to_owned();
    while id.len() < 20 {
        id.push(char::from(CHARS[rng.random_range(0..CHARS.len())]));
    }
    id
}

/// One development user: its profile name (also its subject and only group) and keys.
#[derive(Debug)]
pub(crate) struct DevUser {
    pub(crate) profile: &'static str,
    pub(crate) access_key_id: String,
    secret: SecretKey,
}

/// The development users and where their files are.
#[derive(Debug)]
pub(crate) struct DevUsers {
    pub(crate) users: Vec<DevUser>,
    /// `<data-dir>/.dev`
    dir: PathBuf,
    /// Whether the keys were read from an existing credentials file.
    pub(crate) reused: bool,
}

impl DevUsers {
    /// Reads the users from `<data_dir>/.dev/credentials` when it holds valid keys for both
    /// profiles; otherwise makes new keys and (re)writes the file (mode 0600, in a directory
    /// of mode 0700).
    pub(crate) fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        // Absolute, so that the paths printed for `export AWS_CONFIG_FILE=...` work anywhere.
        let dir = std::path::absolute(data_dir)?.join(".dev");
        std::fs::create_dir_all(&dir)?;
        set_mode(&dir, 0o700)?;
        let mut users = Self {
            users: Vec::new(),
            dir,
            reused: false,
        };
        match std::fs::read_to_string(users.credentials_file()) {
            Ok(text) => {
                if let Some(found) = parse_credentials(&text) {
                    users.users = found;
                    users.reused = true;
                    set_mode(&users.credentials_file(), 0o600)?;
                    return Ok(users);
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        users.users = PROFILES
            .iter()
            .map(|&(profile, prefix)| DevUser {
                profile,
                access_key_id: random_access_key_id(prefix),
                secret: SecretKey::new(random_secret()),
            })
            .collect();
        let mut text = String::from(
            "# s3-tower --dev users, made by the gateway and reused at each start.\n\
             # Delete this file to get new keys.\n",
        );
        for user in &users.users {
            let _ = write!(
                text,
                "\n[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                user.profile,
                user.access_key_id,
                user.secret.expose()
            );
        }
        write_private(&users.credentials_file(), &text)?;
        Ok(users)
    }

    /// `<data-dir>/.dev` (absolute).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<data-dir>/.dev/credentials`: the AWS shared credentials file.
    pub(crate) fn credentials_file(&self) -> PathBuf {
        self.dir.join("credentials")
    }

    /// `<data-dir>/.dev/config`: the AWS config file.
    pub(crate) fn config_file(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// Writes the AWS config file: one `[profile <name>]` per user with the region and
    /// `endpoint_url`, path-style addressing.
    pub(crate) fn write_config(&self, endpoint: &str) -> std::io::Result<()> {
        let mut text =
            String::from("# s3-tower --dev profiles, rewritten by the gateway at each start.\n");
        for user in &self.users {
            let _ = write!(
                text,
                "\n[profile {}]\nregion = {DEV_REGION}\nendpoint_url = {endpoint}\n\
                 s3 =\n    addressing_style = path\n",
                user.profile
            );
        }
        write_private(&self.config_file(), &text)
    }

    /// The users for the credential resolver: subject and only group are the profile name.
    pub(crate) fn static_users(&self) -> Vec<StaticUser> {
        self.users
            .iter()
            .map(|u| StaticUser {
                access_key_id: u.access_key_id.clone(),
                secret: u.secret.clone(),
                subject: u.profile.to_owned(),
                groups: vec![u.profile.to_owned()],
            })
            .collect()
    }
}

/// The users of an AWS shared credentials file, if it holds a valid key pair for every
/// profile of [`PROFILES`] and no two share an access key id.
fn parse_credentials(text: &str) -> Option<Vec<DevUser>> {
    let file = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Ini))
        .build()
        .ok()?;
    let value = |profile: &str, key: &str| file.get_string(&format!("{profile}.{key}")).ok();
    let users: Vec<DevUser> = PROFILES
        .iter()
        .map(|&(profile, _)| {
            let access_key_id = value(profile, "aws_access_key_id")?;
            let secret = value(profile, "aws_secret_access_key")?;
            let valid = !access_key_id.is_empty()
                && access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
                && !secret.is_empty()
                && secret.bytes().all(|b| b.is_ascii_graphic());
            valid.then(|| DevUser {
                profile,
                access_key_id: access_key_id.clone(),
                secret: SecretKey::new(secret),
            })
        })
        .collect::<Option<_>>()?;
    let distinct = users.iter().all(|u| {
        users
            .iter()
            .filter(|v| v.access_key_id == u.access_key_id)
            .count()
            == 1
    });
    distinct.then_some(users)
}

/// Writes `text` to `path` readable by its owner only, replacing the file atomically.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
#[allow(clippy::unnecessary_wraps)]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DevUsers::load_or_create(dir.path()).unwrap();
        assert!(!first.reused);
        let ids: Vec<&str> = first
            .users
            .iter()
            .map(|u| u.access_key_id.as_str())
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(
            ids[0].starts_with("DEVA") && ids[1].starts_with("DEVR"),
            "{ids:?}"
        );
        for (user, id) in first.users.iter().zip(&ids) {
            assert_eq!(id.len(), 20);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            );
            assert_eq!(user.secret.expose().len(), 40);
        }
        let again = DevUsers::load_or_create(dir.path()).unwrap();
        assert!(again.reused);
        let same: Vec<&str> = again
            .users
            .iter()
            .map(|u| u.access_key_id.as_str())
            .collect();
        assert_eq!(same, ids);
        assert_eq!(
            again.users[1].secret.expose(),
            first.users[1].secret.expose()
        );
        let users = again.static_users();
        assert_eq!(
            (users[0].subject.as_str(), users[0].groups.as_slice()),
            ("admin", ["admin".to_owned()].as_slice())
        );
        assert_eq!(
            (users[1].subject.as_str(), users[1].groups.as_slice()),
            ("reader", ["reader".to_owned()].as_slice())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&again.credentials_file()), 0o600);
            assert_eq!(mode(&dir.path().join(".dev")), 0o700);
        }
    }

    #[test]
    fn an_incomplete_credentials_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".dev")).unwrap();
        let path = dir.path().join(".dev/credentials");
        for text in [
            "",
            "[admin]\naws_access_key_id = AK1\naws_secret_access_key = s1\n",
            "[admin]\naws_access_key_id = AK1\naws_secret_access_key = s1\n\
             [reader]\naws_access_key_id = AK1\naws_secret_access_key = s2\n",
            "[admin]\naws_access_key_id = AK1\naws_secret_access_key = s1\n\
             [reader]\naws_access_key_id = AK2\naws_secret_access_key =\n",
        ] {
            std::fs::write(&path, text).unwrap();
            let users = DevUsers::load_or_create(dir.path()).unwrap();
            assert!(!users.reused, "reused {text:?}");
            assert!(std::fs::read_to_string(&path).unwrap().contains("[reader]"));
        }
        std::fs::write(
            &path,
            "# mine\n[admin]\naws_access_key_id = AK1\naws_secret_access_key = s1/x+y\n\n\
             [reader]\naws_secret_access_key=s2\naws_access_key_id=AK2\n",
        )
        .unwrap();
        let users = DevUsers::load_or_create(dir.path()).unwrap();
        assert!(users.reused);
        assert_eq!(users.users[0].secret.expose(), "s1/x+y");
        assert_eq!(users.users[1].access_key_id, "AK2");
    }

    #[test]
    fn the_config_file_points_both_profiles_at_the_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let users = DevUsers::load_or_create(dir.path()).unwrap();
        users.write_config("http://127.0.0.1:8190").unwrap();
        let text = std::fs::read_to_string(users.config_file()).unwrap();
        for profile in ["admin", "reader"] {
            assert!(
                text.contains(&format!(
                    "[profile {profile}]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:8190\n"
                )),
                "{text}"
            );
        }
    }
}
