//! A workflow's DAG laid out for the web UI, as inline SVG: nodes in layers
//! by their longest path from a root, ordered within each layer by the
//! barycenter of their parents (a few sweeps), edges as curves. A layer
//! wider than [`MAX_LAYER_WIDTH`] has its nodes that share the same parents
//! collapsed into one group node that shows counts, as a wide fan-out is
//! unreadable otherwise. Each node carries its step ids, so the page's
//! script can colour it by state as the run's events arrive.

use maud::{Markup, html};
use std::collections::BTreeMap;

/// The most nodes one layer shows before nodes with the same parents collapse.
pub const MAX_LAYER_WIDTH: usize = 12;

const NODE_W: f64 = 150.0;
const NODE_H: f64 = 40.0;
const GAP_X: f64 = 30.0;
const GAP_Y: f64 = 60.0;
const MARGIN: f64 = 10.0;

/// One node to draw: a step, or a group of steps.
#[derive(Debug, Clone, PartialEq)]
pub struct DagNode {
    /// The steps it stands for (one, unless a group).
    pub steps: Vec<String>,
    /// Its label.
    pub label: String,
    /// The node type of its (first) step.
    pub node_type: String,
    /// Its layer.
    pub layer: usize,
    /// Its position in the layer.
    pub x: f64,
}

/// A laid-out DAG.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The nodes.
    pub boxes: Vec<DagNode>,
    /// The edges, as indices into `boxes`.
    pub edges: Vec<(usize, usize)>,
    /// The widest layer's node count.
    pub width: usize,
    /// The number of layers.
    pub layers: usize,
}

/// Lays out steps `(id, node type, parents)`, given in topological order.
pub fn layout(steps: &[(String, String, Vec<String>)]) -> Layout {
    let index: BTreeMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.0.as_str(), i)).collect();
    let parents: Vec<Vec<usize>> =
        steps.iter().map(|s| s.2.iter().filter_map(|p| index.get(p.as_str()).copied()).collect()).collect();
    // Longest path from a root (steps come in topological order).
    let mut layer = vec![0usize; steps.len()];
    for i in 0..steps.len() {
        layer[i] = parents[i].iter().map(|&p| layer[p] + 1).max().unwrap_or(0);
    }
    let depth = layer.iter().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, &l) in layer.iter().enumerate() {
        rows[l].push(i);
    }
    // Boxes: a wide layer's steps with the same parents become one group.
    let mut box_of = vec![0usize; steps.len()];
    let mut boxes: Vec<DagNode> = Vec::new();
    for (l, row) in rows.iter().enumerate() {
        let mut groups: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
        for &i in row {
            let key = {
                let mut k = parents[i].clone();
                k.sort_unstable();
                k
            };
            let collapse = row.len() > MAX_LAYER_WIDTH;
            match groups.iter_mut().find(|(k, _)| collapse && *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for (_, members) in groups {
            let n = boxes.len();
            for &m in &members {
                box_of[m] = n;
            }
            let label =
                if members.len() == 1 { steps[members[0]].0.clone() } else { format!("{} steps", members.len()) };
            boxes.push(DagNode {
                steps: members.iter().map(|&m| steps[m].0.clone()).collect(),
                label,
                node_type: steps[members[0]].1.clone(),
                layer: l,
                x: 0.0,
            });
        }
    }
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Each box's parent boxes, for the ordering below.
    let mut parent_boxes: Vec<Vec<usize>> = vec![Vec::new(); boxes.len()];
    for (i, ps) in parents.iter().enumerate() {
        for &p in ps {
            let e = (box_of[p], box_of[i]);
            if seen.insert(e) {
                edges.push(e);
                parent_boxes[e.1].push(e.0);
            }
        }
    }
    // Order each layer by the mean position of its parents, a few sweeps down.
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (b, bx) in boxes.iter().enumerate() {
        order[bx.layer].push(b);
    }
    let mut pos = vec![0.0f64; boxes.len()];
    for row in &order {
        for (k, &b) in row.iter().enumerate() {
            pos[b] = k as f64;
        }
    }
    for _ in 0..4 {
        for row in order.iter_mut().skip(1) {
            let centre = |b: usize| {
                let ps = &parent_boxes[b];
                if ps.is_empty() { pos[b] } else { ps.iter().map(|&p| pos[p]).sum::<f64>() / ps.len() as f64 }
            };
            let mut keyed: Vec<(f64, usize)> = row.iter().map(|&b| (centre(b), b)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            *row = keyed.into_iter().map(|(_, b)| b).collect();
            for (k, &b) in row.iter().enumerate() {
                pos[b] = k as f64;
            }
        }
    }
    let width = order.iter().map(Vec::len).max().unwrap_or(0);
    for row in &order {
        // Centre each layer under the widest.
        let offset = (width - row.len()) as f64 / 2.0;
        for (k, &b) in row.iter().enumerate() {
            boxes[b].x = offset + k as f64;
        }
    }
    Layout { boxes, edges, width, layers: depth }
}

impl Layout {
    fn at(&self, b: usize) -> (f64, f64) {
        let bx = &self.boxes[b];
        (MARGIN + bx.x * (NODE_W + GAP_X), MARGIN + bx.layer as f64 * (NODE_H + GAP_Y))
    }

    /// The DAG as an inline SVG element; every node starts as `pending`.
    pub fn svg(&self) -> Markup {
        let w = 2.0 * MARGIN + self.width.max(1) as f64 * (NODE_W + GAP_X) - GAP_X;
        let h = 2.0 * MARGIN + self.layers.max(1) as f64 * (NODE_H + GAP_Y) - GAP_Y;
        html! {
            svg class="dag" xmlns="http://www.w3.org/2000/svg" width=(w) height=(h) viewBox={"0 0 " (w) " " (h)} role="img" aria-label="the workflow's steps and dependencies" {
                @for &(from, to) in &self.edges {
                    @let (x1, y1) = self.at(from);
                    @let (x2, y2) = self.at(to);
                    path class="edge" d={
                        "M" (x1 + NODE_W / 2.0) " " (y1 + NODE_H)
                        " C" (x1 + NODE_W / 2.0) " " (y1 + NODE_H + GAP_Y / 2.0)
                        " " (x2 + NODE_W / 2.0) " " (y2 - GAP_Y / 2.0)
                        " " (x2 + NODE_W / 2.0) " " (y2)
                    } {}
                }
                @for (b, bx) in self.boxes.iter().enumerate() {
                    @let (x, y) = self.at(b);
                    g class={ "node pending" @if bx.steps.len() > 1 { " group" } } data-steps=(bx.steps.join(" ")) data-label=(bx.label) {
                        title { (bx.steps.join(", ")) " (" (bx.node_type) ")" }
                        rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="6" {}
                        text x=(x + NODE_W / 2.0) y=(y + 17.0) text-anchor="middle" class="label" { (short(&bx.label)) }
                        text x=(x + NODE_W / 2.0) y=(y + 32.0) text-anchor="middle" class="state" {
                            @if bx.steps.len() > 1 { (bx.steps.len()) " pending" } @else { "pending" }
                        }
                    }
                }
            }
        }
    }
}

/// `s` cut to fit a node.
fn short(s: &str) -> String {
    if s.chars().count() <= 20 { s.to_string() } else { s.chars().take(19).collect::<String>() + "…" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(spec: &[(&str, &[&str])]) -> Vec<(String, String, Vec<String>)> {
        spec.iter()
            .map(|(id, ps)| (id.to_string(), "COMPUTE".into(), ps.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    #[test]
    fn layers_follow_the_longest_path() {
        let l = layout(&steps(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"]), ("d", &[])]));
        let layer = |id: &str| l.boxes.iter().find(|b| b.steps == [id]).map(|b| b.layer);
        assert_eq!((layer("a"), layer("b"), layer("c"), layer("d")), (Some(0), Some(1), Some(2), Some(0)));
        assert_eq!(l.edges.len(), 3);
    }

    #[test]
    fn a_wide_fan_out_collapses_into_one_node_with_its_count() {
        let mut spec: Vec<(String, Vec<String>)> = vec![("root".into(), vec![])];
        for i in 0..40 {
            spec.push((format!("leaf{i}"), vec!["root".into()]));
        }
        spec.push(("join".into(), (0..40).map(|i| format!("leaf{i}")).collect()));
        let steps: Vec<_> = spec.into_iter().map(|(id, ps)| (id, "COMPUTE".to_string(), ps)).collect();
        let l = layout(&steps);
        assert_eq!(l.boxes.len(), 3, "root, one group of 40, join");
        assert_eq!(l.boxes[1].label, "40 steps");
        assert_eq!(l.edges, [(0, 1), (1, 2)]);
        assert!(l.svg().into_string().contains("data-label=\"40 steps\""));
    }
}
