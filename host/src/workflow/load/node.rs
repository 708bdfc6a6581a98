//! One node of `execution_graph.nodes`: its keys, bounds, retry policy,
//! input mapping, condition and component.

use super::super::component::{ComponentCheck, resolve_component};
use super::super::expr::{Expr, Uses};
use super::super::model::*;
use super::super::yaml::{Located, Node};
use super::graph::ParsedNode;
use super::walker::{Walker, describe};
use crate::capability::Capabilities;
use crate::contract::FailureKind;
use std::path::Path;

const NODE_KEYS: &[&str] = &[
    "node_id",
    "node_type",
    "description",
    "timeout_ms",
    "retry_count",
    "depends_on",
    "continue_on_error",
    "component",
    "fuel",
    "memory_mb",
    "input",
    "when",
    "compensate",
    "retry",
    "requires_action",
    "run_if_dependency_skipped",
    "capabilities",
    "for_each",
    "batch_size",
    "memoize",
    "stream_from",
    "stream_buffer",
    "world",
    "cases",
    "wait_for",
    "wait_timeout_ms",
    "workflow",
];
const RETRY_KEYS: &[&str] = &["max_attempts", "initial_delay_ms", "multiplier", "max_delay_ms", "jitter", "retry_on"];

impl Walker {
    /// One node, or `None` when it has problems that make it unusable (they
    /// are recorded).
    pub(super) fn node(
        &mut self,
        item: &Located,
        base: &Path,
        rules: &CoordinationRules,
        workflow_type: WorkflowType,
        checker: Option<&dyn ComponentCheck>,
    ) -> Option<ParsedNode> {
        self.node = None;
        let e = self.map(item, "each node")?;
        let id = self.required_string(e, "node_id", item.pos, "a node");
        self.node = id.as_ref().map(|(s, _)| s.clone());
        if let Some((s, pos)) = &id
            && (s.is_empty() || s.len() > 200 || !s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
        {
            self.problem(*pos, "`node_id` must be 1 to 200 characters of letters, digits, `_`, `-` or `.`");
        }
        self.check_keys(e, NODE_KEYS, "a node");
        let declared = self.required_string(e, "node_type", item.pos, "the node");
        let (node_type, declared_name, kind) = match declared.as_ref() {
            Some((s, pos)) => self
                .node_kind(e, s, *pos, base, item.pos, checker)
                .map_or((None, "", None), |(t, n, k)| (Some(t), n, Some(k))),
            None => (None, "", None),
        };
        let description = self.string(e, "description").map(|s| s.0).unwrap_or_default();
        let timeout_ms = self.uint(e, "timeout_ms", 100, 300_000);
        let retry_count = self.uint(e, "retry_count", 0, 10).map(|n| n as u32);
        let mut retry = None;
        if let Some(r) = Self::get(e, "retry").and_then(|r| self.map(r, "retry")) {
            let retry =
                retry.get_or_insert_with(|| RetryPolicy::with_retries(retry_count.or(rules.max_retries).unwrap_or(3)));
            self.check_keys(r, RETRY_KEYS, "retry");
            if let Some(n) = self.uint(r, "max_attempts", 1, 11) {
                retry.max_attempts = n as u32;
                if let Some(rc) = retry_count
                    && rc + 1 != n as u32
                    && let Some(v) = Self::get(e, "retry_count")
                {
                    self.problem(
                        v.pos,
                        format!("`retry_count: {rc}` disagrees with `retry.max_attempts: {n}`; keep one of them"),
                    );
                }
            }
            if let Some(n) = self.uint(r, "initial_delay_ms", 100, 60_000) {
                retry.initial_delay_ms = n;
            }
            if let Some(x) = self.float(r, "multiplier", 1.0, 5.0) {
                retry.multiplier = x;
            }
            if let Some(n) = self.uint(r, "max_delay_ms", 1000, 300_000) {
                retry.max_delay_ms = n;
            }
            if let Some(x) = self.float(r, "jitter", 0.0, 1.0) {
                retry.jitter = x;
            }
            if let Some(v) = Self::get(r, "retry_on") {
                match &v.value {
                    Node::Seq(items) => {
                        let mut kinds = Vec::new();
                        for k in items {
                            match &k.value {
                                Node::String(s)
                                    if let Some(kind) =
                                        FailureKind::parse(s).filter(|k| FailureKind::RETRYABLE.contains(k)) =>
                                {
                                    kinds.push(kind)
                                }
                                other => {
                                    let names: Vec<&str> = FailureKind::RETRYABLE.iter().map(|k| k.as_str()).collect();
                                    self.problem(
                                        k.pos,
                                        format!(
                                            "`retry_on` entry {} is not a retryable failure kind; use any of {}",
                                            describe(other),
                                            names.join(", ")
                                        ),
                                    )
                                }
                            }
                        }
                        retry.retry_on = kinds;
                    }
                    other => self.problem(v.pos, format!("`retry_on` must be a list, not {}", other.type_name())),
                }
            }
        }
        let mut depends_on = Vec::new();
        if let Some(v) = Self::get(e, "depends_on") {
            match &v.value {
                Node::Seq(items) => {
                    for d in items {
                        match &d.value {
                            Node::String(s) => depends_on.push((s.clone(), d.pos)),
                            other => self.problem(
                                d.pos,
                                format!("`depends_on` entries are node ids (strings), not {}", other.type_name()),
                            ),
                        }
                    }
                }
                Node::Null => {}
                other => {
                    self.problem(v.pos, format!("`depends_on` must be a list of node ids, not {}", other.type_name()))
                }
            }
        }
        let continue_on_error = self.boolean(e, "continue_on_error").unwrap_or(false);
        let fuel = self.uint(e, "fuel", 1, 1_000_000_000_000_000);
        let memory_mb = self.uint(e, "memory_mb", 1, 4096);
        let input = match Self::get(e, "input") {
            None => InputMapping::Default,
            Some(v) => match &v.value {
                Node::String(_) => self.expr(v, "`input`").map(InputMapping::Whole).unwrap_or(InputMapping::Default),
                Node::Map(entries) => {
                    let mut fields = Vec::new();
                    for (k, ev) in entries {
                        if let Some(x) = self.expr(ev, &format!("`input.{}`", k.value)) {
                            fields.push((k.value.clone(), x));
                        }
                    }
                    InputMapping::Fields(fields)
                }
                other => {
                    self.problem(
                        v.pos,
                        format!(
                            "`input` must be a CEL expression or a mapping of keys to CEL expressions, not {}",
                            other.type_name()
                        ),
                    );
                    InputMapping::Default
                }
            },
        };
        let when = Self::get(e, "when").and_then(|v| self.expr(v, "`when`"));
        let compensate_explicit = self.boolean(e, "compensate");
        // A gate has nothing to undo; a sub-workflow undoes its child's effects.
        let is_gate = matches!(kind, Some(NodeKind::Gate(_)));
        let compensate = compensate_explicit.unwrap_or(node_type == Some(NodeType::Effect) && !is_gate);
        if compensate
            && is_gate
            && let Some(v) = Self::get(e, "compensate")
        {
            self.problem(v.pos, "an approval gate has nothing to undo: remove `compensate`");
        }
        if compensate
            && let Some(t) = node_type
            && !t.is_effect()
            && let Some(v) = Self::get(e, "compensate")
        {
            self.problem(v.pos, "`compensate: true` needs an effect node: only effect steps export `compensate`");
        }
        if workflow_type.requires_compensation() && node_type == Some(NodeType::Effect) && !compensate && !is_gate {
            let pos = Self::get(e, "compensate").map_or(item.pos, |v| v.pos);
            self.problem(pos, "a saga workflow requires compensation on every effect node; remove `compensate: false`");
        }
        let requires_action = self.boolean(e, "requires_action").unwrap_or(false);
        if requires_action
            && depends_on.is_empty()
            && let Some(v) = Self::get(e, "requires_action")
        {
            self.problem(
                v.pos,
                "`requires_action: true` on a node without `depends_on`: actions reach only nodes downstream of \
                 the step that emits them, so none can reach this one; add the emitting step to `depends_on`",
            );
        }
        let run_if_dependency_skipped = self.boolean(e, "run_if_dependency_skipped").unwrap_or(false);
        let capabilities = match Self::get(e, "capabilities") {
            None => Capabilities::default(),
            Some(v) => {
                let caps = self.capabilities(v, base, checker);
                if let Some(t) = node_type
                    && !t.is_effect()
                    && (!caps.is_empty() || !matches!(v.value, Node::Null))
                {
                    self.problem(
                        v.pos,
                        format!(
                            "a {} node declares capabilities; compute steps have no authority: make it an effect \
                             node, or move the I/O to an effect step",
                            type_name(t)
                        ),
                    );
                }
                caps
            }
        };
        let for_each = Self::get(e, "for_each").and_then(|v| self.expr(v, "`for_each`"));
        let batch_size = self.uint(e, "batch_size", 1, 100_000).map(|n| n as u32);
        let stream_from = self.string(e, "stream_from");
        let stream_buffer = self.uint(e, "stream_buffer", 1, 65_536).map(|n| n as u32);
        if for_each.is_none()
            && stream_from.is_none()
            && batch_size.is_some()
            && let (None, Some(v)) = (Self::get(e, "for_each"), Self::get(e, "batch_size"))
        {
            self.problem(
                v.pos,
                "`batch_size` on a node sets the items per `for_each` shard, or per micro-batch of a `stream_from` \
                 consumer; add one of them, or remove it",
            );
        }
        if stream_from.is_none()
            && let Some(v) = Self::get(e, "stream_buffer")
        {
            self.problem(v.pos, "`stream_buffer` applies to a `stream_from` consumer; add `stream_from`, or remove it");
        }
        if let Some((_, pos)) = &stream_from {
            if for_each.is_some() {
                self.problem(*pos, "a `stream_from` consumer cannot also have `for_each`; keep one of them");
            }
            if node_type == Some(NodeType::Effect) {
                self.problem(
                    *pos,
                    "a `stream_from` consumer must be a compute or reducer node: each micro-batch folds into its \
                     state, and a fold has no side effects",
                );
            }
        }
        let stream_from = stream_from.map(|(producer, _)| StreamFrom {
            producer,
            batch_size: batch_size.unwrap_or(100),
            buffer: stream_buffer.unwrap_or(1024),
        });
        let for_each = for_each.map(|items| FanOut { items, batch_size: batch_size.unwrap_or(1) });
        let memoize_explicit = self.boolean(e, "memoize");
        if memoize_explicit == Some(true)
            && node_type == Some(NodeType::Effect)
            && let Some(v) = Self::get(e, "memoize")
        {
            self.problem(
                v.pos,
                "an effect node cannot be memoized: completing it from a cache would skip its side effects; remove \
                 `memoize`, or make the node a compute step",
            );
        }
        if memoize_explicit == Some(true)
            && for_each.is_some()
            && let Some(v) = Self::get(e, "memoize")
        {
            self.problem(
                v.pos,
                "`memoize` applies to a step's one execution, and a `for_each` node's shards are not memoized; \
                 remove one of them",
            );
        }
        if memoize_explicit == Some(true)
            && stream_from.is_some()
            && let Some(v) = Self::get(e, "memoize")
        {
            self.problem(v.pos, "a `stream_from` consumer is not memoized: its input is a stream; remove `memoize`");
        }
        let memoize = memoize_explicit.unwrap_or(rules.memoize)
            && node_type.is_some_and(|t| !t.is_effect())
            && kind.as_ref().is_some_and(NodeKind::has_component)
            && for_each.is_none()
            && stream_from.is_none();
        // Decided from what the file declares, also when the node's kind had problems.
        let has_component = match kind.as_ref() {
            Some(k) => k.has_component(),
            None => {
                let named = declared.as_ref().map(|(s, _)| s.as_str());
                let gate = named == Some("effect") && Self::get(e, "wait_for").is_some();
                !(gate || matches!(named, Some("conditional" | "parallel" | "orchestrator")))
            }
        };
        if !has_component && let Some(v) = Self::get(e, "component") {
            let what = if is_gate { "an approval gate".to_string() } else { format!("a `{declared_name}` node") };
            self.problem(v.pos, format!("{what} runs no component; remove `component`"));
        }
        let component = match has_component.then(|| self.required_string(e, "component", item.pos, "the node")) {
            None => Some(std::path::PathBuf::new()),
            Some(None) => None,
            Some(Some((c, pos))) => {
                let resolve = |c: &str| match checker {
                    Some(checker) => checker.resolve(c, base),
                    None => resolve_component(c, base),
                };
                match self.resolved.entry(c.clone()).or_insert_with(|| resolve(&c)).clone() {
                    Ok(path) => {
                        if let (Some(checker), Some(t)) = (checker, node_type) {
                            let checked = self
                                .checked
                                .entry((path.clone(), t.is_effect()))
                                .or_insert_with(|| checker.check(&path, t))
                                .clone();
                            match checked {
                                Err(reason) => self.problem(
                                    pos,
                                    format!("component `{c}` cannot run as a {} node: {reason}", type_name(t)),
                                ),
                                Ok(acts) => {
                                    for refusal in acts.iter().filter_map(|a| capabilities.refuses_import(a)) {
                                        self.problem(pos, format!("component `{c}`: {refusal}"));
                                    }
                                }
                            }
                        }
                        Some(path)
                    }
                    Err(msg) => {
                        self.problem(pos, msg);
                        None
                    }
                }
            }
        };
        let (id, id_pos) = id?;
        self.seen_ids.push((id.clone(), id_pos));
        // A consumer comes after its producer in the graph (it starts with it,
        // and ends after it).
        if let (Some(s), Some(v)) = (&stream_from, Self::get(e, "stream_from"))
            && !depends_on.iter().any(|(d, _)| *d == s.producer)
        {
            depends_on.push((s.producer.clone(), v.pos));
        }
        // Dependencies are checked for every node that has an id, even one
        // with other problems.
        self.dep_refs.push((id.clone(), depends_on.clone()));
        let kind = kind?;
        let cases: Vec<&Expr> = match &kind {
            NodeKind::Switch(cases) => cases.iter().filter_map(|c| c.when.as_ref()).collect(),
            _ => Vec::new(),
        };
        let uses = node_uses(when.as_ref(), &input, for_each.as_ref().map(|f| &f.items), &cases);
        let spec = NodeSpec {
            id,
            node_type: node_type?,
            type_name: declared_name,
            kind,
            description,
            timeout_ms,
            retry,
            retry_count,
            depends_on: depends_on.iter().map(|(d, _)| d.clone()).collect(),
            continue_on_error,
            component: component?,
            fuel,
            memory_mb,
            input,
            when,
            compensate,
            requires_action,
            run_if_dependency_skipped,
            capabilities,
            for_each,
            memoize,
            stream_from,
            uses,
            pos: item.pos,
        };
        self.node = None;
        Some(ParsedNode { spec, id_pos, deps: depends_on, memoize_explicit: memoize_explicit == Some(true) })
    }
}

fn type_name(t: NodeType) -> &'static str {
    t.as_str()
}

/// What a node's `when`, `input`, `for_each` and `cases` expressions read, if it has any.
fn node_uses(when: Option<&Expr>, input: &InputMapping, for_each: Option<&Expr>, cases: &[&Expr]) -> Option<Uses> {
    let mut exprs: Vec<&Expr> = when.into_iter().chain(for_each).chain(cases.iter().copied()).collect();
    match input {
        InputMapping::Default => {}
        InputMapping::Whole(e) => exprs.push(e),
        InputMapping::Fields(fields) => exprs.extend(fields.iter().map(|(_, e)| e)),
    }
    let (first, rest) = exprs.split_first()?;
    let mut uses = first.uses().clone();
    rest.iter().for_each(|e| uses.merge(e.uses()));
    Some(uses)
}
