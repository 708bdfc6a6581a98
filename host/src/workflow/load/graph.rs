//! The graph: node ids, dependencies both ways, and a topological order
//! (ties in file order), or the cycle that prevents one.

use super::super::model::{Graph, NodeSpec};
use super::super::suggest::closest;
use super::super::yaml::Pos;
use super::walker::Walker;
use std::collections::{BinaryHeap, HashMap};

/// A node as walked, with the positions its graph checks report.
pub(super) struct ParsedNode {
    pub(super) spec: NodeSpec,
    /// Where its `node_id` is.
    pub(super) id_pos: Pos,
    /// Its `depends_on`, with positions.
    pub(super) deps: Vec<(String, Pos)>,
    /// Whether the file says `memoize: true` on it.
    pub(super) memoize_explicit: bool,
}

impl Walker {
    /// Checks ids and dependencies, and orders the graph.
    pub(super) fn graph(&mut self, parsed: &[ParsedNode]) -> Option<Graph> {
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
        Some(Graph { index, dependencies, dependents, topo_order: topo })
    }
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
