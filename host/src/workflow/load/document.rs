//! The document's sections: `kind`, `metadata`, `workflow_metadata`,
//! `coordination_rules` and `execution_graph`, walked into a [`Workflow`].

use super::super::component::ComponentCheck;
use super::super::model::*;
use super::super::yaml::{Located, Node};
use super::walker::Walker;
use std::path::Path;

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
    "batch_size",
    "memoize",
    "config",
];

impl Walker {
    /// The whole workflow, or `None` when it has problems that stop the walk.
    pub(super) fn workflow(
        &mut self,
        doc: &Located,
        base: &Path,
        checker: Option<&dyn ComponentCheck>,
    ) -> Option<Workflow> {
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
        let mut labels = std::collections::BTreeMap::new();
        if let Some(m) = Self::get(top, "metadata").and_then(|m| self.map(m, "metadata")) {
            self.check_keys(m, METADATA_KEYS, "metadata");
            name = self.string(m, "name").map(|s| s.0).unwrap_or_default();
            description = self.string(m, "description").map(|s| s.0).unwrap_or_default();
            self.string(m, "version");
            self.string(m, "domain");
            self.string(m, "node_type");
            if let Some(l) = Self::get(m, "labels").and_then(|l| self.map(l, "labels")) {
                for (k, v) in l {
                    match &v.value {
                        Node::String(s) => {
                            labels.insert(k.value.clone(), s.clone());
                        }
                        other => self
                            .problem(v.pos, format!("label `{}` must be a string, not {}", k.value, other.type_name())),
                    }
                }
            }
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
            rules.batch_size = self.uint(r, "batch_size", 1, 1000).map(|n| n as u32);
            if let Some(b) = self.boolean(r, "memoize") {
                rules.memoize = b;
            }
            if let Some(v) = Self::get(r, "config") {
                rules.config = self.rules_config(v);
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
        let graph = self.graph(&parsed)?;
        self.check_streams(&parsed, &graph);
        self.check_switches(&parsed, &graph);
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
            graph,
            labels,
            source: None,
            definition: std::sync::Arc::from(""),
            base_dir: base.to_path_buf(),
        })
    }
}
