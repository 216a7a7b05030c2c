//! The step DAG: a checked [`WorkflowGraph`] with its dependency edges, ready for an engine.
//!
//! Edges come from two places: a step's explicit `after` list, and every
//! `{{steps.X.outputs.K}}` reference in its params, inputs and `when` condition (data edges).
//! [`Dag::build`] is the one place a graph is checked, and every error names the step to fix:
//! duplicate names, retry limits above the cap, unknown steps, unknown functions, references to
//! outputs a step does not declare, unknown `{{args.x}}` parameters, and cycles (with the path).
//! An engine can therefore trust a [`Dag`]: every reference resolves, and a topological order
//! exists.
//!
//! Node `i` of the petgraph graph is step `i` of the workflow (declaration order), so indexes are
//! plain `usize` and cheap to keep in per-step tables.
//!
//! Building also parses each step's params, inputs and `when` condition once, into a [`StepNode`]
//! ([`Dag::node`]): engines render a step's values from it for every attempt and never parse a
//! string again, and the references checked here are exactly the ones rendered later.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use serde_json::{Map, Value};

use super::condition::Condition;
use super::graph::{RetryPolicy, Step, WorkflowGraph, WorkflowParam};
use super::refs::{Reference, Template};
use crate::error::{Error, Result};

/// What [`Dag::build`] checks beyond the graph itself.
#[derive(Debug, Clone, Default)]
pub struct DagCheck {
    /// The project's function names; `None` skips the unknown-function check (e.g. when the
    /// functions are resolved later, on a server).
    pub known_functions: Option<BTreeSet<String>>,
}

/// A checked workflow graph with its dependency edges.
#[derive(Debug, Clone)]
pub struct Dag {
    workflow: WorkflowGraph,
    graph: DiGraph<(), ()>,
    order: Vec<usize>,
    index: HashMap<String, usize>,
    /// Node `i` holds step `i`'s parsed values.
    nodes: Vec<StepNode>,
}

/// A step's values, parsed once by [`Dag::build`]; every reference in them was checked there.
#[derive(Debug, Clone)]
pub struct StepNode {
    /// The step's params.
    pub params: BTreeMap<String, Template>,
    /// The step's inputs.
    pub inputs: BTreeMap<String, Template>,
    /// The step's `when` condition.
    pub when: Option<Condition>,
}

impl StepNode {
    /// Parses a step's params, inputs and `when`; errors name the step.
    fn parse(step: &Step) -> Result<StepNode> {
        let in_step = |e: Error| Error::invalid(format!("step `{}`: {e}", step.name));
        let templates = |values: &BTreeMap<String, Value>| {
            values
                .iter()
                .map(|(k, v)| Ok((k.clone(), Template::parse(v).map_err(in_step)?)))
                .collect::<Result<BTreeMap<_, _>>>()
        };
        crate::model::hyper::check_hyper(&step.hyperparams, step.hyper_param_options.as_ref())
            .map_err(in_step)?;
        if Value::Object(step.hyperparams.clone())
            .to_string()
            .contains("{{")
        {
            return Err(Error::invalid_with_hint(
                format!(
                    "step `{}`: hyperparams hold a `{{{{...}}}}` reference",
                    step.name
                ),
                "hyperparameter values must be known when the workflow is loaded",
            ));
        }
        Ok(StepNode {
            params: templates(&step.params)?,
            inputs: templates(&step.inputs)?,
            when: step
                .when
                .as_deref()
                .map(Condition::parse)
                .transpose()
                .map_err(in_step)?,
        })
    }

    /// Every reference of the step (params, inputs, `when`), in that order.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.params
            .values()
            .chain(self.inputs.values())
            .flat_map(Template::references)
            .chain(self.when.iter().flat_map(Condition::references))
    }

    /// The step's params for an attempt, rendered with [`Template::render`].
    pub fn render_params(
        &self,
        args: &Map<String, Value>,
        outputs: &HashMap<String, Map<String, Value>>,
    ) -> Result<BTreeMap<String, Value>> {
        render_all(&self.params, args, outputs)
    }

    /// The step's inputs for an attempt, rendered with [`Template::render`].
    pub fn render_inputs(
        &self,
        args: &Map<String, Value>,
        outputs: &HashMap<String, Map<String, Value>>,
    ) -> Result<BTreeMap<String, Value>> {
        render_all(&self.inputs, args, outputs)
    }
}

fn render_all(
    templates: &BTreeMap<String, Template>,
    args: &Map<String, Value>,
    outputs: &HashMap<String, Map<String, Value>>,
) -> Result<BTreeMap<String, Value>> {
    templates
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.render(args, outputs)?)))
        .collect()
}

/// A comma-separated list, or `none` when empty.
pub(super) fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.into_iter().collect();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

impl Dag {
    /// Checks `graph` and builds its DAG; the first problem found (in declaration order) is an
    /// [`Error::InvalidArgument`] naming the step at fault.
    pub fn build(graph: WorkflowGraph, check: &DagCheck) -> Result<Dag> {
        let steps = &graph.steps;
        let mut index = HashMap::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            if let Some(first) = index.insert(step.name.clone(), i) {
                return Err(Error::invalid(format!(
                    "duplicate step name `{}`: steps {} and {} share it; step names must be unique",
                    step.name,
                    first + 1,
                    i + 1
                )));
            }
        }
        let known_steps = || list(steps.iter().map(|s| s.name.as_str()));
        let params: BTreeSet<&str> = graph.params.iter().map(|p| p.name.as_str()).collect();

        let mut dag = DiGraph::<(), ()>::with_capacity(steps.len(), steps.len());
        for _ in steps {
            dag.add_node(());
        }
        let mut deps: Vec<usize> = Vec::new();
        let mut edges: Vec<(usize, usize)> = Vec::new();
        let mut nodes: Vec<StepNode> = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let name = &step.name;
            if let Some(policy) = step
                .retries
                .as_ref()
                .filter(|p| p.limit > RetryPolicy::MAX_LIMIT)
            {
                return Err(Error::invalid(format!(
                    "step `{name}` asks for {} retries; at most {} are allowed",
                    policy.limit,
                    RetryPolicy::MAX_LIMIT
                )));
            }
            if let Some(known) = &check.known_functions {
                // A `hub://` function is resolved from the hub when its step runs.
                if !known.contains(&step.function) && !step.function.starts_with("hub://") {
                    return Err(Error::invalid(format!(
                        "step `{name}` uses unknown function `{}`; project functions: {}",
                        step.function,
                        list(known.iter().map(String::as_str))
                    )));
                }
            }
            deps.clear();
            for after in &step.after {
                let &j = index.get(after).ok_or_else(|| {
                    Error::invalid(format!(
                        "step `{name}` runs after unknown step `{after}`; known steps: {}",
                        known_steps()
                    ))
                })?;
                deps.push(j);
            }
            let node = StepNode::parse(step)?;
            for reference in node.references() {
                match reference {
                    Reference::Arg(arg) => {
                        if !params.contains(arg.as_str()) {
                            return Err(Error::invalid_with_hint(
                                format!(
                                    "step `{name}` references unknown workflow argument `{arg}` \
                                     in `{reference}`; workflow arguments: {}",
                                    list(params.iter().copied())
                                ),
                                format!(
                                    "declare it: a parameter of the pipeline function, or \
                                     `params: [{{name: {arg}}}]` in a YAML workflow"
                                ),
                            ));
                        }
                    }
                    Reference::StepOutput { step: from, key } => {
                        let &j = index.get(from).ok_or_else(|| {
                            Error::invalid(format!(
                                "step `{name}` references unknown step `{from}` in \
                                 `{reference}`; known steps: {}",
                                known_steps()
                            ))
                        })?;
                        let declared = &steps[j].outputs;
                        if !declared.iter().any(|k| k == key) {
                            return Err(Error::invalid(format!(
                                "step `{name}` references output `{key}` of step `{from}`, which \
                                 does not declare it; `{from}` declares outputs: {}",
                                list(declared.iter().map(String::as_str))
                            )));
                        }
                        deps.push(j);
                    }
                }
            }
            deps.sort_unstable();
            deps.dedup();
            edges.extend(deps.iter().map(|&j| (j, i)));
            nodes.push(node);
        }
        // petgraph walks a node's edges newest first; adding them in reverse makes
        // `predecessors` and `successors` come out in declaration order.
        for &(j, i) in edges.iter().rev() {
            dag.add_edge(NodeIndex::new(j), NodeIndex::new(i), ());
        }
        let order = topological_order(&dag, steps)?;
        Ok(Dag {
            workflow: graph,
            graph: dag,
            order,
            index,
            nodes,
        })
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.workflow.name
    }

    /// The workflow's parameters.
    pub fn params(&self) -> &[WorkflowParam] {
        &self.workflow.params
    }

    /// The graph this DAG was built from.
    pub fn workflow(&self) -> &WorkflowGraph {
        &self.workflow
    }

    /// The dependency graph; node `i` is step `i`, an edge `a -> b` means `b` waits for `a`.
    pub fn graph(&self) -> &DiGraph<(), ()> {
        &self.graph
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.workflow.steps.len()
    }

    /// Whether the workflow has no steps.
    pub fn is_empty(&self) -> bool {
        self.workflow.steps.is_empty()
    }

    /// The steps in declaration order (index `i` is step `i`).
    pub fn steps(&self) -> &[Step] {
        &self.workflow.steps
    }

    /// Step `i`. Panics when `i >= len()`.
    pub fn step(&self, i: usize) -> &Step {
        &self.workflow.steps[i]
    }

    /// Step `i`'s parsed params, inputs and condition. Panics when `i >= len()`.
    pub fn node(&self, i: usize) -> &StepNode {
        &self.nodes[i]
    }

    /// The index of the step called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The step called `name`.
    pub fn step_by_name(&self, name: &str) -> Option<&Step> {
        self.index_of(name).map(|i| self.step(i))
    }

    /// Step indexes in a topological order; among steps ready at the same time, the one declared
    /// first comes first.
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// The steps `i` waits for, each once, in declaration order.
    pub fn predecessors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
            .map(NodeIndex::index)
    }

    /// The steps that wait for `i`, each once, in declaration order.
    pub fn successors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), Direction::Outgoing)
            .map(NodeIndex::index)
    }
}

/// Kahn's algorithm, picking the earliest-declared ready step first; a leftover means a cycle,
/// reported with its path.
fn topological_order(graph: &DiGraph<(), ()>, steps: &[Step]) -> Result<Vec<usize>> {
    let n = steps.len();
    let mut indegree: Vec<usize> = (0..n)
        .map(|i| {
            graph
                .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for j in graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
            let j = j.index();
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every leftover step has a leftover predecessor, so walking predecessors from any of them
    // must revisit a step: that loop is a cycle.
    let start = (0..n).find(|&i| indegree[i] > 0).expect("a leftover step");
    let mut seen_at: HashMap<usize, usize> = HashMap::new();
    let mut walk = vec![start];
    let mut current = start;
    seen_at.insert(start, 0);
    let cycle_start = loop {
        current = graph
            .neighbors_directed(NodeIndex::new(current), Direction::Incoming)
            .map(NodeIndex::index)
            .filter(|&p| indegree[p] > 0)
            .min()
            .expect("a leftover step has a leftover predecessor");
        if let Some(&at) = seen_at.get(&current) {
            break at;
        }
        seen_at.insert(current, walk.len());
        walk.push(current);
    };
    // `walk` follows edges backwards; reverse it and start at the earliest-declared step.
    let mut cycle: Vec<usize> = walk[cycle_start..].iter().rev().copied().collect();
    let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
    cycle.rotate_left(first);
    cycle.push(cycle[0]);
    let path: Vec<&str> = cycle.iter().map(|&i| steps[i].name.as_str()).collect();
    Err(Error::invalid(format!(
        "step `{}` is part of a cycle: {}",
        steps[cycle[0]].name,
        path.join(" -> ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(yaml: &str) -> WorkflowGraph {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn err(yaml: &str) -> String {
        Dag::build(graph(yaml), &DagCheck::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn edges_come_from_after_and_references() {
        let dag = Dag::build(
            graph(
                r#"
name: w
params: [{name: p1, default: 5}]
steps:
  - {name: c, function: f, after: [b], when: "{{steps.a.outputs.n}} > 1"}
  - {name: a, function: f, outputs: [n, t]}
  - {name: b, function: f, params: {x: "{{steps.a.outputs.t}}", y: "{{args.p1}}"}, after: [a]}
"#,
            ),
            &DagCheck {
                known_functions: Some(["f".to_owned()].into()),
            },
        )
        .unwrap();
        let names = |it: Vec<usize>| -> Vec<String> {
            it.into_iter().map(|i| dag.step(i).name.clone()).collect()
        };
        let order: Vec<&str> = dag
            .topological_order()
            .iter()
            .map(|&i| dag.step(i).name.as_str())
            .collect();
        assert_eq!(order, ["a", "b", "c"]);
        let c = dag.index_of("c").unwrap();
        let a = dag.index_of("a").unwrap();
        let b = dag.index_of("b").unwrap();
        assert_eq!(names(dag.predecessors(c).collect()), ["a", "b"]);
        assert_eq!(names(dag.successors(a).collect()), ["c", "b"]);
        // `after` plus a data reference to the same step is one edge.
        assert_eq!(dag.predecessors(b).count(), 1);
        assert_eq!(dag.graph().edge_count(), 3);
        assert_eq!(dag.step_by_name("b").unwrap().function, "f");
        assert_eq!(dag.len(), 3);
    }

    #[test]
    fn duplicate_names() {
        assert_eq!(
            err("{name: w, steps: [{name: a, function: f}, {name: b, function: f}, {name: a, function: f}]}"),
            "duplicate step name `a`: steps 1 and 3 share it; step names must be unique"
        );
    }

    #[test]
    fn unknown_after() {
        assert_eq!(
            err("{name: w, steps: [{name: a, function: f}, {name: b, function: f, after: [x]}]}"),
            "step `b` runs after unknown step `x`; known steps: a, b"
        );
    }

    #[test]
    fn unknown_referenced_step() {
        assert_eq!(
            err(
                r#"{name: w, steps: [{name: a, function: f, params: {p: "{{steps.x.outputs.k}}"}}]}"#
            ),
            "step `a` references unknown step `x` in `{{steps.x.outputs.k}}`; known steps: a"
        );
    }

    #[test]
    fn undeclared_output() {
        assert_eq!(
            err(
                r#"{name: w, steps: [{name: a, function: f, outputs: [n, t]}, {name: b, function: f, inputs: {p: "s3://{{steps.a.outputs.k}}"}}]}"#
            ),
            "step `b` references output `k` of step `a`, which does not declare it; `a` declares \
             outputs: n, t"
        );
        assert_eq!(
            err(
                r#"{name: w, steps: [{name: a, function: f}, {name: b, function: f, when: "{{steps.a.outputs.k}} > 1"}]}"#
            ),
            "step `b` references output `k` of step `a`, which does not declare it; `a` declares \
             outputs: none"
        );
    }

    #[test]
    fn unknown_arg() {
        assert_eq!(
            err(
                r#"{name: w, params: [{name: p1}, {name: p2}], steps: [{name: a, function: f, params: {p: ["{{args.zz}}"]}}]}"#
            ),
            "step `a` references unknown workflow argument `zz` in `{{args.zz}}`; workflow \
             arguments: p1, p2"
        );
    }

    #[test]
    fn malformed_reference_and_condition() {
        assert_eq!(
            err(r#"{name: w, steps: [{name: a, function: f, params: {p: "{{steps.b}}"}}]}"#),
            "step `a`: malformed reference `{{steps.b}}`; expected `{{args.NAME}}` or \
             `{{steps.STEP.outputs.KEY}}`"
        );
        assert_eq!(
            err(r#"{name: w, steps: [{name: a, function: f, when: "yes"}]}"#),
            "step `a`: invalid condition `yes`: no comparison operator; expected `LHS OP RHS` \
             with OP one of == != < <= > >="
        );
    }

    #[test]
    fn unknown_function_lists_known_ones() {
        let e = Dag::build(
            graph("{name: w, steps: [{name: a, function: f}, {name: b, function: g}]}"),
            &DagCheck {
                known_functions: Some(["f".to_owned(), "h".to_owned()].into()),
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "step `b` uses unknown function `g`; project functions: f, h"
        );
    }

    #[test]
    fn cycles_report_their_path() {
        assert_eq!(
            err("{name: w, steps: [{name: x, function: f}, {name: a, function: f, after: [c]}, {name: b, function: f, after: [a, x]}, {name: c, function: f, after: [b]}]}"),
            "step `a` is part of a cycle: a -> b -> c -> a"
        );
        assert_eq!(
            err("{name: w, steps: [{name: a, function: f, after: [a]}]}"),
            "step `a` is part of a cycle: a -> a"
        );
        // A data edge closes the loop too.
        assert_eq!(
            err(
                r#"{name: w, steps: [{name: a, function: f, outputs: [o], after: [b]}, {name: b, function: f, outputs: [o], params: {p: "{{steps.a.outputs.o}}"}}]}"#
            ),
            "step `a` is part of a cycle: a -> b -> a"
        );
    }

    #[test]
    fn a_retry_limit_above_the_cap_is_refused() {
        assert_eq!(
            err("{name: w, steps: [{name: a, function: f, retries: {limit: 101}}]}"),
            "step `a` asks for 101 retries; at most 100 are allowed"
        );
        assert!(Dag::build(
            graph("{name: w, steps: [{name: a, function: f, retries: {limit: 100}}]}"),
            &DagCheck::default()
        )
        .is_ok());
    }

    #[test]
    fn long_chain_builds_without_recursion() {
        let steps: Vec<Step> = (0..20_000)
            .map(|i| {
                let mut s: Step =
                    serde_yaml::from_str(&format!("{{name: s{i}, function: f}}")).unwrap();
                if i > 0 {
                    s.after = vec![format!("s{}", i - 1)];
                }
                s
            })
            .collect();
        let dag = Dag::build(
            WorkflowGraph {
                name: "w".into(),
                params: vec![],
                steps,
            },
            &DagCheck::default(),
        )
        .unwrap();
        assert_eq!(dag.topological_order()[19_999], 19_999);
    }

    #[test]
    fn nodes_hold_parsed_values_and_conjunctions_add_edges() {
        let dag = Dag::build(
            graph(
                r#"
name: w
params: [{name: p1, default: 5}]
steps:
  - {name: a, function: f, outputs: [n]}
  - {name: b, function: f, outputs: [ok]}
  - name: c
    function: f
    params: {x: "{{steps.a.outputs.n}}", y: "n={{args.p1}}", z: 3}
    inputs: {t: ["{{steps.b.outputs.ok}}"]}
    when: "{{steps.a.outputs.n}} > {{args.p1}} and {{steps.b.outputs.ok}} == true"
"#,
            ),
            &DagCheck::default(),
        )
        .unwrap();
        let c = dag.index_of("c").unwrap();
        let node = dag.node(c);
        assert!(matches!(node.params["x"], Template::Ref(_)));
        assert!(matches!(node.params["y"], Template::Text(_)));
        assert!(matches!(node.params["z"], Template::Literal(_)));
        assert!(matches!(node.inputs["t"], Template::Array(_)));
        let when = node.when.as_ref().unwrap();
        assert_eq!(when.comparisons().len(), 2);
        assert_eq!(node.references().count(), 6);
        assert_eq!(dag.predecessors(c).count(), 2);
        let args = serde_json::json!({"p1": 1}).as_object().unwrap().clone();
        let outputs: HashMap<String, Map<String, Value>> = [
            ("a".to_owned(), serde_json::json!({"n": 2})),
            ("b".to_owned(), serde_json::json!({"ok": true})),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.as_object().unwrap().clone()))
        .collect();
        assert!(when.evaluate(&args, &outputs).unwrap());
        assert_eq!(
            Value::Object(
                node.render_params(&args, &outputs)
                    .unwrap()
                    .into_iter()
                    .collect()
            ),
            serde_json::json!({"x": 2, "y": "n=1", "z": 3})
        );
        assert_eq!(
            node.render_inputs(&args, &outputs).unwrap()["t"],
            serde_json::json!([true])
        );
        // The second comparison's reference is checked too.
        assert_eq!(
            err(
                r#"{name: w, steps: [{name: a, function: f, outputs: [n]}, {name: b, function: f, when: "{{steps.a.outputs.n}} > 1 and {{steps.a.outputs.k}} == 2"}]}"#
            ),
            "step `b` references output `k` of step `a`, which does not declare it; `a` declares \
             outputs: n"
        );
    }
}
