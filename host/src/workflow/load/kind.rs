//! A node's `node_type` and what it implies: the component nodes (compute,
//! reducer, effect, and `custom` with its declared `world`), and the ones
//! that run none: `conditional` (its `cases`), `parallel`, an approval gate
//! (`effect` with `wait_for: signal`) and `orchestrator` (its `workflow`
//! file, loaded here with every file it nests, bounded in depth and
//! refused when the files form a cycle).

use super::super::component::ComponentCheck;
use super::super::component::lexical;
use super::super::model::*;
use super::super::yaml::{Located, Node, Pos};
use super::walker::{Entries, Walker};
use std::path::Path;
use std::sync::Arc;

/// Keys that only a node running a component can use.
const COMPONENT_ONLY: &[&str] =
    &["fuel", "memory_mb", "capabilities", "for_each", "memoize", "stream_from", "retry", "retry_count", "timeout_ms"];

impl Walker {
    /// The node's world, its type's name and its kind, from `node_type` (and
    /// `world`, `cases`, `wait_for`, `workflow`); `None` when it is unusable.
    pub(super) fn node_kind(
        &mut self,
        e: &Entries,
        declared: &str,
        pos: Pos,
        base: &Path,
        at: Pos,
        checker: Option<&dyn ComponentCheck>,
    ) -> Option<(NodeType, &'static str, NodeKind)> {
        let gate = self.string(e, "wait_for");
        let wait_timeout_ms = self.uint(e, "wait_timeout_ms", 1000, 30 * 86_400_000);
        let (world, name, kind) = match declared {
            "compute" => (NodeType::Compute, "compute", NodeKind::Component),
            "reducer" | "reduce" => (NodeType::Reducer, "reducer", NodeKind::Component),
            "effect" => match &gate {
                Some((w, _)) if w == "signal" => {
                    (NodeType::Effect, "effect", NodeKind::Gate(GateSpec { wait_timeout_ms }))
                }
                Some((w, p)) => {
                    self.problem(*p, format!("`wait_for` is `{w}`; the one thing a node can wait for is `signal`"));
                    return None;
                }
                None => (NodeType::Effect, "effect", NodeKind::Component),
            },
            "custom" => {
                let world = match self.required_string(e, "world", at, "a custom node") {
                    Some((w, p)) => match w.as_str() {
                        "compute" => NodeType::Compute,
                        "reducer" => NodeType::Reducer,
                        "effect" => NodeType::Effect,
                        _ => {
                            self.problem(p, format!("`world` is `{w}`; it must be compute, reducer or effect"));
                            return None;
                        }
                    },
                    None => return None,
                };
                (world, "custom", NodeKind::Component)
            }
            "conditional" => (NodeType::Compute, "conditional", NodeKind::Switch(self.cases(e, at)?)),
            "parallel" => (NodeType::Compute, "parallel", NodeKind::Join),
            "orchestrator" => {
                let sub = self.sub_workflow(e, base, at, checker)?;
                (NodeType::Effect, "orchestrator", NodeKind::SubWorkflow(Arc::new(sub)))
            }
            other => {
                self.problem(
                    pos,
                    format!(
                        "`node_type` is `{other}`; it must be compute, reducer, effect, custom, conditional, \
                         parallel or orchestrator"
                    ),
                );
                return None;
            }
        };
        self.check_kind_keys(e, name, &kind);
        Some((world, name, kind))
    }

    /// Keys that do not apply to the node's type.
    fn check_kind_keys(&mut self, e: &Entries, name: &str, kind: &NodeKind) {
        let misplaced = |key: &str| -> Option<String> {
            match (key, kind) {
                ("world", _) if name != "custom" => {
                    Some("`world` belongs to a `custom` node (the other types imply their world)".into())
                }
                ("cases", NodeKind::Switch(_)) => None,
                ("cases", _) => Some("`cases` belongs to a `conditional` node".into()),
                ("workflow", NodeKind::SubWorkflow(_)) => None,
                ("workflow", _) => Some("`workflow` belongs to an `orchestrator` node".into()),
                ("wait_for", _) if name != "effect" => Some(
                    "`wait_for: signal` makes an effect node an approval gate; it needs `node_type: effect`".into(),
                ),
                ("wait_timeout_ms", NodeKind::Gate(_)) => None,
                ("wait_timeout_ms", _) => {
                    Some("`wait_timeout_ms` belongs to an approval gate (`wait_for: signal`)".into())
                }
                (k, NodeKind::Gate(_)) if COMPONENT_ONLY.contains(&k) => Some(format!(
                    "an approval gate runs no component, so `{k}` does not apply to it (a gate's wait is bounded by \
                     `wait_timeout_ms`); remove it"
                )),
                (k, k2) if COMPONENT_ONLY.contains(&k) && !k2.has_component() => {
                    Some(format!("a `{name}` node runs no component, so `{k}` does not apply to it; remove it"))
                }
                _ => None,
            }
        };
        for (k, v) in e {
            if let Some(message) = misplaced(&k.value) {
                let _ = v;
                self.problem(k.pos, message);
            }
        }
    }

    /// A conditional node's `cases`: `{when, then}` entries, and at most one
    /// `{default}` entry, last.
    fn cases(&mut self, e: &Entries, at: Pos) -> Option<Vec<SwitchCase>> {
        let Some(v) = Self::get(e, "cases") else {
            self.problem(at, "a conditional node is missing `cases` (a list of `{when: CEL, then: [node ids]}`)");
            return None;
        };
        let Node::Seq(items) = &v.value else {
            self.problem(v.pos, format!("`cases` must be a list, not {}", v.value.type_name()));
            return None;
        };
        if items.is_empty() {
            self.problem(v.pos, "`cases` is empty; give at least one `{when: CEL, then: [node ids]}`");
            return None;
        }
        let mut cases = Vec::new();
        for (k, item) in items.iter().enumerate() {
            let entries = self.map(item, "each case")?;
            if let Some(d) = Self::get(entries, "default") {
                self.check_keys(entries, &["default"], "a default case");
                if k + 1 != items.len() {
                    self.problem(item.pos, "the `default` case must come last: the cases are tried in order");
                }
                cases.push(SwitchCase { when: None, then: self.id_list(d, "default")? });
                continue;
            }
            self.check_keys(entries, &["when", "then"], "a case");
            let when = match Self::get(entries, "when") {
                Some(w) => self.expr(w, "the case's `when`"),
                None => {
                    self.problem(item.pos, "a case needs `when` (or is the last one, `default`)");
                    None
                }
            };
            let then = match Self::get(entries, "then") {
                Some(t) => self.id_list(t, "then"),
                None => {
                    self.problem(item.pos, "a case needs `then`, the node ids it lets run");
                    None
                }
            };
            cases.push(SwitchCase { when: Some(when?), then: then? });
        }
        Some(cases)
    }

    /// A list of node ids.
    fn id_list(&mut self, v: &Located, key: &str) -> Option<Vec<String>> {
        match &v.value {
            Node::Seq(items) => {
                let mut ids = Vec::new();
                for i in items {
                    match &i.value {
                        Node::String(s) => ids.push(s.clone()),
                        other => {
                            self.problem(i.pos, format!("`{key}` lists node ids (strings), not {}", other.type_name()))
                        }
                    }
                }
                Some(ids)
            }
            Node::String(s) => Some(vec![s.clone()]),
            other => {
                self.problem(v.pos, format!("`{key}` must be a list of node ids, not {}", other.type_name()));
                None
            }
        }
    }

    /// An orchestrator node's `workflow`, loaded and validated with what it nests.
    fn sub_workflow(
        &mut self,
        e: &Entries,
        base: &Path,
        at: Pos,
        checker: Option<&dyn ComponentCheck>,
    ) -> Option<SubWorkflow> {
        let (written, pos) = self.required_string(e, "workflow", at, "an orchestrator node")?;
        if let Some(Err(reason)) = checker.map(|c| c.may_nest_files()) {
            self.problem(pos, reason);
            return None;
        }
        let joined = base.join(&written);
        let key = self.nesting.key_of(&written);
        let path = match std::fs::canonicalize(&joined) {
            Ok(p) if p.is_file() => p,
            // A resumed run nests the text it journaled, also when the file is gone.
            _ if self.nesting.pinned_text(&key).is_some() => lexical(&joined),
            _ => {
                self.problem(
                    pos,
                    format!(
                        "the sub-workflow `{written}` is not a file ({}); give a path relative to this workflow file",
                        joined.display()
                    ),
                );
                return None;
            }
        };
        // A file loaded before in this load is not read again: only where it
        // nests now is checked.
        let loaded = match self.nesting.get(&path) {
            Some(loaded) => loaded,
            None if self.nesting.has_failed(&path) => {
                self.problem(
                    pos,
                    format!("the sub-workflow `{written}` does not validate (its problems are listed with its file)"),
                );
                return None;
            }
            None => {
                if self.nesting.chain.contains(&path) {
                    self.problem(
                        pos,
                        format!(
                            "the workflow files form a cycle: {}; a workflow cannot run itself, directly or through \
                             another",
                            self.nesting.names(&path)
                        ),
                    );
                    return None;
                }
                if self.nesting.chain.len() >= MAX_WORKFLOW_DEPTH {
                    self.problem(
                        pos,
                        format!(
                            "sub-workflows nest {} deep here ({}), past the max_workflow_depth of {MAX_WORKFLOW_DEPTH}",
                            self.nesting.chain.len() + 1,
                            self.nesting.names(&path)
                        ),
                    );
                    return None;
                }
                match super::load_file_in(&path, checker, &self.nesting.inside(path.clone(), key)) {
                    Ok(wf) => self.nesting.put(path.clone(), Arc::new(wf)),
                    Err(err) => {
                        self.nesting.fail(path.clone());
                        self.problems.extend(err.problems);
                        self.problem(
                            pos,
                            format!(
                                "the sub-workflow `{written}` does not validate (its problems are listed with its file)"
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        if let Some(why) = self.nesting.refuses(&path, &loaded) {
            self.problem(pos, why);
            return None;
        }
        Some(SubWorkflow { path, written, workflow: loaded.workflow })
    }
}

impl Walker {
    /// Each conditional node's cases name only its own dependents (the
    /// nodes it can let run or keep from running).
    pub(super) fn check_switches(&mut self, parsed: &[super::graph::ParsedNode], graph: &Graph) {
        for (i, p) in parsed.iter().enumerate() {
            let NodeKind::Switch(cases) = &p.spec.kind else { continue };
            let dependents: Vec<&str> = graph.dependents[i].iter().map(|&d| parsed[d].spec.id.as_str()).collect();
            for id in cases.iter().flat_map(|c| &c.then) {
                if !dependents.contains(&id.as_str()) {
                    self.node = Some(p.spec.id.clone());
                    let known = if dependents.is_empty() { "none".to_string() } else { dependents.join(", ") };
                    self.problem(
                        p.spec.pos,
                        format!(
                            "case target `{id}` is not a dependent of this conditional node (its dependents: \
                             {known}); a case picks among the nodes that list it in `depends_on`"
                        ),
                    );
                }
            }
        }
        self.node = None;
    }

    /// `coordination_rules.config`: the contract's config for this workflow.
    pub(super) fn rules_config(&mut self, v: &Located) -> Option<crate::contract::ConfigLayer> {
        match crate::contract::ConfigLayer::from_json(v.value.to_json()) {
            Ok(layer) => {
                for p in layer.check() {
                    self.problem(v.pos, format!("`coordination_rules.config`: {p}"));
                }
                Some(layer)
            }
            Err(e) => {
                self.problem(v.pos, format!("`coordination_rules.config` is not the contract's config: {e}"));
                None
            }
        }
    }
}
