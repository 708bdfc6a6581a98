//! YAML to a tree whose every node knows its line and column.
//!
//! The workflow loader walks this tree itself instead of deserializing straight
//! into typed structs, so that it can report every problem in a file at once
//! (unknown keys, wrong types, bounds) each with its location, rather than
//! stopping at serde's first error.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Largest workflow file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 16 << 20;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 32;
/// Most nodes (scalars, sequences, mappings) in one file.
const MAX_NODES: usize = 4_000_000;
/// Most parser events in one file.
const MAX_EVENTS: usize = 8_000_000;
/// Most plain scalars the fast path hands to serde-saphyr one by one (numbers,
/// booleans, null); a file with more goes the long way as a whole.
const MAX_RESOLVED_SCALARS: usize = 10_000;

/// A position in the YAML text (1-based; 0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML value with positions on every node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null` or `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any number.
    Number(serde_json::Number),
    /// Any string.
    String(String),
    /// A sequence.
    Seq(Vec<Located>),
    /// A mapping, in document order.
    Map(Vec<(Located<String>, Located)>),
}

/// A value and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T = Node> {
    /// The value.
    pub value: T,
    /// Where it is in the file.
    pub pos: Pos,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<T>::deserialize(d)?;
        Ok(Located { value: s.value, pos: Pos { line: s.referenced.line(), column: s.referenced.column() } })
    }
}

impl Node {
    /// A short name of the node's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    /// The node as plain JSON (positions dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(|i| i.value.to_json()).collect()),
            Node::Map(entries) => {
                Value::Object(entries.iter().map(|(k, v)| (k.value.clone(), v.value.to_json())).collect())
            }
        }
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        serde_json::Number::from_f64(v)
            .map(Node::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a finite number")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Located<String>>()? {
            let value = map.next_value::<Located>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// A YAML error: what is wrong, and where when known (0:0 otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    /// Where the problem is.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

/// Parses YAML text under limits that stop alias bombs, deep nesting and
/// oversized files. The error says what was wrong and where.
pub fn parse(text: &str) -> Result<Located, YamlError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(YamlError {
            pos: Pos::default(),
            message: format!(
                "the file is {} bytes; workflow files larger than {MAX_FILE_BYTES} bytes are refused",
                text.len()
            ),
        });
    }
    match parse_plain(text) {
        Some(tree) => Ok(tree),
        None => parse_serde(text),
    }
}

/// Parses through serde-saphyr's deserializer, with every limit.
fn parse_serde(text: &str) -> Result<Located, YamlError> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_nodes = MAX_NODES;
    budget.max_events = MAX_EVENTS;
    budget.max_documents = 1;
    budget.max_recorded_anchor_events = 100_000;
    budget.max_recorded_anchor_bytes = 1 << 20;
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = 100_000;
    alias_limits.max_replay_stack_depth = 16;
    alias_limits.max_alias_expansions_per_anchor = 1_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits = alias_limits;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<Located>(text, options).map_err(|e| {
        let pos = e.location().map(|l| Pos { line: l.line(), column: l.column() }).unwrap_or_default();
        // The message names the position itself; the library's advice about
        // its own options means nothing to a workflow author.
        let mut message = e
            .to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", " (each key may appear once in a mapping)");
        // The position goes in front, as for every other problem, not twice.
        let suffix = format!(" at line {}, column {}", pos.line, pos.column);
        if pos.line > 0 && message.ends_with(&suffix) {
            message.truncate(message.len() - suffix.len());
        }
        YamlError { pos, message }
    })
}

/// One open collection while building the tree from parser events.
enum Frame {
    Seq(Pos, Vec<Located>),
    /// A mapping, its entries, and the key waiting for its value.
    Map(Pos, Vec<(Located<String>, Located)>, Option<Located<String>>),
}

/// Builds the tree straight from the YAML parser's events (serde-saphyr's own
/// parser, `granit_parser`) when the document is plain data: one document, no
/// anchors, aliases, tags or merge keys, no duplicate or non-string keys, no
/// deeper than [`MAX_DEPTH`], and no plain scalar whose type is not obvious.
/// That is what workflow files are, and it takes about half the time of
/// going through serde (a 10,000-node workflow: 80 ms → 40 ms). Anything
/// else gives `None`, and the document goes through serde-saphyr's
/// deserializer, which enforces the alias and budget limits, resolves every
/// scalar and writes the error messages. A test checks that both paths build
/// the same tree.
fn parse_plain(text: &str) -> Option<Located> {
    use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Located> = None;
    let mut documents = 0;
    let (mut events, mut nodes, mut resolved) = (0usize, 0usize, 0usize);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.ok()?;
        // The same budget serde-saphyr enforces: past it, the long way refuses the file.
        events += 1;
        if events > MAX_EVENTS || nodes > MAX_NODES {
            return None;
        }
        let pos = Pos { line: span.start.line() as u64, column: span.start.col() as u64 + 1 };
        let in_key = matches!(stack.last(), Some(Frame::Map(_, _, None)));
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return None;
                }
                continue;
            }
            Event::Scalar(value, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                let plain = style == ScalarStyle::Plain;
                if in_key {
                    // Keys that serde would compare or resolve specially go the long way.
                    if plain && !obviously_string(&value) || value == "<<" {
                        return None;
                    }
                    if let Some(Frame::Map(_, _, key)) = stack.last_mut() {
                        *key = Some(Located { value: value.into_owned(), pos });
                    }
                    continue;
                }
                nodes += 1;
                let value = if !plain || obviously_string(&value) {
                    Node::String(value.into_owned())
                } else {
                    resolved += 1;
                    if resolved > MAX_RESOLVED_SCALARS {
                        return None;
                    }
                    plain_scalar(&value)?
                };
                Located { value, pos }
            }
            Event::SequenceStart(_, anchor, ref tag) | Event::MappingStart(_, anchor, ref tag) => {
                if anchor != 0 || tag.is_some() || in_key || stack.len() >= MAX_DEPTH {
                    return None;
                }
                nodes += 1;
                stack.push(match event {
                    Event::SequenceStart(..) => Frame::Seq(pos, Vec::new()),
                    _ => Frame::Map(pos, Vec::new(), None),
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(pos, items)) => Located { value: Node::Seq(items), pos },
                _ => return None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(pos, entries, None)) if !has_duplicate_keys(&entries) => {
                    Located { value: Node::Map(entries), pos }
                }
                _ => return None,
            },
            // Aliases and anchor metadata (limits apply): the long way.
            Event::Alias(_) | Event::Anchor(..) | Event::UnresolvedAlias(_) => return None,
            // Comments and any other presentation events carry no data.
            _ => continue,
        };
        match stack.last_mut() {
            None if root.is_none() => root = Some(node),
            None => return None,
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, key)) => entries.push((key.take()?, node)),
        }
    }
    if !stack.is_empty() {
        return None;
    }
    root
}

/// A plain scalar that cannot be read as anything but a string: it starts
/// with a letter (numbers start with a digit, a sign or a dot) and is none
/// of the words YAML reads as a boolean or null.
fn obviously_string(s: &str) -> bool {
    const WORDS: [&str; 9] = ["true", "false", "yes", "no", "y", "n", "on", "off", "null"];
    s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && !s.ends_with([' ', '\t', '\r', '\n'])
        && !WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// A plain scalar that is not obviously a string (a number, a boolean, null…),
/// typed by serde-saphyr itself so that both paths agree. Read alone, text
/// that spans lines or starts like a document marker would mean something
/// else than inside its mapping: those go the long way.
fn plain_scalar(s: &str) -> Option<Node> {
    if s.starts_with("---") || s.starts_with("...") || s.contains(['\n', '\r']) {
        return None;
    }
    match serde_saphyr::from_str::<Node>(s) {
        Ok(n @ (Node::Null | Node::Bool(_) | Node::Number(_))) => Some(n),
        // Its text, exactly as the parser gave it.
        Ok(Node::String(_)) => Some(Node::String(s.to_string())),
        _ => None,
    }
}

/// Whether two keys of a mapping are the same text.
fn has_duplicate_keys(entries: &[(Located<String>, Located)]) -> bool {
    if entries.len() <= 16 {
        return entries.iter().enumerate().any(|(i, (k, _))| entries[..i].iter().any(|(o, _)| o.value == k.value));
    }
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    !entries.iter().all(|(k, _)| seen.insert(k.value.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_kept_on_keys_and_values() {
        let doc = parse("a: 1\nb:\n  - x\n  - {c: true}\n").expect("parses");
        let Node::Map(entries) = doc.value else { panic!("map") };
        assert_eq!(entries[0].0.value, "a");
        assert_eq!(entries[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(entries[1].0.pos.line, 2);
        let Node::Seq(items) = &entries[1].1.value else { panic!("seq") };
        assert_eq!(items[1].pos.line, 4);
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 { "a".to_string() } else { format!("l{}", i - 1) };
            bomb.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(parse(&bomb).is_err(), "a billion-laughs document must be refused");
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep).is_err(), "deep nesting must be refused");
    }

    /// The fast path builds exactly the tree serde-saphyr builds, positions
    /// included, for every workflow in the repository and for scalars of
    /// every type; documents it does not handle go the long way.
    #[test]
    fn the_event_path_and_the_serde_path_agree() {
        let mut docs: Vec<String> = vec![
            "a: 1\nb: -2\nc: 1.5\nd: 1e3\ne: 0x1F\nf: 0o17\nj: ~\nk: null\nl: Null\n".into(),
            "m: true\nn2: False\no: yes\np: No\nq: on\nr: OFF\ns: y\nt: n\nu: ''\nv: \"x\"\nw:\nx: 007\ny2: 1_000\n".into(),
            "z: +5\naa: -0\nab: 12:30\nac: 1.0.0\nad: v1.2\nae: hello world\naf: |\n  two\n  lines\nag: >\n  folded\n  text\n".into(),
            "ah: [1, two, 3.0, {k: v}, [], {}]\nai:\n  - - nested\n    - -1\n  - key: value\n    other: 'quoted: yes'\n".into(),
            "aj: multi\n  line plain\nak: \"esc\\taped\"\nam: 9223372036854775808\nan: -9223372036854775809\nao: \"-\"\n".into(),
            "# a comment\nap: 1 # trailing\naq: [a, b] # more\n".into(),
            "ar: --- x\nas: ... y\nat: 1\n\n  2\nau: Überprüft\n\n  zweiter Absatz\n".into(),
            "av: 3 -4\naw: 12 monkeys\nax: -- x\nay: .. y\n".into(),
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for dir in std::fs::read_dir(&root).expect("examples/") {
            let path = dir.expect("entry").path().join("workflow.yaml");
            if path.is_file() {
                docs.push(std::fs::read_to_string(&path).expect("readable"));
            }
        }
        let mut fast = 0;
        for doc in &docs {
            let full = parse_serde(doc);
            match parse_plain(doc) {
                Some(tree) => {
                    fast += 1;
                    assert_eq!(Ok(tree), full, "the two paths differ on:\n{doc}");
                }
                None => assert!(doc.starts_with("ar:"), "a plain document went the long way ({full:?}):\n{doc}"),
            }
        }
        // The document with scalars that must be read in context goes the long way.
        assert_eq!(fast, docs.len() - 1);
        // Anchors, aliases, tags, merge keys, duplicate keys, several documents
        // and non-string keys always go the long way (where the limits are).
        for doc in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "base: &b {x: 1}\nc:\n  <<: *b\n",
            "a: 1\na: 2\n",
            "a: 1\n---\nb: 2\n",
            "1: one\n",
            "true: t\n",
            "? [a]\n: b\n",
        ] {
            assert!(parse_plain(doc).is_none(), "must go the long way: {doc}");
        }
        // More scalars to type one by one than the fast path takes: the long way.
        let many = format!("a: [{}]\n", vec!["1"; MAX_RESOLVED_SCALARS + 1].join(", "));
        assert!(parse_plain(&many).is_none());
        assert!(parse(&many).is_ok());
        let dup = parse("a: 1\na: 2\n").expect_err("duplicate keys are refused");
        assert_eq!(dup.pos, Pos { line: 2, column: 1 }, "{dup:?}");
        assert_eq!(dup.message, "duplicate mapping key: a (each key may appear once in a mapping)");
        // Non-finite numbers are refused as serde-saphyr refuses them.
        assert!(parse("a: .inf\n").is_err() && parse("a: .nan\n").is_err() && parse("a: 1e999\n").is_err());
    }
}
