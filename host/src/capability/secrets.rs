//! Where secrets come from: environment variables with a prefix, or a file
//! of `NAME=value` lines that only its owner may read.

use serde::Serialize;
use std::path::PathBuf;

/// The operator's secret source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum SecretSource {
    /// `NAME` is read from the host variable `<prefix>NAME`.
    Env {
        /// The prefix (`WEFT_SECRET_` by default).
        prefix: String,
    },
    /// `NAME` is the `NAME=value` line of this file (mode 0600 or stricter).
    File {
        /// The file.
        path: PathBuf,
    },
}

impl Default for SecretSource {
    fn default() -> Self {
        Self::Env { prefix: Self::DEFAULT_PREFIX.to_string() }
    }
}

/// Largest secrets file read, in bytes.
const MAX_SECRETS_FILE: usize = 1 << 20;

impl SecretSource {
    /// The prefix of secret variables when the policy names none.
    pub const DEFAULT_PREFIX: &'static str = "WEFT_SECRET_";

    /// Where secret `name` is looked up, for messages.
    pub fn describe(&self, name: &str) -> String {
        match self {
            Self::Env { prefix } => format!("the environment variable {prefix}{name}"),
            Self::File { path } => format!("the line `{name}=...` of {}", path.display()),
        }
    }

    /// The values of `names`, in order; `Err` names each one that is
    /// missing and where it was looked for, or what is wrong with the file.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<(String, String)>, String> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let file_lines = match self {
            Self::Env { .. } => None,
            Self::File { path } => Some(read_secrets_file(path)?),
        };
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let value = match (self, &file_lines) {
                (Self::Env { prefix }, _) => std::env::var(format!("{prefix}{name}")).ok(),
                (Self::File { .. }, Some(lines)) => lines.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
                (Self::File { .. }, None) => None,
            };
            match value {
                Some(v) => found.push((name.clone(), v)),
                None => missing.push(format!("secret `{name}` is not set: set {}", self.describe(name))),
            }
        }
        if missing.is_empty() { Ok(found) } else { Err(missing.join("; ")) }
    }
}

/// The `NAME=value` lines of a secrets file, after checking that only its
/// owner can read it.
fn read_secrets_file(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the secrets file {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the secrets file {} has mode {mode:04o}; others can read it, so it is refused (chmod 600 {})",
            path.display(),
            path.display()
        ));
    }
    let text = crate::files::read_text_capped(path, MAX_SECRETS_FILE)
        .map_err(|e| format!("cannot read the secrets file {}: {e}", path.display()))?;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("the secrets file {} line {}: expected NAME=value", path.display(), i + 1));
        };
        lines.push((name.trim().to_string(), value.to_string()));
    }
    Ok(lines)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secrets_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "# tokens\nAPI_TOKEN=s3cr=t\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let source = SecretSource::File { path: path.clone() };
        let e = source.resolve(&["API_TOKEN".into()]).unwrap_err();
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(source.resolve(&["API_TOKEN".into()]).unwrap(), vec![("API_TOKEN".into(), "s3cr=t".into())]);
        let e = source.resolve(&["OTHER".into()]).unwrap_err();
        assert!(e.contains("secret `OTHER` is not set"), "{e}");
    }
}
