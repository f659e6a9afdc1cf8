//! Where an engine's policy text comes from, so that it can be read again on reload.

use std::path::PathBuf;

use crate::error::AuthzError;

/// Policy files, or `(name, text)` sources given in code.
#[derive(Debug, Clone)]
pub(crate) enum PolicySources {
    Files(Vec<PathBuf>),
    Inline(Vec<(String, String)>),
}

impl PolicySources {
    /// Every source as `(name, text)`, files read now; a file that cannot be read, or no
    /// source at all, is a [`AuthzError::PolicyLoad`].
    pub(crate) fn read(&self) -> Result<Vec<(String, String)>, AuthzError> {
        let texts: Vec<(String, String)> = match self {
            Self::Inline(texts) => texts.clone(),
            Self::Files(files) => files
                .iter()
                .map(|path| {
                    std::fs::read_to_string(path)
                        .map(|text| (path.display().to_string(), text))
                        .map_err(|e| AuthzError::PolicyLoad {
                            source_name: path.display().to_string(),
                            message: e.to_string(),
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        if texts.is_empty() {
            return Err(AuthzError::PolicyLoad {
                source_name: "(none)".to_owned(),
                message: "no policy given".to_owned(),
            });
        }
        Ok(texts)
    }

    /// The policy files, if the policy came from files.
    pub(crate) fn files(&self) -> &[PathBuf] {
        match self {
            Self::Files(files) => files,
            Self::Inline(_) => &[],
        }
    }
}
