//! Redaction: every place the host writes what a step produced (its output,
//! its logs, the error it returns) has each secret value the step was given
//! replaced by `[redacted:NAME]`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// Percent-encoding that keeps RFC 3986's unreserved characters, as most
/// URL encoders do.
const UNRESERVED_KEPT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `encoded` with its percent escapes' hex digits in lower case.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut left = 0;
    for c in encoded.chars() {
        if c == '%' {
            left = 2;
            out.push(c);
        } else if left > 0 {
            left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Replaces secret values with their markers.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (value, marker), longest value first so that a secret containing
    /// another is replaced whole.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor for these `(name, value)` secrets; empty values are ignored.
    pub fn new(given: &[(String, String)]) -> Self {
        let mut secrets: Vec<(String, String)> = Vec::new();
        for (name, value) in given.iter().filter(|(_, v)| !v.is_empty()) {
            let marker = format!("[redacted:{name}]");
            // As it travels in a URL or a form too: encoded with everything
            // but letters and digits, or keeping RFC 3986's unreserved
            // characters, each with upper- and lower-case hex digits.
            for set in [NON_ALPHANUMERIC, UNRESERVED_KEPT] {
                let upper = percent_encoding::utf8_percent_encode(value, set).to_string();
                let lower = lower_hex(&upper);
                for form in [upper, lower] {
                    if form != *value && !secrets.iter().any(|(v, _)| *v == form) {
                        secrets.push((form, marker.clone()));
                    }
                }
            }
            secrets.push((value.clone(), marker));
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        Self { secrets }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret value replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (value, marker) in &self.secrets {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), marker);
            }
        }
        out
    }

    /// Redacts `text` in place.
    pub fn in_place(&self, text: &mut String) {
        if self.secrets.iter().any(|(v, _)| text.contains(v.as_str())) {
            *text = self.text(text);
        }
    }

    /// Redacts `text`, which was cut at its end: a tail that is the start of
    /// a secret is replaced too, so that a cut cannot reveal a prefix.
    pub fn cut(&self, text: &mut String) {
        self.in_place(text);
        // A capture cut inside a character ends in U+FFFD: look before it.
        while text.ends_with('\u{FFFD}') {
            text.pop();
        }
        // The longest tail that starts some secret, whichever secret it is.
        let longest = self
            .secrets
            .iter()
            .filter_map(|(value, marker)| {
                (1..value.len())
                    .rev()
                    .filter(|&k| value.is_char_boundary(k))
                    .find(|&k| text.ends_with(&value[..k]))
                    .map(|k| (k, marker))
            })
            .max_by_key(|(k, _)| *k);
        if let Some((k, marker)) = longest {
            text.truncate(text.len() - k);
            text.push_str(marker);
        }
    }

    /// Redacts every string and key of a JSON value in place.
    pub fn json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.in_place(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (mut k, mut v) in entries {
                    self.in_place(&mut k);
                    self.json(&mut v);
                    map.insert(k, v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_are_replaced_in_text_and_json() {
        let r = Redactor::new(&[("TOKEN".into(), "abc123".into()), ("EMPTY".into(), String::new())]);
        assert_eq!(r.text("Bearer abc123!"), "Bearer [redacted:TOKEN]!");
        let mut v = json!({"abc123": ["x abc123", 1], "k": {"n": "abc123abc123"}});
        r.json(&mut v);
        assert_eq!(
            v,
            json!({"[redacted:TOKEN]": ["x [redacted:TOKEN]", 1], "k": {"n": "[redacted:TOKEN][redacted:TOKEN]"}})
        );
    }

    #[test]
    fn encoded_forms_and_cut_tails_are_redacted() {
        let r = Redactor::new(&[("T".into(), "a+b/c=".into())]);
        assert_eq!(r.text("GET /x?t=a%2Bb%2Fc%3D"), "GET /x?t=[redacted:T]");
        let mut cut = "log: a+b".to_string();
        r.cut(&mut cut);
        assert_eq!(cut, "log: [redacted:T]");
        let mut whole = "nothing here".to_string();
        r.cut(&mut whole);
        assert_eq!(whole, "nothing here");
        // The longest matching start wins, whichever secret it belongs to.
        let two = Redactor::new(&[("A".into(), "eXXXXXXXXXX".into()), ("B".into(), "secret".into())]);
        let mut tail = "the secre".to_string();
        two.cut(&mut tail);
        assert_eq!(tail, "the [redacted:B]");
        let mut broken = "x secr\u{FFFD}".to_string();
        two.cut(&mut broken);
        assert_eq!(broken, "x [redacted:B]");
        let r = Redactor::new(&[("P".into(), "p@ss.w0rd!".into())]);
        assert_eq!(r.text("u=p%40ss.w0rd%21 v=p%40ss%2ew0rd%21"), "u=[redacted:P] v=[redacted:P]");
    }
}
