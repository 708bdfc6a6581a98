//! The graph of a workflow as text another tool draws: Mermaid (GitHub and
//! most Markdown viewers render it) or Graphviz dot.

use super::Workflow;
use std::fmt::Write;

/// A text format for a workflow's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// A Mermaid `flowchart`; effect nodes are boxes, `when` conditions label edges.
    Mermaid,
    /// A Graphviz `digraph`; effect nodes are boxes.
    Dot,
}

impl GraphFormat {
    /// The format named `mermaid` or `dot`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mermaid" => Some(Self::Mermaid),
            "dot" => Some(Self::Dot),
            _ => None,
        }
    }
}

/// `wf`'s nodes and dependencies in `format`.
pub fn render_graph(wf: &Workflow, format: GraphFormat) -> String {
    match format {
        GraphFormat::Dot => dot(wf),
        GraphFormat::Mermaid => mermaid(wf),
    }
}

fn dot(wf: &Workflow) -> String {
    let quote = |s: &str| s.replace('"', "'");
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", quote(&wf.name));
    for n in &wf.nodes {
        let shape = if n.node_type.is_effect() { "box" } else { "ellipse" };
        let _ = writeln!(out, "  \"{}\" [shape={shape}, label=\"{}\\n({:?})\"];", n.id, n.id, n.node_type);
    }
    for (i, deps) in wf.graph.dependencies.iter().enumerate() {
        for &d in deps {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", wf.nodes[d].id, wf.nodes[i].id);
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid(wf: &Workflow) -> String {
    let mut out = String::from("flowchart LR\n");
    for (k, n) in wf.nodes.iter().enumerate() {
        let label = format!("{} ({:?})", n.id, n.node_type).to_lowercase().replace('"', "'");
        if n.node_type.is_effect() {
            let _ = writeln!(out, "  n{k}[\"{label}\"]");
        } else {
            let _ = writeln!(out, "  n{k}(\"{label}\")");
        }
    }
    for (i, deps) in wf.graph.dependencies.iter().enumerate() {
        for &d in deps {
            let cond = wf.nodes[i]
                .when
                .as_ref()
                .map(|w| format!("|\"{}\"|", w.source().replace('"', "'")))
                .unwrap_or_default();
            let _ = writeln!(out, "  n{d} -->{cond} n{i}");
        }
    }
    out
}
