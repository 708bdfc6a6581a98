//! The walker: a pass over the YAML tree that records every problem instead
//! of stopping at the first. Its primitives read a key as a mapping, a
//! string, a bounded number, a boolean or a CEL expression, each saying what
//! is wrong and where.

use super::super::expr::Expr;
use super::super::problem::Problem;
use super::super::suggest::closest;
use super::super::yaml::{Located, Node, Pos};
use std::collections::HashMap;
use std::path::PathBuf;

/// A mapping's entries, keys with their positions.
pub(super) type Entries = [(Located<String>, Located)];

/// The walk's state: the problems found so far and what later checks need.
pub(super) struct Walker {
    /// The file's label in messages.
    pub(super) file: String,
    pub(super) problems: Vec<Problem>,
    /// The node being walked, named in its problems.
    pub(super) node: Option<String>,
    /// Every node id seen, with its position (nodes with problems included).
    pub(super) seen_ids: Vec<(String, Pos)>,
    /// Per node id, the dependencies it names, with their positions.
    pub(super) dep_refs: Vec<(String, Vec<(String, Pos)>)>,
    /// Component names already resolved (large graphs reuse a few components).
    pub(super) resolved: HashMap<String, Result<PathBuf, String>>,
    /// Component checks already made, by path and world (effect or not).
    /// Their results: the component's acting imports, or why it does not fit.
    pub(super) checked: HashMap<(PathBuf, bool), Result<Vec<String>, String>>,
    /// The workflow files this one is nested in, and those loaded already.
    pub(super) nesting: super::nesting::Nesting,
}

impl Walker {
    /// A walk of the file labelled `file`.
    pub(super) fn new(file: &str) -> Self {
        Self {
            file: file.to_string(),
            problems: Vec::new(),
            node: None,
            seen_ids: Vec::new(),
            dep_refs: Vec::new(),
            resolved: HashMap::new(),
            checked: HashMap::new(),
            nesting: Default::default(),
        }
    }

    pub(super) fn problem(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            pos,
            node_id: self.node.clone(),
            message: message.into(),
        });
    }

    pub(super) fn map<'a>(&mut self, v: &'a Located, what: &str) -> Option<&'a Entries> {
        match &v.value {
            Node::Map(e) => Some(e),
            other => {
                self.problem(v.pos, format!("`{what}` must be a mapping, not {}", other.type_name()));
                None
            }
        }
    }

    pub(super) fn check_keys(&mut self, entries: &Entries, allowed: &[&str], what: &str) {
        for (k, _) in entries {
            if !allowed.contains(&k.value.as_str()) {
                let hint = closest(&k.value, allowed).map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default();
                self.problem(
                    k.pos,
                    format!("unknown key `{}` in {what}{hint}; allowed keys: {}", k.value, allowed.join(", ")),
                );
            }
        }
    }

    pub(super) fn get<'a>(entries: &'a Entries, key: &str) -> Option<&'a Located> {
        entries.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
    }

    pub(super) fn string(&mut self, entries: &Entries, key: &str) -> Option<(String, Pos)> {
        let v = Self::get(entries, key)?;
        match &v.value {
            Node::String(s) => Some((s.clone(), v.pos)),
            Node::Null => None,
            other => {
                self.problem(v.pos, format!("`{key}` must be a string, not {}", other.type_name()));
                None
            }
        }
    }

    pub(super) fn required_string(
        &mut self,
        entries: &Entries,
        key: &str,
        at: Pos,
        what: &str,
    ) -> Option<(String, Pos)> {
        let r = self.string(entries, key);
        if r.is_none() && Self::get(entries, key).is_none_or(|v| v.value == Node::Null) {
            self.problem(at, format!("{what} is missing the required key `{key}`"));
        }
        r
    }

    pub(super) fn uint(&mut self, entries: &Entries, key: &str, min: u64, max: u64) -> Option<u64> {
        let v = Self::get(entries, key)?;
        let n = match &v.value {
            Node::Number(n) => n.as_u64(),
            Node::Null => return None,
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.problem(v.pos, format!("`{key}` is {n}; it must be between {min} and {max}"));
                None
            }
            None => {
                self.problem(
                    v.pos,
                    format!("`{key}` must be a whole number between {min} and {max}, not {}", describe(&v.value)),
                );
                None
            }
        }
    }

    pub(super) fn float(&mut self, entries: &Entries, key: &str, min: f64, max: f64) -> Option<f64> {
        let v = Self::get(entries, key)?;
        match &v.value {
            Node::Number(n) => match n.as_f64() {
                Some(x) if (min..=max).contains(&x) => Some(x),
                _ => {
                    self.problem(v.pos, format!("`{key}` is {n}; it must be between {min} and {max}"));
                    None
                }
            },
            Node::Null => None,
            other => {
                self.problem(v.pos, format!("`{key}` must be a number, not {}", other.type_name()));
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, entries: &Entries, key: &str) -> Option<bool> {
        let v = Self::get(entries, key)?;
        match &v.value {
            Node::Bool(b) => Some(*b),
            Node::Null => None,
            other => {
                self.problem(v.pos, format!("`{key}` must be true or false, not {}", other.type_name()));
                None
            }
        }
    }

    pub(super) fn expr(&mut self, v: &Located, what: &str) -> Option<Expr> {
        match &v.value {
            Node::String(s) => match Expr::parse(s) {
                Ok(e) => Some(e),
                Err(e) => {
                    // Weft's own bounds say "the expression ..."; anything else is CEL's parser.
                    let verdict = if e.starts_with("the expression") {
                        "cannot be used"
                    } else {
                        "is not a valid CEL expression"
                    };
                    self.problem(v.pos, format!("{what} {verdict}: {e}"));
                    None
                }
            },
            other => {
                self.problem(v.pos, format!("{what} must be a CEL expression (a string), not {}", other.type_name()));
                None
            }
        }
    }
}

/// A scalar as messages quote it.
pub(super) fn describe(n: &Node) -> String {
    match n {
        Node::String(s) => format!("`{s}`"),
        Node::Number(x) => x.to_string(),
        Node::Bool(b) => b.to_string(),
        other => other.type_name().to_string(),
    }
}
