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

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::arg_types::ArgType;
use super::graph::{RetryPolicy, Step, WorkflowGraph, WorkflowParam};
use super::refs::{self, Reference};
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
}

/// A comma-separated list, or `none` when empty.
fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
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
                if !known.contains(&step.function) {
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
            for reference in step_references(step)? {
                match &reference {
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

/// Every reference of a step (params, inputs, `when`), with errors naming the step.
fn step_references(step: &Step) -> Result<Vec<Reference>> {
    let in_step = |e: Error| Error::invalid(format!("step `{}`: {e}", step.name));
    let mut out = Vec::new();
    for value in step.params.values().chain(step.inputs.values()) {
        out.extend(refs::try_references(value).map_err(in_step)?);
    }
    if let Some(when) = &step.when {
        refs::check_condition(when).map_err(in_step)?;
        out.extend(refs::try_references(&Value::String(when.clone())).map_err(in_step)?);
    }
    Ok(out)
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

/// One item of a workflow's `args_schema`, in MLRun's shape (`EntrypointParam`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgSchemaEntry {
    /// The argument's name.
    pub name: String,
    /// Its declared type (`str`, `int`, ...). Unlike MLRun, given values are coerced to it, or
    /// refused (see [`merge_args`]).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its default; an absent default inserts `null`, as MLRun does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// Whether the caller must pass it explicitly (even when it has a default).
    #[serde(default)]
    pub required: bool,
    /// Fields this type does not know (e.g. `choices`), kept for round trips.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The arguments a run starts with, following MLRun's `WorkflowSpec.merge_args`, with types
/// checked.
///
/// 1. Each `schema` entry contributes its default (`null` when it has none); a `required` entry
///    must be given by the caller even when it has a default (MLRun's rule).
/// 2. Each graph parameter not set by then contributes its default; one without a default is
///    required.
/// 3. `given` overrides everything and satisfies requirements. A given value is coerced to its
///    argument's declared type: the schema's `type`, else the parameter's, else the type of its
///    default (`-a threshold=1` is `1.0` for a float; `-a zip=01234` stays text for a str).
///
/// Errors are [`Error::InvalidArgument`]s: requirements left over ("Workflow argument(s) a,b are
/// required and were not specified"), a value that is not of its declared type (naming the
/// argument and the type), and a given argument that neither the schema nor the graph declares
/// (listing the declared ones). With `allow_extra` an undeclared argument is only a warning and
/// is passed on as given. MLRun checks none of these; a value of the wrong type silently turns a
/// condition into a string comparison.
pub fn merge_args(
    params: &[WorkflowParam],
    schema: &[ArgSchemaEntry],
    given: &Map<String, Value>,
    allow_extra: bool,
) -> Result<Map<String, Value>> {
    let mut merged = Map::new();
    let mut required: Vec<&str> = Vec::new();
    for entry in schema {
        if !merged.contains_key(&entry.name) {
            merged.insert(
                entry.name.clone(),
                entry.default.clone().unwrap_or(Value::Null),
            );
        }
        if entry.required {
            required.push(&entry.name);
        }
    }
    for param in params {
        if merged.contains_key(&param.name) {
            continue;
        }
        match &param.default {
            Some(default) => {
                merged.insert(param.name.clone(), default.clone());
            }
            None => required.push(&param.name),
        }
    }
    let mut undeclared: Vec<&str> = Vec::new();
    for (key, value) in given {
        let value = match declared_type(key, params, schema) {
            Some(Declared::Typed(ty)) => ty.coerce(key, value.clone())?,
            Some(Declared::Untyped) => value.clone(),
            None => {
                undeclared.push(key);
                value.clone()
            }
        };
        merged.insert(key.clone(), value);
    }
    if !undeclared.is_empty() {
        let names: Vec<String> = undeclared.iter().map(|k| format!("`{k}`")).collect();
        let (noun, verb) = if names.len() == 1 {
            ("argument", "is")
        } else {
            ("arguments", "are")
        };
        if allow_extra {
            tracing::warn!(
                "workflow {noun} {} {verb} not declared by the workflow; passed on as given \
                 (--allow-extra-args)",
                names.join(", ")
            );
        } else {
            let mut declared: Vec<&str> = Vec::new();
            for name in schema
                .iter()
                .map(|e| e.name.as_str())
                .chain(params.iter().map(|p| p.name.as_str()))
            {
                if !declared.contains(&name) {
                    declared.push(name);
                }
            }
            return Err(Error::invalid_with_hint(
                format!(
                    "workflow {noun} {} {verb} not declared; declared arguments: {}",
                    names.join(", "),
                    list(declared)
                ),
                "check the spelling; declare it (a parameter of the pipeline function, \
                 `params: [{name: ...}]` in a YAML workflow, or an `--args-schema` entry); or \
                 pass `--allow-extra-args` to run with it anyway",
            ));
        }
    }
    let mut missing: Vec<&str> = Vec::new();
    for name in required {
        if !given.contains_key(name) && !missing.contains(&name) {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "Workflow argument(s) {} are required and were not specified",
            missing.join(",")
        )));
    }
    Ok(merged)
}

/// Whether an argument is declared, and with what checkable type.
enum Declared {
    Typed(ArgType),
    Untyped,
}

/// The declared type of argument `name`: the schema's `type`, else the parameter's, else the type
/// of a default (the schema's first); `None` when neither the schema nor the graph declares it.
fn declared_type(
    name: &str,
    params: &[WorkflowParam],
    schema: &[ArgSchemaEntry],
) -> Option<Declared> {
    let entry = schema.iter().find(|e| e.name == name);
    let param = params.iter().find(|p| p.name == name);
    if entry.is_none() && param.is_none() {
        return None;
    }
    let explicit = entry
        .and_then(|e| e.kind.as_deref())
        .or_else(|| param.and_then(|p| p.kind.as_deref()));
    let ty = match explicit {
        Some(text) => ArgType::parse(text),
        None => entry
            .and_then(|e| e.default.as_ref())
            .or_else(|| param.and_then(|p| p.default.as_ref()))
            .and_then(ArgType::of),
    };
    Some(ty.map_or(Declared::Untyped, Declared::Typed))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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

    fn schema(v: Value) -> Vec<ArgSchemaEntry> {
        serde_json::from_value(v).unwrap()
    }

    fn params(v: Value) -> Vec<WorkflowParam> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn merge_args_follows_mlrun_rules() {
        let given = json!({"x": 1, "extra": "e"}).as_object().unwrap().clone();
        let merged = merge_args(
            &params(json!([{"name": "p1", "default": 5}, {"name": "s", "default": "graph"}, {"name": "x"}])),
            &schema(json!([
                {"name": "s", "type": "str", "default": "schema", "doc": "d", "choices": ["a"]},
                {"name": "n", "type": "int"},
                {"name": "x", "required": true}
            ])),
            &given,
            true,
        )
        .unwrap();
        assert_eq!(
            Value::Object(merged),
            json!({"s": "schema", "n": null, "x": 1, "p1": 5, "extra": "e"})
        );
    }

    #[test]
    fn merge_args_coerces_to_declared_types_and_refuses_the_rest() {
        let params = params(json!([
            {"name": "f", "type": "float", "default": 0.5},
            {"name": "by_default", "default": 3},
            {"name": "zip", "type": "Optional[str]"},
            {"name": "flags", "type": "List[str]", "default": []},
            {"name": "any"}
        ]));
        let schema = schema(json!([{"name": "on", "type": "Boolean", "default": false}]));
        let given = json!({"f": 1, "by_default": "7", "zip": 1234, "flags": "[\"a\"]", "on": "True", "any": "x"});
        let merged = merge_args(&params, &schema, given.as_object().unwrap(), false).unwrap();
        assert_eq!(
            Value::Object(merged),
            json!({"on": true, "f": 1.0, "by_default": 7, "zip": "1234", "flags": ["a"], "any": "x"})
        );
        let refuse = |given: Value| {
            merge_args(&params, &schema, given.as_object().unwrap(), false)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refuse(json!({"f": "abc", "any": 1})),
            "workflow argument `f` is declared `float`, and `abc` is not a number"
        );
        assert_eq!(
            refuse(json!({"by_default": 2.5, "any": 1})),
            "workflow argument `by_default` is declared `int`, and `2.5` is not an integer"
        );
        assert_eq!(
            refuse(json!({"on": 1, "any": 1})),
            "workflow argument `on` is declared `bool`, and `1` is not a boolean"
        );
        assert_eq!(
            refuse(json!({"nope": 1, "also": 2, "any": 1})),
            "workflow arguments `nope`, `also` are not declared; declared arguments: on, f, \
             by_default, zip, flags, any"
        );
    }

    #[test]
    fn merge_args_reports_missing_required() {
        let e = merge_args(
            &params(json!([{"name": "a"}, {"name": "p", "default": 1}])),
            &schema(json!([{"name": "b", "default": 3, "required": true}, {"name": "c", "required": false}])),
            &Map::new(),
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Workflow argument(s) b,a are required and were not specified"
        );
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument);
    }

    #[test]
    fn arg_schema_round_trips_unknown_fields() {
        let v = json!({"name": "s", "type": "str", "default": "x", "doc": "d", "required": true, "choices": ["x", "y"]});
        let entry: ArgSchemaEntry = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(entry.kind.as_deref(), Some("str"));
        assert_eq!(serde_json::to_value(&entry).unwrap(), v);
    }
}
