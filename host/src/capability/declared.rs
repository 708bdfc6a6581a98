//! What a node declares under `capabilities:`, as plain data.

use super::url_pattern::UrlPattern;
use serde::Serialize;
use std::path::PathBuf;

/// Most `http` rules one node may declare (each request is matched against all).
pub const MAX_HTTP_RULES: usize = 32;

/// The HTTP methods a rule may name.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// One `http:` entry: requests to URLs the pattern matches, with these methods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRule {
    /// Which URLs.
    pub url: UrlPattern,
    /// Which methods, upper case (`GET` when the entry names none).
    pub methods: Vec<String>,
}

impl HttpRule {
    /// A rule for `url` with `methods` (upper-cased); `Err` names a method
    /// that is not one of [`METHODS`].
    pub fn new(url: UrlPattern, methods: &[String]) -> Result<Self, String> {
        let mut upper = Vec::new();
        for m in methods {
            let u = m.to_ascii_uppercase();
            if !METHODS.contains(&u.as_str()) {
                return Err(format!("method `{m}` is not one of {}", METHODS.join(", ")));
            }
            if !upper.contains(&u) {
                upper.push(u);
            }
        }
        if upper.is_empty() {
            upper.push("GET".to_string());
        }
        Ok(Self { url, methods: upper })
    }

    /// Whether a `method` request to the URL's parts is allowed. Methods
    /// match exactly (`get` is not `GET`: servers may treat them apart).
    pub fn allows(&self, method: &str, scheme: &str, host: &str, port: u16, path: &str) -> bool {
        self.methods.iter().any(|m| m == method) && self.url.matches(scheme, host, port, path)
    }

    /// Whether everything `other` allows, this rule allows too.
    pub fn covers(&self, other: &HttpRule) -> bool {
        self.url.covers(&other.url) && other.methods.iter().all(|m| self.methods.contains(m))
    }
}

impl std::fmt::Display for HttpRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.url, self.methods.join(", "))
    }
}

/// Whether a preopened directory may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirMode {
    /// Read only.
    Ro,
    /// Read and write.
    Rw,
}

impl DirMode {
    /// Parses `ro` or `rw`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ro" => Some(Self::Ro),
            "rw" => Some(Self::Rw),
            _ => None,
        }
    }

    /// `ro` or `rw`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ro => "ro",
            Self::Rw => "rw",
        }
    }
}

/// Where a preopened directory lives on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirSource {
    /// This directory (absolute once the workflow is loaded).
    Path(PathBuf),
    /// A fresh directory per run, removed when the run finishes.
    Scratch,
}

/// One `dirs:` entry: a host directory the guest sees at `guest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirGrant {
    /// The host side.
    pub host: DirSource,
    /// The guest path, absolute (`/data`).
    pub guest: String,
    /// `ro` or `rw`.
    pub mode: DirMode,
}

impl DirGrant {
    /// Checks a guest path: absolute, no `..`, no empty or odd segments.
    pub fn check_guest(guest: &str) -> Result<(), String> {
        if !guest.starts_with('/') {
            return Err(format!("guest path `{guest}` must be absolute, such as `/data`"));
        }
        if guest.split('/').any(|seg| seg == ".." || seg == ".") || guest.chars().any(char::is_control) {
            return Err(format!("guest path `{guest}` must not contain `.`, `..` or control characters"));
        }
        Ok(())
    }
}

impl std::fmt::Display for DirGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            DirSource::Path(p) => write!(f, "{} -> {} ({})", p.display(), self.guest, self.mode.as_str()),
            DirSource::Scratch => write!(f, "scratch -> {} ({})", self.guest, self.mode.as_str()),
        }
    }
}

/// A node's declared capabilities. Compute and reducer nodes have none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Outbound HTTP through `wasi:http`.
    pub http: Vec<HttpRule>,
    /// WASI preopened directories.
    pub dirs: Vec<DirGrant>,
    /// Host environment variables passed through by name.
    pub env: Vec<String>,
    /// Secrets from the operator's secret source, as environment variables.
    pub secrets: Vec<String>,
    /// Key-value state, scoped per workflow (and tenant).
    pub kv: bool,
}

/// The capability names a node may declare, in the order they are listed.
pub const NAMES: &[&str] = &["http", "dirs", "env", "secrets", "kv"];

impl Capabilities {
    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty() && self.dirs.is_empty() && self.env.is_empty() && self.secrets.is_empty() && !self.kv
    }

    /// One line per granted item, for people (`weft validate`, `weft run`).
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.extend(self.http.iter().map(|r| format!("http {r}")));
        lines.extend(self.dirs.iter().map(|d| format!("dir {d}")));
        if !self.env.is_empty() {
            lines.push(format!("env {}", self.env.join(", ")));
        }
        if !self.secrets.is_empty() {
            lines.push(format!("secrets {}", self.secrets.join(", ")));
        }
        if self.kv {
            lines.push("kv (this workflow's scope)".to_string());
        }
        lines
    }

    /// Whether a name is a valid environment variable name (also used for secrets).
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    }
}
