//! The operator's policy: a TOML file (`--policy FILE`, or `$WEFT_POLICY`)
//! that caps every capability a node may be granted.
//!
//! ```toml
//! [http]
//! allow = [{ url = "http://127.0.0.1:*/*", methods = ["GET", "POST"] }]
//! max_requests = 64             # per attempt
//! max_request_bytes = 1048576   # request body, per request
//! max_response_bytes = 16777216 # response body, per request
//! timeout_ms = 10000            # per request
//!
//! [dirs]
//! roots = [{ path = "/srv/weft/data" }, { path = "/srv/weft/out", rw = true }]
//! scratch = true
//!
//! [env]
//! allow = ["REGION"]
//!
//! [secrets]
//! source = "env"           # or "file", with path = "/etc/weft/secrets" (mode 0600)
//! prefix = "WEFT_SECRET_"  # for source = "env"
//! allow = ["API_TOKEN"]
//!
//! [kv]
//! allow = true
//! max_key_bytes = 512
//! max_value_bytes = 1048576
//! max_scope_bytes = 67108864
//!
//! [fan_out]                # for_each, per node
//! max_items = 100000
//! max_shards = 10000
//!
//! [memo]                   # the memo cache of `memoize: true` compute steps
//! max_bytes = 268435456    # least recently used entries go first
//!
//! [expressions]            # the CEL budget of each evaluation (not a capability)
//! max_steps = 1000000      # comprehension iterations
//! max_built_bytes = 67108864
//! max_time_ms = 2000
//! ```
//!
//! A section left out allows nothing of its capability. With a policy, a
//! node's grant is what it declares, and a declaration the policy does not
//! allow is a validation error. Without one ([`Policy::operator`]), the
//! person running the workflow is the operator, and every declaration is
//! granted under the default limits.

use super::declared::{Capabilities, DirMode, DirSource, HttpRule};
use super::secrets::SecretSource;
use super::url_pattern::UrlPattern;
use crate::contract::ExprBudget;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The memo cache's default size cap (256 MiB).
pub const DEFAULT_MEMO_MAX_BYTES: u64 = 256 << 20;

/// The environment variable naming the policy file.
pub const POLICY_ENV: &str = "WEFT_POLICY";

/// Per-attempt limits of the `http` capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HttpLimits {
    /// Most requests one attempt may send.
    pub max_requests: u32,
    /// Largest request body, in bytes.
    pub max_request_bytes: u64,
    /// Largest response body, in bytes.
    pub max_response_bytes: u64,
    /// Longest each phase of one request may take (connecting, waiting for
    /// the first byte, waiting between bytes), in milliseconds. The whole
    /// request counts toward the step's own timeout as well.
    pub timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { max_requests: 64, max_request_bytes: 1 << 20, max_response_bytes: 16 << 20, timeout_ms: 10_000 }
    }
}

/// Limits of the `kv` capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KvLimits {
    /// Longest key, in bytes.
    pub max_key_bytes: u64,
    /// Largest value, in bytes.
    pub max_value_bytes: u64,
    /// Most bytes (keys and values) one scope may hold.
    pub max_scope_bytes: u64,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self { max_key_bytes: 512, max_value_bytes: 1 << 20, max_scope_bytes: 64 << 20 }
    }
}

/// Limits of a node's `for_each` fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FanOutLimits {
    /// Most items one node's list may have.
    pub max_items: u64,
    /// Most shards one node may run.
    pub max_shards: u64,
}

impl Default for FanOutLimits {
    fn default() -> Self {
        Self { max_items: 100_000, max_shards: 10_000 }
    }
}

/// The operator policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Where it was read from (None: the no-policy operator mode).
    pub file: Option<PathBuf>,
    /// Whether declarations are capped at all (false without a policy file).
    pub enforced: bool,
    http: Vec<HttpRule>,
    /// HTTP limits per attempt.
    pub http_limits: HttpLimits,
    roots: Vec<(PathBuf, bool)>,
    scratch: bool,
    env: Vec<String>,
    secret_names: Option<Vec<String>>,
    /// Where secrets come from.
    pub secrets: SecretSource,
    kv: bool,
    /// KV limits.
    pub kv_limits: KvLimits,
    /// The budget of every CEL evaluation (`[expressions]`; the defaults
    /// without a policy, or when the section is left out).
    pub expressions: ExprBudget,
    /// The limits of `for_each` (`[fan_out]`).
    pub fan_out: FanOutLimits,
    /// The memo cache's size cap, in bytes (`[memo] max_bytes`).
    pub memo_max_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    http: Option<HttpSection>,
    #[serde(default)]
    dirs: Option<DirsSection>,
    #[serde(default)]
    env: Option<EnvSection>,
    #[serde(default)]
    secrets: Option<SecretsSection>,
    #[serde(default)]
    kv: Option<KvSection>,
    #[serde(default)]
    expressions: Option<ExpressionsSection>,
    #[serde(default)]
    fan_out: Option<FanOutSection>,
    #[serde(default)]
    memo: Option<MemoSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoSection {
    max_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FanOutSection {
    max_items: Option<u64>,
    max_shards: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpressionsSection {
    max_steps: Option<u64>,
    max_built_bytes: Option<u64>,
    max_time_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    #[serde(default)]
    allow: Vec<HttpAllow>,
    max_requests: Option<u32>,
    max_request_bytes: Option<u64>,
    max_response_bytes: Option<u64>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpAllow {
    url: String,
    #[serde(default)]
    methods: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirsSection {
    #[serde(default)]
    roots: Vec<DirRoot>,
    #[serde(default)]
    scratch: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirRoot {
    path: PathBuf,
    #[serde(default)]
    rw: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvSection {
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsSection {
    source: String,
    prefix: Option<String>,
    path: Option<PathBuf>,
    allow: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KvSection {
    #[serde(default)]
    allow: bool,
    max_key_bytes: Option<u64>,
    max_value_bytes: Option<u64>,
    max_scope_bytes: Option<u64>,
}

/// Bounds on the limits a policy may set, so that a typo cannot make a
/// limit meaningless.
const MAX_HTTP_REQUESTS: u32 = 100_000;
const MAX_BODY_BYTES: u64 = 1 << 30;
const MAX_HTTP_TIMEOUT_MS: u64 = 24 * 3600 * 1000;
const MAX_KV_VALUE_BYTES: u64 = 16 << 20;
const MAX_KV_KEY_BYTES: u64 = 4096;
const MAX_FAN_OUT_ITEMS: u64 = 10_000_000;

impl Policy {
    /// No policy file: the person running the workflow is the operator, so
    /// every declaration is granted, under the default limits. Secrets come
    /// from `$WEFT_SECRET_<NAME>`.
    pub fn operator() -> Self {
        Self {
            file: None,
            enforced: false,
            http: Vec::new(),
            http_limits: HttpLimits::default(),
            roots: Vec::new(),
            scratch: true,
            env: Vec::new(),
            secret_names: None,
            secrets: SecretSource::default(),
            kv: true,
            kv_limits: KvLimits::default(),
            expressions: ExprBudget::default(),
            fan_out: FanOutLimits::default(),
            memo_max_bytes: DEFAULT_MEMO_MAX_BYTES,
        }
    }

    /// Reads the policy at `path`; `Err` names the file, the line and what to fix.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = crate::files::read_text_capped(path, 1 << 20)
            .map_err(|e| format!("cannot read the policy file {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
            .map(|mut p| {
                p.file = Some(path.to_path_buf());
                p
            })
            .map_err(|e| format!("policy file {}: {e}", path.display()))
    }

    /// Parses policy TOML; relative paths in it are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        let mut p = Self { enforced: true, scratch: false, kv: false, ..Self::operator() };
        if let Some(h) = file.http {
            for a in h.allow {
                let url = UrlPattern::parse(&a.url).map_err(|e| format!("[http] allow: {e}"))?;
                p.http.push(HttpRule::new(url, &a.methods).map_err(|e| format!("[http] allow `{}`: {e}", a.url))?);
            }
            let l = &mut p.http_limits;
            l.max_requests = bounded("[http] max_requests", h.max_requests, l.max_requests, MAX_HTTP_REQUESTS)?;
            l.max_request_bytes =
                bounded("[http] max_request_bytes", h.max_request_bytes, l.max_request_bytes, MAX_BODY_BYTES)?;
            l.max_response_bytes =
                bounded("[http] max_response_bytes", h.max_response_bytes, l.max_response_bytes, MAX_BODY_BYTES)?;
            l.timeout_ms = bounded("[http] timeout_ms", h.timeout_ms, l.timeout_ms, MAX_HTTP_TIMEOUT_MS)?;
        }
        if let Some(d) = file.dirs {
            for r in d.roots {
                let path = if r.path.is_absolute() { r.path } else { base.join(r.path) };
                let canon = std::fs::canonicalize(&path).map_err(|e| {
                    format!(
                        "[dirs] root {} cannot be used: {e}; create it or remove it from the policy",
                        path.display()
                    )
                })?;
                p.roots.push((canon, r.rw));
            }
            p.scratch = d.scratch;
        }
        if let Some(e) = file.env {
            for name in &e.allow {
                if !Capabilities::valid_name(name) {
                    return Err(format!("[env] allow: `{name}` is not a variable name (letters, digits and `_`)"));
                }
            }
            p.env = e.allow;
        }
        if let Some(s) = file.secrets {
            p.secrets = match s.source.as_str() {
                "env" => SecretSource::Env { prefix: s.prefix.unwrap_or_else(|| SecretSource::DEFAULT_PREFIX.into()) },
                "file" => {
                    let Some(path) = s.path else {
                        return Err("[secrets] source = \"file\" needs `path = \"...\"`".into());
                    };
                    SecretSource::File { path: if path.is_absolute() { path } else { base.join(path) } }
                }
                other => return Err(format!("[secrets] source is `{other}`; it must be \"env\" or \"file\"")),
            };
            p.secret_names = s.allow;
        } else {
            p.secret_names = Some(Vec::new());
        }
        if let Some(k) = file.kv {
            p.kv = k.allow;
            let l = &mut p.kv_limits;
            l.max_key_bytes = bounded("[kv] max_key_bytes", k.max_key_bytes, l.max_key_bytes, MAX_KV_KEY_BYTES)?;
            l.max_value_bytes =
                bounded("[kv] max_value_bytes", k.max_value_bytes, l.max_value_bytes, MAX_KV_VALUE_BYTES)?;
            l.max_scope_bytes = bounded("[kv] max_scope_bytes", k.max_scope_bytes, l.max_scope_bytes, u64::MAX)?;
        }
        if let Some(x) = file.expressions {
            let b = &mut p.expressions;
            b.max_steps = bounded("[expressions] max_steps", x.max_steps, b.max_steps, ExprBudget::MAX_STEPS)?;
            b.max_built_bytes = bounded(
                "[expressions] max_built_bytes",
                x.max_built_bytes,
                b.max_built_bytes,
                ExprBudget::MAX_BUILT_BYTES,
            )?;
            b.max_time_ms =
                bounded("[expressions] max_time_ms", x.max_time_ms, b.max_time_ms, ExprBudget::MAX_TIME_MS)?;
        }
        if let Some(f) = file.fan_out {
            let l = &mut p.fan_out;
            l.max_items = bounded("[fan_out] max_items", f.max_items, l.max_items, MAX_FAN_OUT_ITEMS)?;
            l.max_shards = bounded("[fan_out] max_shards", f.max_shards, l.max_shards, MAX_FAN_OUT_ITEMS)?;
        }
        if let Some(m) = file.memo {
            p.memo_max_bytes = bounded("[memo] max_bytes", m.max_bytes, p.memo_max_bytes, u64::MAX)?;
        }
        Ok(p)
    }

    /// Every way `caps` exceeds this policy, each naming the capability and
    /// what the policy allows; empty when all of it can be granted.
    pub fn check(&self, caps: &Capabilities) -> Vec<String> {
        if !self.enforced {
            return Vec::new();
        }
        let mut problems = Vec::new();
        let from = match &self.file {
            Some(f) => format!("the policy ({})", f.display()),
            None => "the policy".to_string(),
        };
        for rule in &caps.http {
            if !self.http.iter().any(|p| p.covers(rule)) {
                problems.push(format!(
                    "capability `http`: `{rule}` is not allowed by {from}, which allows {}",
                    list_or_nothing(self.http.iter().map(ToString::to_string))
                ));
            }
        }
        for dir in &caps.dirs {
            match &dir.host {
                DirSource::Scratch if !self.scratch => problems.push(format!(
                    "capability `dirs`: a scratch directory is not allowed by {from} (set `[dirs] scratch = true`)"
                )),
                DirSource::Scratch => {}
                DirSource::Path(path) => {
                    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                    // Overlapping roots: the most specific one that holds the path
                    // decides, so a read-only subtree of a read-write root stays so.
                    let root = self
                        .roots
                        .iter()
                        .filter(|(r, _)| canon.starts_with(r))
                        .max_by_key(|(r, _)| r.components().count());
                    let roots = list_or_nothing(
                        self.roots.iter().map(|(r, rw)| format!("{} ({})", r.display(), if *rw { "rw" } else { "ro" })),
                    );
                    match root {
                        None => problems.push(format!(
                            "capability `dirs`: {} is not under a directory root of {from}, which allows {roots}",
                            path.display()
                        )),
                        Some((_, false)) if dir.mode == DirMode::Rw => problems.push(format!(
                            "capability `dirs`: {} is declared `rw`, but {from} allows it read-only; declare `mode: \
                             ro`, or allow `rw = true` under its root",
                            path.display()
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        for name in &caps.env {
            if !self.env.contains(name) {
                problems.push(format!(
                    "capability `env`: `{name}` is not allowed by {from}, which allows {}",
                    list_or_nothing(self.env.iter().cloned())
                ));
            }
        }
        if let Some(allowed) = &self.secret_names {
            for name in &caps.secrets {
                if !allowed.contains(name) {
                    problems.push(format!(
                        "capability `secrets`: `{name}` is not allowed by {from}, which allows {}",
                        list_or_nothing(allowed.iter().cloned())
                    ));
                }
            }
        }
        if caps.kv && !self.kv {
            problems
                .push(format!("capability `kv`: key-value state is not allowed by {from} (set `[kv] allow = true`)"));
        }
        problems
    }
}

fn bounded<T: PartialOrd + Copy + std::fmt::Display + From<u8>>(
    what: &str,
    value: Option<T>,
    default: T,
    max: T,
) -> Result<T, String> {
    match value {
        None => Ok(default),
        Some(v) if v >= T::from(1) && v <= max => Ok(v),
        Some(v) => Err(format!("{what} is {v}; it must be between 1 and {max}")),
    }
}

fn list_or_nothing(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() { "nothing".to_string() } else { items.join(", ") }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::capability::DirGrant;

    fn caps_http(url: &str, methods: &[&str]) -> Capabilities {
        let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
        Capabilities {
            http: vec![HttpRule::new(UrlPattern::parse(url).unwrap(), &methods).unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn a_policy_caps_urls_and_methods_and_says_what_it_allows() {
        let p = Policy::parse(
            "[http]\nallow = [{ url = \"http://127.0.0.1:*/records/*\", methods = [\"GET\"] }]",
            Path::new("."),
        )
        .unwrap();
        assert!(p.check(&caps_http("http://127.0.0.1:8080/records/*", &["GET"])).is_empty());
        let problems = p.check(&caps_http("http://127.0.0.1:8080/records/*", &["POST"]));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("capability `http`"), "{problems:?}");
        assert!(problems[0].contains("which allows http://127.0.0.1:*/records/* [GET]"), "{problems:?}");
        assert_eq!(p.check(&caps_http("http://example.com/records/*", &["GET"])).len(), 1);
    }

    #[test]
    fn a_section_left_out_allows_nothing_and_no_policy_allows_everything() {
        let p = Policy::parse("", Path::new(".")).unwrap();
        let caps = Capabilities {
            env: vec!["REGION".into()],
            secrets: vec!["T".into()],
            kv: true,
            dirs: vec![DirGrant { host: DirSource::Scratch, guest: "/tmp".into(), mode: DirMode::Rw }],
            ..caps_http("http://h/x", &[])
        };
        let problems = p.check(&caps);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(Policy::operator().check(&caps).is_empty());
    }

    #[test]
    fn directory_roots_cap_paths_and_rw() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("in")).unwrap();
        let text = format!("[dirs]\nroots = [{{ path = {:?} }}]", root.path().display().to_string());
        let p = Policy::parse(&text, Path::new(".")).unwrap();
        let dir = |mode| Capabilities {
            dirs: vec![DirGrant { host: DirSource::Path(root.path().join("in")), guest: "/in".into(), mode }],
            ..Default::default()
        };
        assert!(p.check(&dir(DirMode::Ro)).is_empty());
        let problems = p.check(&dir(DirMode::Rw));
        assert!(problems[0].contains("allows it read-only"), "{problems:?}");
        // A read-only subtree of a read-write root stays read-only.
        std::fs::create_dir(root.path().join("in/ro")).unwrap();
        let nested = format!(
            "[dirs]\nroots = [{{ path = {:?}, rw = true }}, {{ path = {:?} }}]",
            root.path().display().to_string(),
            root.path().join("in/ro").display().to_string()
        );
        let p2 = Policy::parse(&nested, Path::new(".")).unwrap();
        let sub = |mode| Capabilities {
            dirs: vec![DirGrant { host: DirSource::Path(root.path().join("in/ro")), guest: "/ro".into(), mode }],
            ..Default::default()
        };
        assert!(p2.check(&sub(DirMode::Ro)).is_empty());
        assert!(p2.check(&sub(DirMode::Rw))[0].contains("allows it read-only"));
        assert!(p2.check(&dir(DirMode::Rw)).is_empty());
        let outside = Capabilities {
            dirs: vec![DirGrant { host: DirSource::Path("/etc".into()), guest: "/etc".into(), mode: DirMode::Ro }],
            ..Default::default()
        };
        assert!(p.check(&outside)[0].contains("is not under a directory root"));
    }

    #[test]
    fn bad_policy_files_name_the_problem() {
        for (text, says) in [
            ("[htp]\n", "unknown field `htp`"),
            ("[http]\nmax_requests = 0\n", "between 1 and"),
            ("[http]\nallow = [{ url = \"ftp://x/\" }]\n", "only http and https"),
            ("[secrets]\nsource = \"vault\"\n", "must be \"env\" or \"file\""),
            ("[secrets]\nsource = \"file\"\n", "needs `path"),
            ("[dirs]\nroots = [{ path = \"/no/such/dir\" }]\n", "cannot be used"),
        ] {
            let e = Policy::parse(text, Path::new(".")).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
