//! Drawing a workflow's step graph as text: Mermaid or Graphviz dot, with each step's
//! condition on the node it guards.

use super::Dag;

/// A text format for a step graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz dot.
    Dot,
}

/// The DAG as Mermaid or dot text, with conditions on the nodes they guard.
pub fn render_graph(dag: &Dag, format: GraphFormat) -> String {
    let label = |i: usize| {
        let step = dag.step(i);
        match &step.when {
            Some(when) => format!("{}\\nwhen {}", step.name, when.replace('"', "'")),
            None => step.name.clone(),
        }
    };
    let mut out = String::new();
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart TD\n");
            for i in dag.topological_order().iter().copied() {
                out.push_str(&format!(
                    "    s{i}[\"{}\"]\n",
                    label(i).replace("\\n", "<br/>")
                ));
            }
            for i in dag.topological_order().iter().copied() {
                for j in dag.successors(i) {
                    out.push_str(&format!("    s{i} --> s{j}\n"));
                }
            }
        }
        GraphFormat::Dot => {
            out.push_str(&format!("digraph \"{}\" {{\n", dag.name()));
            for i in dag.topological_order().iter().copied() {
                out.push_str(&format!("    s{i} [label=\"{}\"];\n", label(i)));
            }
            for i in dag.topological_order().iter().copied() {
                for j in dag.successors(i) {
                    out.push_str(&format!("    s{i} -> s{j};\n"));
                }
            }
            out.push_str("}\n");
        }
    }
    out.trim_end().to_string()
}
