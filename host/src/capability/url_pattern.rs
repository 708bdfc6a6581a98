//! URL patterns of the `http` capability: `scheme://host[:port|:*]/path-glob`.
//!
//! A pattern names one scheme (`http` or `https`), one host (a name or an
//! address, or `*` for any host), a port (the scheme's default when left
//! out, or `*` for any port) and a path glob in which `*` matches any run of
//! characters, `/` included. A query string is never part of the match.

use serde::{Serialize, Serializer};

/// Which ports a pattern allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPattern {
    /// Any port (`:*`).
    Any,
    /// Exactly this port (the scheme's default when the pattern gives none).
    Exact(u16),
}

/// A parsed URL pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host name or address, or `*`.
    pub host: String,
    /// The port rule.
    pub port: PortPattern,
    /// The path glob, starting with `/`.
    pub path: String,
    text: String,
}

/// Longest pattern accepted, in bytes (matching is linear in it).
pub const MAX_PATTERN: usize = 512;

/// The scheme's default port.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl UrlPattern {
    /// Parses `text`; `Err` says what is wrong and what a pattern looks like.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shape = "a URL pattern looks like `https://api.example.com/v1/*` or `http://127.0.0.1:*/records/*`";
        if text.len() > MAX_PATTERN {
            return Err(format!("the URL pattern is {} bytes; at most {MAX_PATTERN} are allowed", text.len()));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!("`{text}` has no scheme; {shape}"));
        };
        let scheme = scheme.to_ascii_lowercase();
        let Some(default) = default_port(&scheme) else {
            return Err(format!("`{text}` has scheme `{scheme}`; only http and https are allowed"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!("`{text}` has user info before the host; {shape}"));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| format!("`{text}` has a malformed host; {shape}"))?;
        if host.is_empty() {
            return Err(format!("`{text}` has no host; {shape}"));
        }
        if host != "*"
            && (host.contains('*') || !host.chars().all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c)))
        {
            return Err(format!(
                "`{text}` has host `{host}`; a host is a name or an address, or `*` for any host (no partial wildcards)"
            ));
        }
        let port = match port {
            None => PortPattern::Exact(default),
            Some("*") => PortPattern::Any,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => PortPattern::Exact(n),
                _ => return Err(format!("`{text}` has port `{p}`; a port is 1 to 65535, or `*` for any port")),
            },
        };
        if path.contains('?') || path.contains('#') {
            return Err(format!("`{text}` has a query or fragment; patterns match the path only"));
        }
        if path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!("`{text}` has spaces or control characters in its path"));
        }
        Ok(Self { scheme, host: host.to_ascii_lowercase(), port, path: path.to_string(), text: text.to_string() })
    }

    /// The pattern as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a request to `scheme://host:port/path` is allowed by this pattern.
    pub fn matches(&self, scheme: &str, host: &str, port: u16, path: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
            && (self.host == "*" || self.host.eq_ignore_ascii_case(host))
            && match self.port {
                PortPattern::Any => true,
                PortPattern::Exact(p) => p == port,
            }
            && glob_matches(self.path.as_bytes(), path.as_bytes())
    }

    /// Whether every URL `other` matches is matched by this pattern too (so
    /// that a policy pattern can cap a declared one).
    pub fn covers(&self, other: &UrlPattern) -> bool {
        self.scheme == other.scheme
            && (self.host == "*" || self.host == other.host)
            && match (self.port, other.port) {
                (PortPattern::Any, _) => true,
                (PortPattern::Exact(a), PortPattern::Exact(b)) => a == b,
                (PortPattern::Exact(_), PortPattern::Any) => false,
            }
            // Whatever `other`'s stars stand for, this glob's stars absorb it.
            && glob_matches(self.path.as_bytes(), other.path.as_bytes())
    }
}

impl std::fmt::Display for UrlPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for UrlPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// `host[:port]`, with `[v6]` addresses kept whole.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        let after = &rest[end + 1..];
        return match after {
            "" => Some((host, None)),
            _ => after.strip_prefix(':').map(|p| (host, Some(p))),
        };
    }
    match authority.split_once(':') {
        Some((h, p)) if !p.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// Whether `glob` (where `*` matches any run of bytes) matches `text`: the
/// classic two-pointer wildcard match.
///
/// Read with another glob as `text`, this is also the cover test: a `*` in
/// `text` can never equal a literal byte of `glob` (a `*` there is always a
/// wildcard), so it is only ever absorbed by one of `glob`'s stars.
fn glob_matches(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if g < glob.len() && glob[g] == b'*' {
            star = Some((g, t));
            g += 1;
        } else if g < glob.len() && glob[g] == text[t] {
            g += 1;
            t += 1;
        } else if let Some((sg, st)) = star {
            g = sg + 1;
            t = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    while g < glob.len() && glob[g] == b'*' {
        g += 1;
    }
    g == glob.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> UrlPattern {
        UrlPattern::parse(s).unwrap()
    }

    #[test]
    fn a_pattern_matches_scheme_host_port_and_path() {
        let pat = p("http://127.0.0.1:*/records/*");
        assert!(pat.matches("http", "127.0.0.1", 8080, "/records/7"));
        assert!(pat.matches("http", "127.0.0.1", 1, "/records/a/b"));
        assert!(!pat.matches("https", "127.0.0.1", 8080, "/records/7"));
        assert!(!pat.matches("http", "127.0.0.2", 8080, "/records/7"));
        assert!(!pat.matches("http", "127.0.0.1", 8080, "/other/7"));
        let fixed = p("https://api.example.com/v1/*");
        assert!(fixed.matches("https", "API.example.com", 443, "/v1/x"));
        assert!(!fixed.matches("https", "api.example.com", 8443, "/v1/x"));
        assert!(p("http://h/exact").matches("http", "h", 80, "/exact"));
        assert!(!p("http://h/exact").matches("http", "h", 80, "/exact/more"));
    }

    #[test]
    fn malformed_patterns_say_what_is_wrong() {
        for (bad, says) in [
            ("127.0.0.1/x", "no scheme"),
            ("ftp://h/x", "only http and https"),
            ("http://:80/x", "no host"),
            ("http://h:99999/x", "port `99999`"),
            ("http://h:0/x", "port `0`"),
            ("http://*.example.com/x", "no partial wildcards"),
            ("http://u@h/x", "user info"),
            ("http://h/x?a=1", "query"),
        ] {
            let e = UrlPattern::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_broader_pattern_covers_a_narrower_one_and_not_the_reverse() {
        let policy = p("http://127.0.0.1:*/*");
        assert!(policy.covers(&p("http://127.0.0.1:8080/records/*")));
        assert!(policy.covers(&p("http://127.0.0.1:*/records/*")));
        assert!(!p("http://127.0.0.1:8080/*").covers(&p("http://127.0.0.1:*/x")));
        assert!(!p("http://127.0.0.1:*/records/*").covers(&p("http://127.0.0.1:*/*")));
        assert!(p("http://*:*/*").covers(&p("http://example.com/a")));
        assert!(!p("http://example.com/*").covers(&p("http://*/a")));
        assert!(p("http://h/a*").covers(&p("http://h/a*b")));
        assert!(!p("http://h/a*b").covers(&p("http://h/a*")));
        assert!(!p("https://h/*").covers(&p("http://h/*")));
    }
}
