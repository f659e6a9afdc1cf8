//! The authorization layer `[authz]` asks for: no layer, the embedded seed policy (`--dev`),
//! or Rego policy files, reloaded on SIGHUP and when a file's modification time changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3_tower::authz::{Authorizer, AuthzError, AuthzLayer, CedarAuthorizer, RegoAuthorizer};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::config::AuthzPlan;
use crate::metrics::CountingAuthorizer;

/// The authorization layer of the stack, and what reloads its policy.
#[derive(Debug)]
pub(crate) struct Authz {
    /// `None`: no authorization layer (`engine = "none"`).
    pub(crate) layer: Option<AuthzLayer>,
    /// For policy files: what reloads them.
    pub(crate) reloader: Option<Reloader>,
}

/// Builds the authorization layer of `plan`, loading its policy. A policy that cannot be
/// read or compiled is an error naming the file.
pub(crate) fn build(plan: &AuthzPlan) -> Result<Authz, String> {
    match plan {
        AuthzPlan::None => {
            tracing::warn!(
                "NO AUTHORIZATION (authz.engine = \"none\"): every authenticated principal may do \
                 everything on every bucket. Set [authz] engine = \"rego\" and policy_files."
            );
            Ok(Authz {
                layer: None,
                reloader: None,
            })
        }
        AuthzPlan::Seed => {
            let rego = RegoAuthorizer::seed().map_err(|e| format!("authz: {e}"))?;
            tracing::info!(
                engine = "rego",
                "authorization: the embedded seed policy (admin may do everything, reader may \
                 only list and read)"
            );
            Ok(Authz {
                layer: Some(AuthzLayer::new(CountingAuthorizer::new(rego))),
                reloader: None,
            })
        }
        AuthzPlan::RegoFiles { files, query } => {
            // Taken before the files are read: a change while they load is reloaded later.
            let stamps = stamps(files);
            let rego = RegoAuthorizer::from_files(files.iter().cloned(), query.clone())
                .map_err(|e| format!("authz: {e}"))?;
            tracing::info!(
                engine = "rego",
                files = %list(files),
                query = %query,
                "authorization policy loaded"
            );
            Ok(from_files(Arc::new(rego), files, stamps))
        }
        AuthzPlan::CedarFiles { files } => {
            let stamps = stamps(files);
            let cedar = CedarAuthorizer::from_files(files.iter().cloned())
                .map_err(|e| format!("authz: {e}"))?;
            tracing::info!(
                engine = "cedar",
                files = %list(files),
                "authorization policy loaded"
            );
            Ok(from_files(Arc::new(cedar), files, stamps))
        }
    }
}

/// A policy engine whose policy files can be read again.
pub(crate) trait ReloadablePolicy: Authorizer {
    /// Compiles the files again and swaps the result in, keeping the old policy on error.
    fn reload_policy(&self) -> Result<(), AuthzError>;
}

impl ReloadablePolicy for RegoAuthorizer {
    fn reload_policy(&self) -> Result<(), AuthzError> {
        self.reload()
    }
}

impl ReloadablePolicy for CedarAuthorizer {
    fn reload_policy(&self) -> Result<(), AuthzError> {
        self.reload()
    }
}

/// The layer and reloader of an engine reading `files`.
fn from_files<P: ReloadablePolicy>(engine: Arc<P>, files: &[PathBuf], stamps: Vec<Stamp>) -> Authz {
    Authz {
        layer: Some(AuthzLayer::new(CountingAuthorizer::new(Arc::clone(
            &engine,
        )))),
        reloader: Some(Reloader {
            authorizer: engine,
            files: files.to_vec(),
            stamps,
        }),
    }
}

/// The line of the `--dev` banner saying who may do what.
pub(crate) fn dev_note(plan: &AuthzPlan) -> String {
    match plan {
        AuthzPlan::None => "(NO authorization: authz.engine = \"none\", so reader may do what \
                            admin does)"
            .to_owned(),
        AuthzPlan::Seed => "(authorization: the embedded seed policy: admin may do everything, \
                            reader may only list and read)"
            .to_owned(),
        AuthzPlan::RegoFiles { files, .. } => {
            format!("(authorization: the Rego policy in {})", list(files))
        }
        AuthzPlan::CedarFiles { files } => {
            format!("(authorization: the Cedar policy in {})", list(files))
        }
    }
}

/// The files, comma-separated.
fn list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What identifies a version of a policy file: its modification time and length (`None` when
/// it cannot be read).
type Stamp = Option<(SystemTime, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files.iter().map(|f| stamp(f)).collect()
}

fn stamp(file: &Path) -> Stamp {
    let meta = std::fs::metadata(file).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reloads a policy read from files.
pub(crate) struct Reloader {
    authorizer: Arc<dyn ReloadablePolicy>,
    files: Vec<PathBuf>,
    stamps: Vec<Stamp>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("engine", &self.authorizer.engine())
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = ();

impl Reloader {
    /// Installs the SIGHUP handler — from now on SIGHUP reloads instead of ending the
    /// process — and spawns the task that reloads on SIGHUP and, every `interval` (`None`:
    /// never), when a policy file's modification time or length changed.
    pub(crate) fn spawn(
        self,
        interval: Option<Duration>,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        let mut hangup: Hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        #[cfg(not(unix))]
        let mut hangup: Hangup = ();
        let mut ticks = interval.map(|every| {
            let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        let Self {
            authorizer,
            files,
            mut stamps,
        } = self;
        Ok(tokio::spawn(async move {
            loop {
                let trigger = tokio::select! {
                    () = next_hangup(&mut hangup) => "SIGHUP",
                    () = next_tick(ticks.as_mut()) => {
                        let now = self::stamps(&files);
                        if now == stamps {
                            continue;
                        }
                        "file change"
                    }
                };
                stamps = self::stamps(&files);
                reload(&authorizer, &files, trigger).await;
            }
        }))
    }
}

async fn next_hangup(hangup: &mut Hangup) {
    #[cfg(unix)]
    if hangup.recv().await.is_some() {
        return;
    }
    #[cfg(not(unix))]
    let () = *hangup;
    std::future::pending::<()>().await;
}

async fn next_tick(ticks: Option<&mut Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Reloads the policy; on failure the policy in force stays and the error is logged with the
/// file it is about.
async fn reload(authorizer: &Arc<dyn ReloadablePolicy>, files: &[PathBuf], trigger: &'static str) {
    let reloading = Arc::clone(authorizer);
    let files = list(files);
    match tokio::task::spawn_blocking(move || reloading.reload_policy()).await {
        Ok(Ok(())) => tracing::info!(trigger, files = %files, "authorization policy reloaded"),
        Ok(Err(AuthzError::PolicyLoad {
            source_name,
            message,
        })) => tracing::warn!(
            trigger,
            file = %source_name,
            error = %message,
            "authorization policy reload failed; the previous policy stays in force"
        ),
        Ok(Err(err)) => tracing::warn!(
            trigger,
            files = %files,
            error = %err,
            "authorization policy reload failed; the previous policy stays in force"
        ),
        Err(err) => tracing::warn!(
            trigger,
            files = %files,
            error = %err,
            "authorization policy reload failed; the previous policy stays in force"
        ),
    }
}
