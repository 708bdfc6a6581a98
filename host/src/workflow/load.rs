//! From YAML text to a validated [`Workflow`], reporting every problem at once.

use super::expr::Expr;
use super::model::*;
use super::yaml::{self, Located, Node, Pos};
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a workflow file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file (or `<input>`).
    pub file: String,
    /// Where in it.
    pub pos: Pos,
    /// The node it concerns, if any.
    pub node_id: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: a problem with the whole file, not a place in it.
        if self.pos.line == 0 {
            write!(f, "{}", self.file)?;
        } else {
            write!(f, "{}:{}", self.file, self.pos)?;
        }
        if let Some(id) = &self.node_id {
            write!(f, ": node `{id}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the workflow has {} problem(s):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

/// Checks that a component file fits a node type (implemented on top of the
/// sandbox; the workflow module itself knows nothing of wasm).
pub trait ComponentCheck {
    /// `Err(reason)` when the component at `path` cannot run as `node_type`.
    fn check(&self, path: &Path, node_type: NodeType) -> Result<(), String>;
}

/// Reads and validates a workflow file.
pub fn load_file(path: &Path, checker: Option<&dyn ComponentCheck>) -> Result<Workflow, ValidationError> {
    let label = path.display().to_string();
    let one = |message: String| ValidationError {
        problems: vec![Problem { file: label.clone(), pos: Pos::default(), node_id: None, message }],
    };
    let text = crate::files::read_text_capped(path, yaml::MAX_FILE_BYTES).map_err(|e| match e {
        crate::files::ReadError::TooLarge { size, max } => {
            one(format!("the file is {size} bytes; workflow files larger than {max} bytes are refused"))
        }
        e => one(format!("cannot read the workflow file: {e}")),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut wf = load_str(&text, &base, &label, checker)?;
    wf.source = Some(path.to_path_buf());
    Ok(wf)
}

/// Validates workflow YAML; relative component paths are resolved against `base_dir`.
pub fn load_str(
    text: &str,
    base_dir: &Path,
    label: &str,
    checker: Option<&dyn ComponentCheck>,
) -> Result<Workflow, ValidationError> {
    let doc = yaml::parse(text).map_err(|e| ValidationError {
        problems: vec![Problem {
            file: label.to_string(),
            pos: e.pos,
            node_id: None,
            message: format!("not valid YAML for a workflow: {}", e.message),
        }],
    })?;
    let mut w = Walker {
        file: label.to_string(),
        problems: Vec::new(),
        node: None,
        seen_ids: Vec::new(),
        dep_refs: Vec::new(),
        resolved: HashMap::new(),
        checked: HashMap::new(),
    };
    let wf = w.workflow(&doc, base_dir, checker);
    match wf {
        Some(mut wf) if w.problems.is_empty() => {
            wf.definition = std::sync::Arc::from(text);
            Ok(wf)
        }
        _ => {
            let mut problems = w.problems;
            problems.sort_by_key(|p| (p.pos.line, p.pos.column));
            Err(ValidationError { problems })
        }
    }
}

type Entries = [(Located<String>, Located)];

struct Walker {
    file: String,
    problems: Vec<Problem>,
    node: Option<String>,
    seen_ids: Vec<(String, Pos)>,
    dep_refs: Vec<(String, Vec<(String, Pos)>)>,
    /// Component names already resolved (large graphs reuse a few components).
    resolved: HashMap<String, Result<PathBuf, String>>,
    /// Component checks already made, by path and world (effect or not).
    checked: HashMap<(PathBuf, bool), Result<(), String>>,
}

const TOP_KEYS: &[&str] =
    &["api_version", "kind", "metadata", "workflow_metadata", "execution_graph", "coordination_rules"];
const METADATA_KEYS: &[&str] = &["name", "description", "version", "domain", "node_type", "labels"];
const WF_META_KEYS: &[&str] = &["workflow_name", "workflow_version", "execution_mode", "description", "workflow_type"];
const VERSION_KEYS: &[&str] = &["major", "minor", "patch"];
const GRAPH_KEYS: &[&str] = &["nodes"];
const RULES_KEYS: &[&str] = &[
    "parallel_execution_allowed",
    "failure_recovery_strategy",
    "max_retries",
    "timeout_ms",
    "circuit_breaker_enabled",
    "dead_letter_queue_enabled",
    "circuit_breaker_failure_threshold",
    "circuit_breaker_cooldown_ms",
];
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
];
const RETRY_KEYS: &[&str] = &["max_attempts", "initial_delay_ms", "multiplier", "max_delay_ms", "jitter", "retry_on"];

/// Environment variable with extra directories to look for components in.
pub const PLUGIN_PATH_ENV: &str = "WEFT_PLUGIN_PATH";

impl Walker {
    fn problem(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            pos,
            node_id: self.node.clone(),
            message: message.into(),
        });
    }

    fn map<'a>(&mut self, v: &'a Located, what: &str) -> Option<&'a Entries> {
        match &v.value {
            Node::Map(e) => Some(e),
            other => {
                self.problem(v.pos, format!("`{what}` must be a mapping, not {}", other.type_name()));
                None
            }
        }
    }

    fn check_keys(&mut self, entries: &Entries, allowed: &[&str], what: &str) {
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

    fn get<'a>(entries: &'a Entries, key: &str) -> Option<&'a Located> {
        entries.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
    }

    fn string(&mut self, entries: &Entries, key: &str) -> Option<(String, Pos)> {
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

    fn required_string(&mut self, entries: &Entries, key: &str, at: Pos, what: &str) -> Option<(String, Pos)> {
        let r = self.string(entries, key);
        if r.is_none() && Self::get(entries, key).is_none_or(|v| v.value == Node::Null) {
            self.problem(at, format!("{what} is missing the required key `{key}`"));
        }
        r
    }

    fn uint(&mut self, entries: &Entries, key: &str, min: u64, max: u64) -> Option<u64> {
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

    fn float(&mut self, entries: &Entries, key: &str, min: f64, max: f64) -> Option<f64> {
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

    fn boolean(&mut self, entries: &Entries, key: &str) -> Option<bool> {
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

    fn expr(&mut self, v: &Located, what: &str) -> Option<Expr> {
        match &v.value {
            Node::String(s) => match Expr::parse(s) {
                Ok(e) => Some(e),
                Err(e) => {
                    self.problem(v.pos, format!("{what} is not a valid CEL expression: {e}"));
                    None
                }
            },
            other => {
                self.problem(v.pos, format!("{what} must be a CEL expression (a string), not {}", other.type_name()));
                None
            }
        }
    }

    fn workflow(&mut self, doc: &Located, base: &Path, checker: Option<&dyn ComponentCheck>) -> Option<Workflow> {
        let top = self.map(doc, "the document")?;
        self.check_keys(top, TOP_KEYS, "the workflow");
        if let Some((kind, pos)) = self.string(top, "kind")
            && kind != "WorkflowDefinition"
        {
            self.problem(pos, format!("`kind` is `{kind}`; a workflow file has `kind: WorkflowDefinition`"));
        }
        self.string(top, "api_version");

        let mut name = String::new();
        let mut description = String::new();
        if let Some(m) = Self::get(top, "metadata").and_then(|m| self.map(m, "metadata")) {
            self.check_keys(m, METADATA_KEYS, "metadata");
            name = self.string(m, "name").map(|s| s.0).unwrap_or_default();
            description = self.string(m, "description").map(|s| s.0).unwrap_or_default();
            self.string(m, "version");
            self.string(m, "domain");
            self.string(m, "node_type");
        }

        let mut workflow_name = String::new();
        let mut version = "0.0.0".to_string();
        let mut execution_mode = ExecutionMode::Sequential;
        let mut workflow_type = WorkflowType::DataPipeline;
        if let Some(m) = Self::get(top, "workflow_metadata").and_then(|m| self.map(m, "workflow_metadata")) {
            self.check_keys(m, WF_META_KEYS, "workflow_metadata");
            workflow_name = self.string(m, "workflow_name").map(|s| s.0).unwrap_or_default();
            if description.is_empty() {
                description = self.string(m, "description").map(|s| s.0).unwrap_or_default();
            }
            if let Some(v) = Self::get(m, "workflow_version").and_then(|v| self.map(v, "workflow_version")) {
                self.check_keys(v, VERSION_KEYS, "workflow_version");
                let major = self.uint(v, "major", 0, u32::MAX as u64).unwrap_or(0);
                let minor = self.uint(v, "minor", 0, u32::MAX as u64).unwrap_or(0);
                let patch = self.uint(v, "patch", 0, u32::MAX as u64).unwrap_or(0);
                version = format!("{major}.{minor}.{patch}");
            }
            if let Some((s, pos)) = self.string(m, "execution_mode") {
                match ExecutionMode::parse(&s) {
                    Some(mode) => execution_mode = mode,
                    None => self.problem(
                        pos,
                        format!("`execution_mode` is `{s}`; it must be one of {}", ExecutionMode::NAMES.join(", ")),
                    ),
                }
            }
            if let Some((s, pos)) = self.string(m, "workflow_type") {
                match WorkflowType::parse(&s) {
                    Some(t) => workflow_type = t,
                    None => self.problem(
                        pos,
                        format!("`workflow_type` is `{s}`; it must be one of {}", WorkflowType::NAMES.join(", ")),
                    ),
                }
            }
        }
        if name.is_empty() {
            name = workflow_name.clone();
        }
        if name.is_empty() {
            name = "workflow".into();
        }

        let mut rules = CoordinationRules::default();
        if let Some(r) = Self::get(top, "coordination_rules").and_then(|r| self.map(r, "coordination_rules")) {
            self.check_keys(r, RULES_KEYS, "coordination_rules");
            if let Some(b) = self.boolean(r, "parallel_execution_allowed") {
                rules.parallel_execution_allowed = b;
            }
            if let Some((s, pos)) = self.string(r, "failure_recovery_strategy") {
                match FailureStrategy::parse(&s) {
                    Some(f) => rules.failure_recovery_strategy = Some(f),
                    None => self.problem(
                        pos,
                        format!(
                            "`failure_recovery_strategy` is `{s}`; it must be one of {}",
                            FailureStrategy::NAMES.join(", ")
                        ),
                    ),
                }
            }
            rules.max_retries = self.uint(r, "max_retries", 0, 10).map(|n| n as u32);
            rules.timeout_ms = self.uint(r, "timeout_ms", 1000, 3_600_000);
            if let Some(b) = self.boolean(r, "circuit_breaker_enabled") {
                rules.circuit_breaker_enabled = b;
            }
            if let Some(b) = self.boolean(r, "dead_letter_queue_enabled") {
                rules.dead_letter_queue_enabled = b;
            }
            if let Some(n) = self.uint(r, "circuit_breaker_failure_threshold", 1, 1000) {
                rules.circuit_breaker_failure_threshold = n as u32;
            }
            if let Some(n) = self.uint(r, "circuit_breaker_cooldown_ms", 100, 86_400_000) {
                rules.circuit_breaker_cooldown_ms = n;
            }
        }

        let mut parsed = Vec::new();
        match Self::get(top, "execution_graph") {
            None => self.problem(doc.pos, "the workflow has no `execution_graph`; add one with a `nodes` list"),
            Some(g) => {
                if let Some(g) = self.map(g, "execution_graph") {
                    self.check_keys(g, GRAPH_KEYS, "execution_graph");
                    match Self::get(g, "nodes") {
                        Some(Located { value: Node::Seq(items), pos }) => {
                            if items.is_empty() {
                                self.problem(
                                    *pos,
                                    "`execution_graph.nodes` is empty; a workflow needs at least one node",
                                );
                            }
                            for item in items {
                                if let Some(n) = self.node(item, base, &rules, workflow_type, checker) {
                                    parsed.push(n);
                                }
                            }
                        }
                        Some(other) => self.problem(
                            other.pos,
                            format!("`execution_graph.nodes` must be a list, not {}", other.value.type_name()),
                        ),
                        None => self.problem(doc.pos, "`execution_graph` has no `nodes` list"),
                    }
                }
            }
        }
        let (index, dependencies, dependents, topo_order) = self.graph(&parsed)?;
        let nodes = parsed.into_iter().map(|p| p.spec).collect();
        Some(Workflow {
            name,
            workflow_name,
            version,
            description,
            execution_mode,
            workflow_type,
            nodes,
            rules,
            topo_order,
            dependents,
            dependencies,
            index,
            source: None,
            definition: std::sync::Arc::from(""),
            base_dir: base.to_path_buf(),
        })
    }

    fn node(
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
        let node_type = match self.required_string(e, "node_type", item.pos, "the node") {
            Some((s, pos)) => match s.as_str() {
                "compute" => Some(NodeType::Compute),
                "reducer" | "reduce" => Some(NodeType::Reducer),
                "effect" => Some(NodeType::Effect),
                "orchestrator" | "conditional" | "parallel" | "custom" => {
                    self.problem(
                        pos,
                        format!("`node_type: {s}` is not supported yet: Weft runs compute, reducer and effect nodes"),
                    );
                    None
                }
                _ => {
                    self.problem(pos, format!("`node_type` is `{s}`; it must be compute, reducer or effect"));
                    None
                }
            },
            None => None,
        };
        let description = self.string(e, "description").map(|s| s.0).unwrap_or_default();
        let timeout_ms = self.uint(e, "timeout_ms", 100, 300_000).unwrap_or(30_000);
        let retry_count = self.uint(e, "retry_count", 0, 10).map(|n| n as u32);
        let mut retry = retry_count.map(RetryPolicy::with_retries);
        if let Some(r) = Self::get(e, "retry").and_then(|r| self.map(r, "retry")) {
            let retry = retry.get_or_insert_with(|| RetryPolicy::with_retries(rules.max_retries.unwrap_or(3)));
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
                                Node::String(s) if RETRY_ON_KINDS.contains(&s.as_str()) => kinds.push(s.clone()),
                                other => self.problem(
                                    k.pos,
                                    format!(
                                        "`retry_on` entry {} is not a retryable failure kind; use any of {}",
                                        describe(other),
                                        RETRY_ON_KINDS.join(", ")
                                    ),
                                ),
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
        let compensate = compensate_explicit.unwrap_or(node_type == Some(NodeType::Effect));
        if compensate
            && let Some(t) = node_type
            && !t.is_effect()
            && let Some(v) = Self::get(e, "compensate")
        {
            self.problem(v.pos, "`compensate: true` needs an effect node: only effect steps export `compensate`");
        }
        if workflow_type.requires_compensation() && node_type == Some(NodeType::Effect) && !compensate {
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
        let component = match self.required_string(e, "component", item.pos, "the node") {
            Some((c, pos)) => {
                match self.resolved.entry(c.clone()).or_insert_with(|| resolve_component(&c, base)).clone() {
                    Ok(path) => {
                        if let (Some(checker), Some(t)) = (checker, node_type)
                            && let Err(reason) = self
                                .checked
                                .entry((path.clone(), t.is_effect()))
                                .or_insert_with(|| checker.check(&path, t))
                                .clone()
                        {
                            self.problem(
                                pos,
                                format!("component `{c}` cannot run as a {} node: {reason}", type_name(t)),
                            );
                        }
                        Some(path)
                    }
                    Err(msg) => {
                        self.problem(pos, msg);
                        None
                    }
                }
            }
            None => None,
        };
        let (id, id_pos) = id?;
        self.seen_ids.push((id.clone(), id_pos));
        // Dependencies are checked for every node that has an id, even one
        // with other problems.
        self.dep_refs.push((id.clone(), depends_on.clone()));
        let uses = node_uses(when.as_ref(), &input);
        let spec = NodeSpec {
            id,
            node_type: node_type?,
            description,
            timeout_ms,
            retry,
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
            uses,
            pos: item.pos,
        };
        self.node = None;
        Some(ParsedNode { spec, id_pos, deps: depends_on })
    }

    /// Checks ids and dependencies, and orders the graph.
    fn graph(&mut self, parsed: &[ParsedNode]) -> Option<GraphParts> {
        let mut index: HashMap<String, usize> = HashMap::with_capacity(parsed.len());
        let mut first_pos: HashMap<&str, Pos> = HashMap::new();
        for (i, n) in parsed.iter().enumerate() {
            if let Some(first) = first_pos.get(n.spec.id.as_str()) {
                self.node = Some(n.spec.id.clone());
                self.problem(
                    n.id_pos,
                    format!("duplicate node id: `{}` is already defined at line {}", n.spec.id, first.line),
                );
                continue;
            }
            first_pos.insert(&n.spec.id, n.id_pos);
            index.insert(n.spec.id.clone(), i);
        }
        // Ids of nodes that had other problems still count as existing.
        let known: std::collections::HashSet<&str> = self.seen_ids.iter().map(|(s, _)| s.as_str()).collect();
        let mut dependencies = vec![Vec::new(); parsed.len()];
        let mut dependents = vec![Vec::new(); parsed.len()];
        let mut problems = Vec::new();
        let all_ids: Vec<&str> = known.iter().copied().collect();
        for (id, deps) in &self.dep_refs {
            for (dep, pos) in deps {
                if dep == id {
                    problems.push((id.clone(), *pos, "a node cannot depend on itself".to_string()));
                } else if !known.contains(dep.as_str()) {
                    // Suggestions cost a scan of every id: the first hundred get one.
                    let hint = (problems.len() < 100)
                        .then(|| closest(dep, &all_ids))
                        .flatten()
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    problems.push((
                        id.clone(),
                        *pos,
                        format!("depends on `{dep}`, which is not a node of this workflow{hint}"),
                    ));
                }
            }
        }
        for (i, n) in parsed.iter().enumerate() {
            // A set only for long lists (a fan-in of thousands), a scan otherwise.
            let mut seen = std::collections::HashSet::new();
            let many = n.deps.len() > 16;
            for (dep, _) in &n.deps {
                if let Some(&j) = index.get(dep)
                    && j != i
                    && if many { seen.insert(j) } else { !dependencies[i].contains(&j) }
                {
                    dependencies[i].push(j);
                    dependents[j].push(i);
                }
            }
        }
        for (id, pos, msg) in problems {
            self.node = Some(id);
            self.problem(pos, msg);
        }
        self.node = None;
        // Kahn's algorithm, ties broken by file order.
        let mut indegree: Vec<usize> = dependencies.iter().map(Vec::len).collect();
        let mut ready: BinaryHeap<std::cmp::Reverse<usize>> =
            (0..parsed.len()).filter(|&i| indegree[i] == 0).map(std::cmp::Reverse).collect();
        let mut topo = Vec::with_capacity(parsed.len());
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            topo.push(i);
            for &j in &dependents[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.push(std::cmp::Reverse(j));
                }
            }
        }
        if topo.len() < parsed.len() {
            let cycle = find_cycle(&dependencies, &indegree);
            let names: Vec<&str> = cycle.iter().map(|&i| parsed[i].spec.id.as_str()).collect();
            let first = cycle.first().copied().unwrap_or(0);
            self.node = Some(parsed[first].spec.id.clone());
            self.problem(
                parsed[first].spec.pos,
                format!(
                    "the graph has a cycle: {} -> {}; remove one of these dependencies",
                    names.join(" -> "),
                    names.first().unwrap_or(&"?")
                ),
            );
            self.node = None;
            return None;
        }
        Some((index, dependencies, dependents, topo))
    }
}

type GraphParts = (HashMap<String, usize>, Vec<Vec<usize>>, Vec<Vec<usize>>, Vec<usize>);

struct ParsedNode {
    spec: NodeSpec,
    id_pos: Pos,
    deps: Vec<(String, Pos)>,
}

/// A cycle among the nodes Kahn's algorithm could not order (those with
/// indegree left), found by walking dependencies until a node repeats.
fn find_cycle(dependencies: &[Vec<usize>], indegree: &[usize]) -> Vec<usize> {
    let Some(start) = (0..indegree.len()).find(|&i| indegree[i] > 0) else {
        return Vec::new();
    };
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut cur = start;
    loop {
        if let Some(&at) = seen.get(&cur) {
            let mut cycle: Vec<usize> = path[at..].to_vec();
            cycle.reverse();
            return cycle;
        }
        seen.insert(cur, path.len());
        path.push(cur);
        // Follow a dependency that is itself stuck in the cycle region.
        match dependencies[cur].iter().find(|&&d| indegree[d] > 0) {
            Some(&next) => cur = next,
            None => return path,
        }
    }
}

fn type_name(t: NodeType) -> &'static str {
    match t {
        NodeType::Compute => "compute",
        NodeType::Reducer => "reducer",
        NodeType::Effect => "effect",
    }
}

fn describe(n: &Node) -> String {
    match n {
        Node::String(s) => format!("`{s}`"),
        Node::Number(x) => x.to_string(),
        Node::Bool(b) => b.to_string(),
        other => other.type_name().to_string(),
    }
}

/// The allowed word closest to `word`, when it is close (a likely typo).
pub(crate) fn closest<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let chars = word.chars().count();
    let near = |a: &str| a.chars().count().abs_diff(chars) <= 2.max(a.len() / 4);
    allowed
        .iter()
        // The distance is at least the difference in length: skip the hopeless.
        .filter(|a| near(a))
        .map(|a| (strsim_distance(word, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance (small inputs: keys and ids).
fn strsim_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Finds a component: a path relative to the workflow file, or a name looked
/// up (as NAME and NAME.wasm) in the workflow's folder and in `$WEFT_PLUGIN_PATH`.
/// The path is canonical, so every spelling of one file (`./a.wasm`,
/// `../dir/a.wasm`, a symlink) is the same component (one circuit breaker,
/// one pin).
pub fn resolve_component(name: &str, base: &Path) -> Result<PathBuf, String> {
    find_component(name, base).map(|p| std::fs::canonicalize(&p).unwrap_or(p))
}

fn find_component(name: &str, base: &Path) -> Result<PathBuf, String> {
    let direct = base.join(name);
    if direct.is_file() {
        return Ok(direct);
    }
    let plain_name = !name.contains('/') && !name.contains('\\');
    // A plain name may still be found as NAME.wasm below; a path names one thing.
    if !plain_name && direct.exists() {
        return Err(format!(
            "component `{name}` ({}) is not a regular file; a component is a .wasm file built for wasm32-wasip2",
            direct.display()
        ));
    }
    let mut looked = vec![direct.display().to_string()];
    if plain_name {
        let mut dirs = vec![base.to_path_buf()];
        if let Some(extra) = std::env::var_os(PLUGIN_PATH_ENV) {
            dirs.extend(std::env::split_paths(&extra));
        }
        for d in dirs {
            for candidate in [d.join(name), d.join(format!("{name}.wasm"))] {
                if candidate.is_file() {
                    return Ok(candidate);
                }
                looked.push(candidate.display().to_string());
            }
        }
    }
    looked.dedup();
    Err(format!(
        "component `{name}` not found (looked at {}); give a path relative to the workflow file, or put it on ${PLUGIN_PATH_ENV}",
        looked.join(", ")
    ))
}

/// What a node's `when` and `input` expressions read, if it has any.
fn node_uses(when: Option<&Expr>, input: &InputMapping) -> Option<super::expr::Uses> {
    let mut exprs: Vec<&Expr> = when.into_iter().collect();
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
