//! A node's `capabilities:` section: parsed into [`Capabilities`], with
//! every malformed entry reported where it is.

use super::super::component::{ComponentCheck, HostDirs};
use super::super::yaml::{Located, Node};
use super::walker::{Walker, describe};
use crate::capability::{Capabilities, DirGrant, DirMode, DirSource, HttpRule, MAX_HTTP_RULES, NAMES, UrlPattern};
use std::path::Path;

const HTTP_KEYS: &[&str] = &["url", "methods"];
const DIR_KEYS: &[&str] = &["host", "guest", "mode"];

impl Walker {
    /// The node's declared capabilities; `base` resolves relative host directories.
    pub(super) fn capabilities(
        &mut self,
        v: &Located,
        base: &Path,
        checker: Option<&dyn ComponentCheck>,
    ) -> Capabilities {
        let mut caps = Capabilities::default();
        let Some(entries) = self.map(v, "capabilities") else {
            return caps;
        };
        self.check_keys(entries, NAMES, "`capabilities`");
        if let Some(list) = Self::get(entries, "http").and_then(|h| self.list(h, "capabilities.http")) {
            if list.len() > MAX_HTTP_RULES
                && let Some(h) = Self::get(entries, "http")
            {
                self.problem(
                    h.pos,
                    format!("{} `http` rules; a node may declare at most {MAX_HTTP_RULES}", list.len()),
                );
            }
            for item in list {
                if let Some(rule) = self.http_rule(item) {
                    caps.http.push(rule);
                }
            }
        }
        if let Some(list) = Self::get(entries, "dirs").and_then(|d| self.list(d, "capabilities.dirs")) {
            for item in list {
                if let Some(dir) = self.dir_grant(item, base, checker) {
                    if caps.dirs.iter().any(|d| d.guest == dir.guest) {
                        self.problem(item.pos, format!("guest path `{}` is declared twice", dir.guest));
                    }
                    caps.dirs.push(dir);
                }
            }
        }
        caps.env = self.names(entries, "env");
        caps.secrets = self.names(entries, "secrets");
        for name in &caps.secrets {
            if caps.env.contains(name)
                && let Some(v) = Self::get(entries, "secrets")
            {
                self.problem(v.pos, format!("`{name}` is declared under both `env` and `secrets`; keep one"));
            }
        }
        caps.kv = self.boolean(entries, "kv").unwrap_or(false);
        caps
    }

    fn list<'a>(&mut self, v: &'a Located, what: &str) -> Option<&'a [Located]> {
        match &v.value {
            Node::Seq(items) => Some(items),
            Node::Null => None,
            other => {
                self.problem(v.pos, format!("`{what}` must be a list, not {}", other.type_name()));
                None
            }
        }
    }

    fn http_rule(&mut self, item: &Located) -> Option<HttpRule> {
        let e = self.map(item, "each `capabilities.http` entry")?;
        self.check_keys(e, HTTP_KEYS, "an `http` entry");
        let (url, pos) = self.required_string(e, "url", item.pos, "an `http` entry")?;
        let url = match UrlPattern::parse(&url) {
            Ok(u) => u,
            Err(msg) => {
                self.problem(pos, msg);
                return None;
            }
        };
        let mut methods = Vec::new();
        if let Some(m) = Self::get(e, "methods").and_then(|m| self.list(m, "methods")) {
            for x in m {
                match &x.value {
                    Node::String(s) => methods.push(s.clone()),
                    other => self.problem(x.pos, format!("a method is a string such as GET, not {}", describe(other))),
                }
            }
        }
        match HttpRule::new(url, &methods) {
            Ok(rule) => Some(rule),
            Err(msg) => {
                let at = Self::get(e, "methods").map_or(item.pos, |m| m.pos);
                self.problem(at, msg);
                None
            }
        }
    }

    fn dir_grant(&mut self, item: &Located, base: &Path, checker: Option<&dyn ComponentCheck>) -> Option<DirGrant> {
        let e = self.map(item, "each `capabilities.dirs` entry")?;
        self.check_keys(e, DIR_KEYS, "a `dirs` entry");
        let host = self.required_string(e, "host", item.pos, "a `dirs` entry");
        let guest = self.required_string(e, "guest", item.pos, "a `dirs` entry");
        let mode = match self.string(e, "mode") {
            None => Some(DirMode::Ro),
            Some((m, pos)) => {
                let parsed = DirMode::parse(&m);
                if parsed.is_none() {
                    self.problem(pos, format!("`mode` is `{m}`; it must be ro or rw"));
                }
                parsed
            }
        };
        let (guest, guest_pos) = guest?;
        if let Err(msg) = DirGrant::check_guest(&guest) {
            self.problem(guest_pos, msg);
        }
        let (host, host_pos) = host?;
        let within = match checker.map_or(HostDirs::Unrestricted, |c| c.host_dirs()) {
            _ if host == "scratch" => None,
            HostDirs::Unrestricted => None,
            HostDirs::Nowhere => {
                self.problem(
                    host_pos,
                    "this host gives workflows no host directories (only `scratch`, a fresh directory per run)",
                );
                return None;
            }
            HostDirs::Within(root) => {
                let p = Path::new(&host);
                if p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                    self.problem(
                        host_pos,
                        format!(
                            "host directory `{host}`: name a directory inside your own, as a relative path without                              `..` (or `scratch`)"
                        ),
                    );
                    return None;
                }
                Some(root)
            }
        };
        let source = if host == "scratch" {
            DirSource::Scratch
        } else {
            let path = if Path::new(&host).is_absolute() { host.clone().into() } else { base.join(&host) };
            match std::fs::canonicalize(&path) {
                Ok(p) if within.is_some_and(|root| !p.starts_with(root)) => {
                    self.problem(host_pos, format!("host directory `{host}` leads outside your own directory"));
                    return None;
                }
                Ok(p) if p.is_dir() => DirSource::Path(p),
                Ok(p) => {
                    self.problem(host_pos, format!("host directory `{host}` ({}) is not a directory", p.display()));
                    return None;
                }
                Err(err) => {
                    self.problem(
                        host_pos,
                        format!(
                            "host directory `{host}` ({}) cannot be used: {err}; create it, or use `scratch` for a \
                             fresh directory per run",
                            path.display()
                        ),
                    );
                    return None;
                }
            }
        };
        Some(DirGrant { host: source, guest, mode: mode? })
    }

    fn names(&mut self, entries: &super::walker::Entries, key: &str) -> Vec<String> {
        let mut names = Vec::new();
        let Some(list) = Self::get(entries, key).and_then(|v| self.list(v, &format!("capabilities.{key}"))) else {
            return names;
        };
        for x in list {
            match &x.value {
                Node::String(s) if Capabilities::valid_name(s) => {
                    if !names.contains(s) {
                        names.push(s.clone());
                    }
                }
                other => self.problem(
                    x.pos,
                    format!("`{key}` entries are variable names (letters, digits and `_`), not {}", describe(other)),
                ),
            }
        }
        names
    }
}
