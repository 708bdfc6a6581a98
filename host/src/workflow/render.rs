//! The graph of a workflow as text another tool draws: Mermaid (GitHub and
//! most Markdown viewers render it) or Graphviz dot.

use super::{NodeKind, NodeSpec, Workflow};
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

/// `s` safe inside a double-quoted Graphviz or Mermaid string.
fn quoted(s: &str) -> String {
    s.replace('\\', "/").replace('"', "'").replace(['\n', '\r'], " ")
}

/// A node's label: its id and its type (`custom` nodes with their world).
fn label(n: &NodeSpec) -> String {
    let t = match (n.type_name, &n.kind) {
        ("custom", _) => format!("custom {}", n.node_type.as_str()),
        (_, NodeKind::Gate(_)) => "approval gate".to_string(),
        (t, _) => t.to_string(),
    };
    quoted(&format!("{} ({t})", n.id))
}

fn dot(wf: &Workflow) -> String {
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n  compound=true;\n", quoted(&wf.name));
    dot_body(wf, "", &mut out);
    out.push_str("}\n");
    out
}

/// The nodes and edges of `wf`, ids prefixed with `prefix`; a sub-workflow
/// is a cluster that its node points into.
fn dot_body(wf: &Workflow, prefix: &str, out: &mut String) {
    for n in &wf.nodes {
        let shape = match &n.kind {
            NodeKind::Switch(_) => "diamond",
            NodeKind::Gate(_) => "hexagon",
            NodeKind::Join => "circle",
            _ if n.node_type.is_effect() => "box",
            _ => "ellipse",
        };
        let _ = writeln!(out, "  \"{prefix}{}\" [shape={shape}, label=\"{}\"];", n.id, label(n));
        if let NodeKind::SubWorkflow(sub) = &n.kind {
            let inner = format!("{prefix}{}/", n.id);
            let _ = writeln!(
                out,
                "  subgraph \"cluster_{inner}\" {{\n  label=\"{} ({})\";",
                quoted(&sub.workflow.name),
                quoted(&sub.written)
            );
            dot_body(&sub.workflow, &inner, out);
            out.push_str("  }\n");
            if let Some(first) = sub.workflow.graph.topo_order.first() {
                let _ = writeln!(
                    out,
                    "  \"{prefix}{}\" -> \"{inner}{}\" [style=dashed, label=\"runs\"];",
                    n.id, sub.workflow.nodes[*first].id
                );
            }
        }
    }
    for (i, deps) in wf.graph.dependencies.iter().enumerate() {
        for &d in deps {
            let _ = writeln!(out, "  \"{prefix}{}\" -> \"{prefix}{}\";", wf.nodes[d].id, wf.nodes[i].id);
        }
    }
}

fn mermaid(wf: &Workflow) -> String {
    let mut out = String::from("flowchart LR\n");
    mermaid_body(wf, "n", &mut out);
    out
}

/// The nodes and edges of `wf`, Mermaid ids prefixed with `prefix`; a
/// sub-workflow is a subgraph in place of its node.
fn mermaid_body(wf: &Workflow, prefix: &str, out: &mut String) {
    for (k, n) in wf.nodes.iter().enumerate() {
        let l = label(n);
        match &n.kind {
            NodeKind::SubWorkflow(sub) => {
                let _ = writeln!(out, "  subgraph {prefix}{k}[\"{l}: {}\"]", quoted(&sub.written));
                mermaid_body(&sub.workflow, &format!("{prefix}{k}_"), out);
                out.push_str("  end\n");
            }
            NodeKind::Switch(_) => {
                let _ = writeln!(out, "  {prefix}{k}{{\"{l}\"}}");
            }
            NodeKind::Gate(_) => {
                let _ = writeln!(out, "  {prefix}{k}{{{{\"{l}\"}}}}");
            }
            NodeKind::Join => {
                let _ = writeln!(out, "  {prefix}{k}((\"{l}\"))");
            }
            _ if n.node_type.is_effect() => {
                let _ = writeln!(out, "  {prefix}{k}[\"{l}\"]");
            }
            _ => {
                let _ = writeln!(out, "  {prefix}{k}(\"{l}\")");
            }
        }
    }
    for (i, deps) in wf.graph.dependencies.iter().enumerate() {
        for &d in deps {
            let cond = wf.nodes[i].when.as_ref().map(|w| format!("|\"{}\"|", quoted(w.source()))).unwrap_or_default();
            let _ = writeln!(out, "  {prefix}{d} -->{cond} {prefix}{i}");
        }
    }
}
