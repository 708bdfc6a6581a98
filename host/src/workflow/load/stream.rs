//! The checks `stream_from` needs once the graph is known: a producer that
//! can stream, and consumers whose other dependencies are done before their
//! producer starts (a consumer starts with its producer).

use super::super::model::Graph;
use super::graph::ParsedNode;
use super::walker::Walker;

impl Walker {
    /// Checks every `stream_from` consumer against the graph.
    pub(super) fn check_streams(&mut self, parsed: &[ParsedNode], graph: &Graph) {
        for (c, node) in parsed.iter().enumerate() {
            let Some(stream) = &node.spec.stream_from else { continue };
            let Some(&p) = graph.index.get(&stream.producer) else { continue };
            let producer = &parsed[p].spec;
            self.node = Some(node.spec.id.clone());
            let pos = node.spec.pos;
            if parsed[p].memoize_explicit {
                self.problem(
                    pos,
                    format!(
                        "`stream_from: {}` names a memoized node; a memo hit would emit nothing: remove `memoize` \
                         from `{}`",
                        producer.id, producer.id
                    ),
                );
            }
            if !producer.kind.has_component() {
                self.problem(
                    pos,
                    format!(
                        "`stream_from: {}` names a `{}` node, which runs no component and so emits nothing; stream \
                         from a compute, reducer, effect or custom node",
                        producer.id, producer.type_name
                    ),
                );
            }
            if producer.for_each.is_some() {
                self.problem(
                    pos,
                    format!("`stream_from: {}` names a `for_each` node, which cannot stream", producer.id),
                );
            }
            if let Some(up) = &producer.stream_from {
                self.problem(
                    pos,
                    format!(
                        "`stream_from: {}` names a consumer itself (of `{}`); streams do not chain: consume `{}` \
                         directly",
                        producer.id, up.producer, up.producer
                    ),
                );
            }
            if node.spec.uses.as_ref().is_some_and(|u| u.all_steps || u.steps.contains(&producer.id)) {
                self.problem(
                    pos,
                    format!(
                        "its `when` or `input` reads `steps.{}`, but a consumer starts with its producer, before that \
                         output exists; read the items from the stream, or upstream outputs",
                        producer.id
                    ),
                );
            }
            if node.spec.requires_action {
                self.problem(
                    pos,
                    "a `stream_from` consumer cannot have `requires_action`: it starts before its \
                                   producer can emit actions",
                );
            }
            let ancestors = ancestors(graph, p);
            for &d in &graph.dependencies[c] {
                if d != p && !ancestors.contains(&d) {
                    self.problem(
                        pos,
                        format!(
                            "depends on `{}`, which does not come before its producer `{}`: a consumer starts with \
                             its producer, so its other dependencies must be upstream of it (add `{}` to the \
                             producer's `depends_on`)",
                            parsed[d].spec.id, producer.id, parsed[d].spec.id
                        ),
                    );
                }
            }
        }
        self.node = None;
    }
}

/// Every node `p` depends on, directly or not.
fn ancestors(graph: &Graph, p: usize) -> std::collections::HashSet<usize> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = graph.dependencies[p].clone();
    while let Some(d) = stack.pop() {
        if seen.insert(d) {
            stack.extend(graph.dependencies[d].iter().copied());
        }
    }
    seen
}
