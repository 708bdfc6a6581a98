//! Memoized compute steps: the key a step's result is cached under.
//!
//! The key is the SHA-256 of, in order: the tenant, the component's digest,
//! the canonical JSON of the step's resolved input (object keys sorted at
//! every level), and the step's fuel and memory limits. A compute step sees
//! no clock, no I/O and a random source seeded from this key (not from the
//! run), so the same key computes the same result: a hit completes the step
//! from the cache, in any run and any process that shares the store. The
//! tenant is part of the key, so that tenants never share entries.

use crate::sandbox::Limits;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The memo key of a step: hex SHA-256, prefixed with `memo-v1:`.
pub(crate) fn memo_key(tenant: &str, component: &str, input: &Map<String, Value>, limits: &Limits) -> String {
    let mut h = Sha256::new();
    for part in [tenant, component] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let mut text = String::new();
    write_canonical(&Value::Object(input.clone()), &mut text);
    h.update((text.len() as u64).to_le_bytes());
    h.update(text.as_bytes());
    h.update(limits.fuel.to_le_bytes());
    h.update(limits.memory_bytes.to_le_bytes());
    let digest = h.finalize();
    let mut key = String::from("memo-v1:");
    for b in digest {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// `v` as JSON text with every object's keys sorted, whatever order the
/// map keeps them in.
pub(crate) fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (n, k) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(tenant: &str, component: &str, input: Value, fuel: u64) -> String {
        let limits = Limits { fuel, ..Limits::default() };
        memo_key(tenant, component, input.as_object().unwrap_or(&Map::new()), &limits)
    }

    #[test]
    fn the_key_follows_content_not_key_order() {
        let a = key("", "sha256:1", json!({"a": 1, "b": {"x": [1, 2], "y": null}}), 10);
        let b = key("", "sha256:1", json!({"b": {"y": null, "x": [1, 2]}, "a": 1}), 10);
        assert_eq!(a, b, "the same content in another key order");
        assert!(a.starts_with("memo-v1:") && a.len() == 8 + 64);
        for other in [
            key("", "sha256:2", json!({"a": 1, "b": {"x": [1, 2], "y": null}}), 10),
            key("", "sha256:1", json!({"a": 2, "b": {"x": [1, 2], "y": null}}), 10),
            key("", "sha256:1", json!({"a": 1, "b": {"x": [2, 1], "y": null}}), 10),
            key("", "sha256:1", json!({"a": 1, "b": {"x": [1, 2], "y": null}}), 11),
            key("t2", "sha256:1", json!({"a": 1, "b": {"x": [1, 2], "y": null}}), 10),
        ] {
            assert_ne!(a, other, "component, input, limits and tenant all count");
        }
        // A tenant and component cannot run into each other.
        assert_ne!(key("ab", "c", json!({}), 1), key("a", "bc", json!({}), 1));
    }
}
