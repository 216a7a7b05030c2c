//! The compiler: a checked [`Dag`] to a KFP v2 `PipelineSpec` (see the [module docs](super)).
//!
//! # Shape
//!
//! Each step `s` gets a task key (its name sanitised to `[a-z0-9-]`, unique), a component
//! `comp-<key>` and an executor `exec-<key>` running `baton runner --kfp ... --step <s>`. Step
//! values become component inputs, passed on the command line through KFP placeholders:
//!
//! | step value                      | task input                        | command argument               |
//! |---------------------------------|-----------------------------------|--------------------------------|
//! | a constant                      | `runtimeValue.constant`           | `--param` (STRING) / `--param-json` |
//! | `{{args.x}}`                    | `componentInputParameter: x`      | by `x`'s declared type         |
//! | `{{steps.s.outputs.k}}`         | `taskOutputParameter` of `s`      | `--param-json` (JSON text)     |
//! | text holding references         | one input per reference           | `--param-template`             |
//!
//! Step inputs (data URLs) follow the same rules with `--input`, `--input-json` and
//! `--input-template`, as component inputs named `input--<name>`. A `null` constant has no KFP
//! type and is written straight into the command (`--param-json k=null`).
//!
//! A hyper-parameter step passes its (constant) `hyperparams` and `hyper_param_options` as JSON
//! (`--hyperparams`, `--hyper-param-options`): the pod's runner runs the iterations and writes the
//! best iteration's outputs.
//!
//! A step's function overrides (MLRun's modifiers called in the pipeline) go into its container:
//! `set_env` variables into `env` (the ones baton needs win), `with_requests`/`with_limits` into
//! `resources` (`resourceCpuRequest`, `resourceMemoryLimit`, a GPU limit as the `accelerator`).
//! Node selection and mounts are refused: they belong to the kfp-kubernetes platform spec.
//!
//! A step with a `when` sits alone in a sub-DAG `comp-condition-N`, reached from the root through
//! a task `condition-N` whose inputs are `pipelinechannel--<arg>` and
//! `pipelinechannel--<step key>-<output>` (everything the step and its condition read) and whose
//! `triggerPolicy.condition` is CEL over those inputs. The sub-DAG re-exports the step's outputs,
//! so later steps read them from `condition-N`.
//!
//! # Conditions in CEL
//!
//! baton compares two operands as numbers when both read as numbers, else as text. In CEL the
//! types must be known when compiling, so a comparison is numeric (`double(..) > 0.7`) when one
//! side is a number literal or a numeric pipeline parameter; else it compares text. A step
//! output is the JSON text its step wrote (the string `yes` arrives as `"yes"`), so text
//! compared with a step output is compared in its JSON form (`== '"yes"'`).
//!
//! # Refused
//!
//! `build` and `deploy` steps, references inside lists or dicts (KFP passes whole values), a
//! `when` comparing a list or dict parameter, names that cannot sit in a KFP placeholder, a step
//! whose function is not in [`CompileOptions::functions`], and an empty workflow: each is an
//! [`Error::InvalidArgument`](crate::error::Error) naming the step or parameter.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::model::{FunctionEntry, FunctionOverrides};
use crate::workflow::condition::{CompareOp, Comparison, Literal, Operand};
use crate::workflow::refs::{Reference, Segment};
use crate::workflow::{Dag, StepAction, Template, WorkflowParam};

/// The only `schemaVersion` the KFP API server accepts.
pub const SCHEMA_VERSION: &str = "2.1.0";

/// The image of steps when nothing else names one.
pub const DEFAULT_IMAGE: &str = "baton/runner:latest";

/// The variable naming the default step image.
pub const IMAGE_ENV: &str = "BATON_KFP_IMAGE";

/// What a compilation needs beyond the DAG.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileOptions {
    /// The project the steps record their runs in (`--project` of each step's command).
    pub project: String,
    /// Per function name (as steps name them): the function's definition. Its `image` wins over
    /// `default_image`.
    pub functions: BTreeMap<String, FunctionEntry>,
    /// `--image`, else the configured default ([`super::configured_image`]).
    pub default_image: String,
    /// Extra labels for the runs the steps record, passed to each runner as `--label k=v` (the
    /// runner adds `workflow` and `workflow-step` itself).
    pub labels: BTreeMap<String, String>,
    /// Environment variables of every step's container: `BATON_API`, the server the steps
    /// record their runs on and pull their code from (a token belongs in a Kubernetes secret,
    /// never in the spec).
    pub env: BTreeMap<String, String>,
}

impl CompileOptions {
    /// Options for `project` with no functions and no labels, steps running in `default_image`.
    pub fn new(project: impl Into<String>, default_image: impl Into<String>) -> CompileOptions {
        CompileOptions {
            project: project.into(),
            functions: BTreeMap::new(),
            default_image: default_image.into(),
            labels: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }
}

/// Compiles `dag` into a KFP v2 `PipelineSpec` (JSON, keys sorted). Pure: no I/O.
pub fn compile(dag: &Dag, options: &CompileOptions) -> Result<Value> {
    Compiler::new(dag, options)?.compile()
}

/// The spec as a YAML document, with the comment header the KFP SDK writes.
pub fn to_yaml(spec: &Value) -> String {
    let name = spec
        .pointer("/pipelineInfo/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = serde_yaml::to_string(spec).unwrap_or_else(|e| format!("# unserialisable: {e}\n"));
    format!("# PIPELINE DEFINITION\n# Name: {name}\n{body}")
}

/// A KFP parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamType {
    String,
    Integer,
    Double,
    Boolean,
    List,
    Struct,
}

impl ParamType {
    fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "STRING",
            ParamType::Integer => "NUMBER_INTEGER",
            ParamType::Double => "NUMBER_DOUBLE",
            ParamType::Boolean => "BOOLEAN",
            ParamType::List => "LIST",
            ParamType::Struct => "STRUCT",
        }
    }

    /// The type of a declared kind (`int`, `Optional[float]`, `List[str]`, KFP's names...).
    fn of_kind(kind: &str) -> Option<ParamType> {
        let mut name = kind.trim();
        name = name.strip_prefix("typing.").unwrap_or(name);
        if let Some(inner) = name
            .strip_prefix("Optional[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            return ParamType::of_kind(inner);
        }
        if let Some(inner) = name
            .strip_suffix("| None")
            .or_else(|| name.strip_suffix("|None"))
        {
            return ParamType::of_kind(inner);
        }
        let base = name.split('[').next().unwrap_or(name).to_ascii_lowercase();
        Some(match base.trim() {
            "int" | "integer" => ParamType::Integer,
            "float" | "number" => ParamType::Double,
            "str" | "string" | "text" => ParamType::String,
            "bool" | "boolean" => ParamType::Boolean,
            "list" | "tuple" | "jsonarray" => ParamType::List,
            "dict" | "jsonobject" => ParamType::Struct,
            _ => return None,
        })
    }

    /// The type of a JSON value; `None` for `null`.
    fn of_value(value: &Value) -> Option<ParamType> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => ParamType::Boolean,
            Value::Number(n) if n.is_f64() => ParamType::Double,
            Value::Number(_) => ParamType::Integer,
            Value::String(_) => ParamType::String,
            Value::Array(_) => ParamType::List,
            Value::Object(_) => ParamType::Struct,
        })
    }

    /// The `--param`/`--param-json` flag suffix for a value of this type.
    fn is_text(self) -> bool {
        self == ParamType::String
    }

    fn is_numeric(self) -> bool {
        matches!(self, ParamType::Integer | ParamType::Double)
    }

    /// `value` as a default of this type, the way the SDK writes it (integers as floats); `None`
    /// when it does not fit.
    fn default_value(self, value: &Value) -> Option<Value> {
        match (self, value) {
            (ParamType::Integer, Value::Number(n)) if !n.is_f64() => n.as_f64().map(|f| json!(f)),
            (ParamType::Integer, Value::Number(n)) => {
                n.as_f64().filter(|f| f.fract() == 0.0).map(|f| json!(f))
            }
            (ParamType::Integer, Value::String(s)) => {
                s.trim().parse::<i64>().ok().map(|i| json!(i as f64))
            }
            (ParamType::Double, Value::Number(n)) => n.as_f64().map(|f| json!(f)),
            (ParamType::Double, Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| json!(f)),
            (ParamType::String, Value::String(_)) => Some(value.clone()),
            (ParamType::String, other) => Some(Value::String(other.to_string())),
            (ParamType::Boolean, Value::Bool(_)) => Some(value.clone()),
            (ParamType::Boolean, Value::String(s)) => match s.trim() {
                "true" | "True" => Some(Value::Bool(true)),
                "false" | "False" => Some(Value::Bool(false)),
                _ => None,
            },
            (ParamType::List, Value::Array(_)) | (ParamType::Struct, Value::Object(_)) => {
                Some(value.clone())
            }
            _ => None,
        }
    }
}

/// Where a component input's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// A constant written on the task.
    Constant(String),
    /// A pipeline parameter.
    Arg(String),
    /// Output `key` of step `step`.
    Output { step: usize, key: String },
}

/// One input of a step's component.
struct StepInput {
    ty: ParamType,
    source: Source,
    constant: Option<Value>,
}

/// A step's component inputs and command.
struct StepParts {
    inputs: BTreeMap<String, StepInput>,
    command: Vec<String>,
}

struct Compiler<'a> {
    dag: &'a Dag,
    options: &'a CompileOptions,
    /// The type of each pipeline parameter.
    params: BTreeMap<&'a str, ParamType>,
    /// Step `i`'s task key.
    keys: Vec<String>,
    /// Step `i`'s condition number (its root task is `condition-N`), if it has a `when`.
    conditions: Vec<Option<usize>>,
}

/// A name that can sit inside `{{$.inputs.parameters['...']}}` and a CEL string.
fn check_name(what: &str, name: &str) -> Result<()> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "'\"[]{}\\".contains(c);
    if name.is_empty() || name.contains(bad) {
        return Err(Error::invalid(format!(
            "{what} `{name}` cannot be compiled for KFP: names must be non-empty, without \
             whitespace, quotes, brackets, braces or backslashes"
        )));
    }
    Ok(())
}

/// `text` lower-cased with every run of other characters turned into one `-`, trimmed of `-`.
fn sanitise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// A CEL string literal.
fn cel_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A CEL double literal.
fn cel_double(value: f64, text: &str) -> String {
    if value.is_finite() {
        let s = format!("{value:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        format!("double({})", cel_str(text.trim()))
    }
}

/// A placeholder for the value of component input `name`.
fn input_placeholder(name: &str) -> String {
    format!("{{{{$.inputs.parameters['{name}']}}}}")
}

/// The protobuf `Duration` JSON form.
fn duration_text(d: std::time::Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
    }
}

/// What an operand of a condition is, for choosing how to compare it in CEL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OperandKind {
    /// A number literal, or text that reads as one.
    NumberLiteral,
    /// A text literal.
    TextLiteral,
    /// `true` / `false`.
    BoolLiteral,
    /// `null`.
    NullLiteral,
    /// A pipeline parameter of this type.
    Param(ParamType),
    /// A step output: JSON text.
    Output,
    /// Text holding references.
    Text,
}

impl<'a> Compiler<'a> {
    fn new(dag: &'a Dag, options: &'a CompileOptions) -> Result<Compiler<'a>> {
        if dag.is_empty() {
            return Err(Error::invalid(format!(
                "workflow `{}` has no steps; a KFP pipeline needs at least one task",
                dag.name()
            )));
        }
        let mut params = BTreeMap::new();
        for param in dag.params() {
            check_name("workflow parameter", &param.name)?;
            params.insert(param.name.as_str(), param_type(param));
        }
        let mut used = BTreeSet::new();
        let mut keys = Vec::with_capacity(dag.len());
        for step in dag.steps() {
            let base = match sanitise(&step.name) {
                s if s.is_empty() => "step".to_owned(),
                s => s,
            };
            let mut key = base.clone();
            let mut n = 2;
            while used.contains(&key) {
                key = format!("{base}-{n}");
                n += 1;
            }
            used.insert(key.clone());
            keys.push(key);
        }
        let mut next = 1;
        let conditions = dag
            .steps()
            .iter()
            .map(|step| {
                step.when.as_ref().map(|_| {
                    while used.contains(&format!("condition-{next}")) {
                        next += 1;
                    }
                    next += 1;
                    next - 1
                })
            })
            .collect();
        Ok(Compiler {
            dag,
            options,
            params,
            keys,
            conditions,
        })
    }

    /// The key of step `i`'s task in the root DAG: its own, or its condition's.
    fn outer_key(&self, i: usize) -> String {
        match self.conditions[i] {
            Some(n) => format!("condition-{n}"),
            None => self.keys[i].clone(),
        }
    }

    fn compile(&self) -> Result<Value> {
        let mut components = Map::new();
        let mut executors = Map::new();
        let mut root_tasks = Map::new();
        for i in 0..self.dag.len() {
            let step = self.dag.step(i);
            let in_step = |e: Error| Error::invalid(format!("step `{}`: {e}", step.name));
            if step.action != StepAction::Run {
                let action = serde_json::to_value(step.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                return Err(Error::invalid_with_hint(
                    format!(
                        "step `{}` is a `{action}` step, which the kfp engine cannot run",
                        step.name
                    ),
                    "build or deploy the function before the run (`baton build`), and keep \
                     only `run` steps in a workflow for kfp",
                ));
            }
            for key in &step.outputs {
                check_name("output", key).map_err(in_step)?;
            }
            let key = &self.keys[i];
            let function = self.function(i)?;
            let parts = self.step_parts(i, function).map_err(in_step)?;
            let mut component = Map::new();
            component.insert("executorLabel".into(), json!(format!("exec-{key}")));
            if let Some(defs) = input_definitions(
                parts
                    .inputs
                    .iter()
                    .map(|(name, input)| (name.clone(), input.ty, false)),
            ) {
                component.insert("inputDefinitions".into(), defs);
            }
            if let Some(defs) = self.output_definitions(i) {
                component.insert("outputDefinitions".into(), defs);
            }
            components.insert(format!("comp-{key}"), Value::Object(component));
            let image = function
                .image
                .clone()
                .filter(|image| !image.trim().is_empty())
                .unwrap_or_else(|| self.options.default_image.clone());
            // The step's own variables (`set_env`), then the ones every step needs, which win.
            let mut env = step.overrides.env.clone();
            env.extend(self.options.env.clone());
            let mut executor = container_json(image, parts.command.clone(), &env);
            if let Some(resources) = container_resources(&step.overrides).map_err(in_step)? {
                executor["container"]["resources"] = resources;
            }
            executors.insert(format!("exec-{key}"), executor);

            let mut task = Map::new();
            task.insert(
                "componentRef".into(),
                json!({"name": format!("comp-{key}")}),
            );
            task.insert("taskInfo".into(), json!({"name": step.name}));
            if let Some(policy) = step.retries.as_ref().filter(|p| p.limit > 0) {
                task.insert(
                    "retryPolicy".into(),
                    json!({
                        "maxRetryCount": policy.limit,
                        "backoffDuration": duration_text(policy.backoff),
                        "backoffFactor": 1.0,
                    }),
                );
            }
            let deps: BTreeSet<String> = self
                .dag
                .predecessors(i)
                .map(|j| self.outer_key(j))
                .collect();
            match self.conditions[i] {
                None => {
                    let inputs = self.task_inputs(&parts.inputs, |source| match source {
                        Source::Arg(name) => json!({"componentInputParameter": name}),
                        Source::Output { step, key } => self.output_ref(*step, key),
                        Source::Constant(_) => unreachable!("constants are handled before"),
                    });
                    if let Some(inputs) = inputs {
                        task.insert("inputs".into(), inputs);
                    }
                    if !deps.is_empty() {
                        task.insert("dependentTasks".into(), json!(deps));
                    }
                    root_tasks.insert(key.clone(), Value::Object(task));
                }
                Some(n) => {
                    let (component, outer) = self
                        .condition(i, n, &parts, Value::Object(task), deps)
                        .map_err(in_step)?;
                    components.insert(format!("comp-condition-{n}"), component);
                    root_tasks.insert(format!("condition-{n}"), outer);
                }
            }
        }
        let mut root = Map::new();
        root.insert("dag".into(), json!({"tasks": root_tasks}));
        let mut definitions = Map::new();
        for param in self.dag.params() {
            let ty = self.params[param.name.as_str()];
            let mut def = Map::new();
            def.insert("parameterType".into(), json!(ty.as_str()));
            match &param.default {
                None => {}
                Some(Value::Null) => {
                    def.insert("isOptional".into(), json!(true));
                }
                Some(value) => {
                    let default = ty.default_value(value).ok_or_else(|| {
                        Error::invalid(format!(
                            "workflow parameter `{}` is of type {} and its default `{value}` is \
                             not",
                            param.name,
                            ty.as_str()
                        ))
                    })?;
                    def.insert("defaultValue".into(), default);
                    def.insert("isOptional".into(), json!(true));
                }
            }
            definitions.insert(param.name.clone(), Value::Object(def));
        }
        if !definitions.is_empty() {
            root.insert(
                "inputDefinitions".into(),
                json!({"parameters": definitions}),
            );
        }
        let name = match sanitise(self.dag.name()) {
            s if s.is_empty() => "pipeline".to_owned(),
            s => s,
        };
        let spec = json!({
            "components": components,
            "deploymentSpec": {"executors": executors},
            "pipelineInfo": {
                "name": name,
                "description": format!(
                    "baton workflow `{}` of project `{}`",
                    self.dag.name(),
                    self.options.project
                ),
            },
            "root": root,
            "schemaVersion": SCHEMA_VERSION,
            "sdkVersion": concat!("baton-", env!("CARGO_PKG_VERSION")),
        });
        Ok(sorted(spec))
    }

    fn function(&self, i: usize) -> Result<&FunctionEntry> {
        let step = self.dag.step(i);
        self.options.functions.get(&step.function).ok_or_else(|| {
            Error::invalid(format!(
                "step `{}` uses function `{}`, which the compilation was not given; known \
                 functions: {}",
                step.name,
                step.function,
                list(self.options.functions.keys())
            ))
        })
    }

    fn output_definitions(&self, i: usize) -> Option<Value> {
        let outputs: Map<String, Value> = self
            .dag
            .step(i)
            .outputs
            .iter()
            .map(|k| (k.clone(), json!({"parameterType": "STRING"})))
            .collect();
        (!outputs.is_empty()).then(|| json!({"parameters": outputs}))
    }

    /// A `taskOutputParameter` reading output `key` of step `step` from the root DAG.
    fn output_ref(&self, step: usize, key: &str) -> Value {
        json!({"taskOutputParameter": {
            "producerTask": self.outer_key(step),
            "outputParameterKey": key,
        }})
    }

    /// A task's `inputs`, constants as `runtimeValue`, the rest through `reference`.
    fn task_inputs(
        &self,
        inputs: &BTreeMap<String, StepInput>,
        reference: impl Fn(&Source) -> Value,
    ) -> Option<Value> {
        let parameters: Map<String, Value> = inputs
            .iter()
            .map(|(name, input)| {
                let value = match &input.constant {
                    Some(constant) => json!({"runtimeValue": {"constant": constant}}),
                    None => reference(&input.source),
                };
                (name.clone(), value)
            })
            .collect();
        (!parameters.is_empty()).then(|| json!({"parameters": parameters}))
    }

    /// The type of a reference's value.
    fn reference_type(&self, reference: &Reference) -> ParamType {
        match reference {
            Reference::Arg(name) => self
                .params
                .get(name.as_str())
                .copied()
                .unwrap_or(ParamType::String),
            Reference::StepOutput { .. } => ParamType::String,
        }
    }

    fn source_of(&self, reference: &Reference) -> Source {
        match reference {
            Reference::Arg(name) => Source::Arg(name.clone()),
            Reference::StepOutput { step, key } => Source::Output {
                step: self
                    .dag
                    .index_of(step)
                    .expect("the Dag checked every reference"),
                key: key.clone(),
            },
        }
    }

    /// Step `i`'s component inputs and container command.
    fn step_parts(&self, i: usize, function: &FunctionEntry) -> Result<StepParts> {
        let step = self.dag.step(i);
        let node = self.dag.node(i);
        let function_json = serde_json::to_string(function)
            .map_err(|e| Error::internal_from("Failed to encode a function definition", e))?;
        let mut command: Vec<String> = [
            "baton",
            "runner",
            "--kfp",
            "--project",
            &self.options.project,
            "--workflow",
            "{{$.pipeline_job_uuid}}",
            "--step",
            &step.name,
            "--function",
            &function_json,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(handler) = &step.handler {
            command.extend(["--handler".to_owned(), handler.clone()]);
        }
        if let Some(timeout) = step.timeout {
            let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
            command.extend(["--timeout".to_owned(), secs.to_string()]);
        }
        for (k, v) in &self.options.labels {
            command.extend(["--label".to_owned(), format!("{k}={v}")]);
        }
        if !step.hyperparams.is_empty() {
            // Constants, checked when the Dag was built: the runner runs the iterations.
            command.extend([
                "--hyperparams".to_owned(),
                Value::Object(step.hyperparams.clone()).to_string(),
            ]);
            if let Some(options) = &step.hyper_param_options {
                let options = serde_json::to_string(options).map_err(|e| {
                    Error::internal_from("Failed to encode hyper-parameter options", e)
                })?;
                command.extend(["--hyper-param-options".to_owned(), options]);
            }
        }
        let mut inputs = BTreeMap::new();
        for (name, template) in &node.params {
            check_name("param", name)?;
            self.value_parts(name, name, "param", template, &mut inputs, &mut command)?;
        }
        for (name, template) in &node.inputs {
            check_name("input", name)?;
            let input = format!("input--{name}");
            self.value_parts(name, &input, "input", template, &mut inputs, &mut command)?;
        }
        for key in &step.outputs {
            command.extend([
                "--output".to_owned(),
                format!("{key}={{{{$.outputs.parameters['{key}'].output_file}}}}"),
            ]);
        }
        Ok(StepParts { inputs, command })
    }

    /// Adds one param or input: its component input(s) and its command argument.
    fn value_parts(
        &self,
        name: &str,
        input: &str,
        flag: &str,
        template: &Template,
        inputs: &mut BTreeMap<String, StepInput>,
        command: &mut Vec<String>,
    ) -> Result<()> {
        let mut declare = |input: String, ty: ParamType, source: Source, constant| {
            if inputs.contains_key(&input) {
                return Err(Error::invalid(format!(
                    "{flag} `{name}` needs component input `{input}`, which another value of \
                     the step already uses"
                )));
            }
            inputs.insert(
                input,
                StepInput {
                    ty,
                    source,
                    constant,
                },
            );
            Ok(())
        };
        let typed_flag = |ty: ParamType| {
            if ty.is_text() {
                format!("--{flag}")
            } else {
                format!("--{flag}-json")
            }
        };
        match template {
            Template::Literal(Value::Null) => {
                command.extend([format!("--{flag}-json"), format!("{name}=null")]);
            }
            Template::Literal(value) => {
                let ty = ParamType::of_value(value).expect("null is handled above");
                declare(
                    input.to_owned(),
                    ty,
                    Source::Constant(input.to_owned()),
                    Some(value.clone()),
                )?;
                command.extend([
                    typed_flag(ty),
                    format!("{name}={}", input_placeholder(input)),
                ]);
            }
            Template::Ref(reference) => {
                let ty = self.reference_type(reference);
                declare(input.to_owned(), ty, self.source_of(reference), None)?;
                let flag = match reference {
                    Reference::StepOutput { .. } => format!("--{flag}-json"),
                    Reference::Arg(_) => typed_flag(ty),
                };
                command.extend([flag, format!("{name}={}", input_placeholder(input))]);
            }
            Template::Text(segments) => {
                let mut text = String::new();
                let mut n = 0;
                for segment in segments {
                    match segment {
                        Segment::Text(t) => text.push_str(t),
                        Segment::Ref(reference) => {
                            n += 1;
                            let part = format!("{input}--{n}");
                            declare(
                                part.clone(),
                                self.reference_type(reference),
                                self.source_of(reference),
                                None,
                            )?;
                            text.push_str(&input_placeholder(&part));
                        }
                    }
                }
                command.extend([format!("--{flag}-template"), format!("{name}={text}")]);
            }
            Template::Array(_) | Template::Object(_) => {
                return Err(Error::invalid(format!(
                    "{flag} `{name}` holds references inside a list or a dict, which KFP cannot \
                     pass; reference whole values (`{{{{steps.s.outputs.k}}}}`) instead"
                )));
            }
        }
        Ok(())
    }

    /// The `pipelinechannel--` name of a reference inside a condition sub-DAG.
    fn channel(&self, reference: &Reference) -> String {
        match reference {
            Reference::Arg(name) => format!("pipelinechannel--{name}"),
            Reference::StepOutput { step, key } => {
                let i = self.dag.index_of(step).expect("the Dag checked it");
                format!("pipelinechannel--{}-{key}", self.keys[i])
            }
        }
    }

    /// Step `i`'s condition sub-DAG component `comp-condition-N` and its root task.
    fn condition(
        &self,
        i: usize,
        n: usize,
        parts: &StepParts,
        mut inner: Value,
        deps: BTreeSet<String>,
    ) -> Result<(Value, Value)> {
        let node = self.dag.node(i);
        let when = node.when.as_ref().expect("a condition number means a when");
        // Every reference the step and its condition read, by channel name.
        let mut channels: BTreeMap<String, (ParamType, Source)> = BTreeMap::new();
        let mut sources: BTreeMap<Source, String> = BTreeMap::new();
        for reference in node.references() {
            let source = self.source_of(reference);
            if sources.contains_key(&source) {
                continue;
            }
            let base = self.channel(reference);
            let mut name = base.clone();
            let mut k = 2;
            while channels.contains_key(&name) {
                name = format!("{base}-{k}");
                k += 1;
            }
            channels.insert(
                name.clone(),
                (self.reference_type(reference), source.clone()),
            );
            sources.insert(source, name);
        }
        if let Some(inputs) = self.task_inputs(
            &parts.inputs,
            |source| json!({"componentInputParameter": sources[source]}),
        ) {
            inner["inputs"] = inputs;
        }
        let key = &self.keys[i];
        let mut component = Map::new();
        let mut dag = Map::new();
        dag.insert("tasks".into(), json!({ key.clone(): inner }));
        let outputs: Map<String, Value> = self
            .dag
            .step(i)
            .outputs
            .iter()
            .map(|k| {
                let from = json!({"producerSubtask": key, "outputParameterKey": k});
                (k.clone(), json!({"valueFromParameter": from}))
            })
            .collect();
        if !outputs.is_empty() {
            dag.insert("outputs".into(), json!({"parameters": outputs}));
        }
        component.insert("dag".into(), Value::Object(dag));
        if let Some(defs) = input_definitions(
            channels
                .iter()
                .map(|(name, (ty, _))| (name.clone(), *ty, false)),
        ) {
            component.insert("inputDefinitions".into(), defs);
        }
        if let Some(defs) = self.output_definitions(i) {
            component.insert("outputDefinitions".into(), defs);
        }

        let mut cel = Vec::new();
        for comparison in when.comparisons() {
            cel.push(self.comparison_cel(comparison, &sources)?);
        }
        let condition = match cel.as_slice() {
            [one] => one.clone(),
            many => many
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" && "),
        };
        let inputs: Map<String, Value> = channels
            .iter()
            .map(|(name, (_, source))| {
                let value = match source {
                    Source::Arg(arg) => json!({"componentInputParameter": arg}),
                    Source::Output { step, key } => self.output_ref(*step, key),
                    Source::Constant(_) => unreachable!("channels are references"),
                };
                (name.clone(), value)
            })
            .collect();
        let mut outer = Map::new();
        outer.insert(
            "componentRef".into(),
            json!({"name": format!("comp-condition-{n}")}),
        );
        outer.insert("taskInfo".into(), json!({"name": format!("condition-{n}")}));
        outer.insert("triggerPolicy".into(), json!({"condition": condition}));
        if !inputs.is_empty() {
            outer.insert("inputs".into(), json!({"parameters": inputs}));
        }
        if !deps.is_empty() {
            outer.insert("dependentTasks".into(), json!(deps));
        }
        Ok((Value::Object(component), Value::Object(outer)))
    }

    fn operand_kind(&self, operand: &Operand) -> OperandKind {
        match operand {
            Operand::Ref(reference @ Reference::Arg(_)) => {
                OperandKind::Param(self.reference_type(reference))
            }
            Operand::Ref(Reference::StepOutput { .. }) => OperandKind::Output,
            Operand::Text(_) => OperandKind::Text,
            Operand::Literal(Literal::Null) => OperandKind::NullLiteral,
            Operand::Literal(Literal::Bool(_)) => OperandKind::BoolLiteral,
            Operand::Literal(Literal::Number { .. }) => OperandKind::NumberLiteral,
            Operand::Literal(Literal::String { number, .. }) => {
                if number.is_some() {
                    OperandKind::NumberLiteral
                } else {
                    OperandKind::TextLiteral
                }
            }
        }
    }

    /// One comparison in CEL over the condition task's inputs (see the module docs).
    fn comparison_cel(
        &self,
        comparison: &Comparison,
        channels: &BTreeMap<Source, String>,
    ) -> Result<String> {
        let value = |reference: &Reference| {
            format!(
                "inputs.parameter_values[{}]",
                cel_str(&channels[&self.source_of(reference)])
            )
        };
        let sides = [&comparison.lhs, &comparison.rhs];
        let kinds = sides.map(|s| self.operand_kind(s));
        for kind in kinds {
            if let OperandKind::Param(ty @ (ParamType::List | ParamType::Struct)) = kind {
                return Err(Error::invalid(format!(
                    "its condition compares a {} parameter, which KFP cannot compare",
                    ty.as_str()
                )));
            }
        }
        let text_expr = |segments: &[Segment]| -> String {
            segments
                .iter()
                .map(|segment| match segment {
                    Segment::Text(t) => cel_str(t),
                    Segment::Ref(r) => match self.reference_type(r) {
                        ParamType::String => value(r),
                        _ => format!("string({})", value(r)),
                    },
                })
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let numberish = |k: OperandKind| {
            matches!(k, OperandKind::NumberLiteral)
                || matches!(k, OperandKind::Param(t) if t.is_numeric())
        };
        let not_numeric = |k: OperandKind| {
            matches!(
                k,
                OperandKind::BoolLiteral
                    | OperandKind::NullLiteral
                    | OperandKind::Param(ParamType::Boolean)
            )
        };
        let numeric = kinds.iter().any(|&k| numberish(k)) && !kinds.iter().any(|&k| not_numeric(k));
        let op = comparison.op;
        let exprs: Vec<String> = if numeric {
            sides
                .iter()
                .map(|side| match side {
                    Operand::Literal(
                        literal @ (Literal::Number { .. } | Literal::String { .. }),
                    ) if literal.number().is_some() => {
                        cel_double(literal.number().unwrap_or_default(), literal.text())
                    }
                    Operand::Literal(literal) => format!("double({})", cel_str(literal.text())),
                    Operand::Ref(r) => format!("double({})", value(r)),
                    Operand::Text(segments) => format!("double({})", text_expr(segments)),
                })
                .collect()
        } else if kinds.contains(&OperandKind::Output) {
            // Compare JSON texts: a step output is the JSON its step wrote.
            sides
                .iter()
                .zip(kinds)
                .map(|(side, kind)| match (side, kind) {
                    (Operand::Ref(r), OperandKind::Output) => value(r),
                    (Operand::Ref(r), OperandKind::Param(ParamType::String)) => {
                        format!("'\"' + {} + '\"'", value(r))
                    }
                    (Operand::Ref(r), _) => format!("string({})", value(r)),
                    (Operand::Literal(Literal::String { text, .. }), _) => {
                        cel_str(&Value::String(text.clone()).to_string())
                    }
                    (Operand::Literal(literal), _) => cel_str(literal.text()),
                    (Operand::Text(segments), _) => {
                        format!("'\"' + {} + '\"'", text_expr(segments))
                    }
                })
                .collect()
        } else if kinds.iter().all(|k| {
            matches!(
                k,
                OperandKind::BoolLiteral | OperandKind::Param(ParamType::Boolean)
            )
        }) || kinds.contains(&OperandKind::NullLiteral)
        {
            // Typed equality: `flag == true`, `name == null`.
            sides
                .iter()
                .map(|side| match side {
                    Operand::Ref(r) => value(r),
                    Operand::Literal(literal) => literal.text().to_owned(),
                    Operand::Text(segments) => text_expr(segments),
                })
                .collect()
        } else {
            // Text against text.
            sides
                .iter()
                .zip(kinds)
                .map(|(side, kind)| match (side, kind) {
                    (Operand::Ref(r), OperandKind::Param(ParamType::String)) => value(r),
                    (Operand::Ref(r), _) => format!("string({})", value(r)),
                    (Operand::Literal(literal), _) => cel_str(literal.text()),
                    (Operand::Text(segments), _) => text_expr(segments),
                })
                .collect()
        };
        let op = match op {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        };
        Ok(format!("{} {op} {}", exprs[0], exprs[1]))
    }
}

/// The KFP type of a pipeline parameter: its declared kind, else its default's type, else STRING.
fn param_type(param: &WorkflowParam) -> ParamType {
    param
        .kind
        .as_deref()
        .and_then(ParamType::of_kind)
        .or_else(|| param.default.as_ref().and_then(ParamType::of_value))
        .unwrap_or(ParamType::String)
}

fn input_definitions(inputs: impl Iterator<Item = (String, ParamType, bool)>) -> Option<Value> {
    let parameters: Map<String, Value> = inputs
        .map(|(name, ty, optional)| {
            let mut def = json!({"parameterType": ty.as_str()});
            if optional {
                def["isOptional"] = json!(true);
            }
            (name, def)
        })
        .collect();
    (!parameters.is_empty()).then(|| json!({"parameters": parameters}))
}

fn list<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let items: Vec<&str> = items.map(String::as_str).collect();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// `value` with every object's keys sorted (serde_json keeps insertion order in this crate).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A step's container: its image, its command and, when there are any, its environment.
/// A step's `with_requests`/`with_limits` as the container's `resources` (KFP's string fields;
/// a GPU limit as its one accelerator). Node selection and mounts belong to the kfp-kubernetes
/// platform spec, which baton does not write: they are refused.
fn container_resources(overrides: &FunctionOverrides) -> Result<Option<Value>> {
    let refuse = |what: &str, modifier: &str| {
        Error::invalid_with_hint(
            format!(
                "{what} (`{modifier}`) cannot be expressed in a KFP pipeline spec (it belongs to                  the kfp-kubernetes platform spec, which baton does not write)"
            ),
            "drop the modifier for kfp runs, or run the workflow on the local engine",
        )
    };
    if !overrides.node_selector.is_empty() {
        return Err(refuse("node selection", "with_node_selection"));
    }
    if !overrides.mounts.is_empty() {
        return Err(refuse("a volume mount", "apply"));
    }
    let mut resources = Map::new();
    for (section, values) in [
        ("Request", &overrides.requests),
        ("Limit", &overrides.limits),
    ] {
        for (key, value) in values {
            match key.as_str() {
                "cpu" => resources.insert(format!("resourceCpu{section}"), json!(value)),
                "memory" => resources.insert(format!("resourceMemory{section}"), json!(value)),
                gpu if section == "Limit" && !resources.contains_key("accelerator") => resources
                    .insert(
                        "accelerator".into(),
                        json!({"resourceType": gpu, "resourceCount": value}),
                    ),
                other => {
                    return Err(Error::invalid(format!(
                        "the resource `{other}` cannot be expressed in a KFP pipeline spec (one \
                         GPU type as a limit, cpu and memory as requests or limits)"
                    )))
                }
            };
        }
    }
    Ok((!resources.is_empty()).then_some(Value::Object(resources)))
}

fn container_json(image: String, command: Vec<String>, env: &BTreeMap<String, String>) -> Value {
    let mut container = json!({"image": image, "command": command});
    if !env.is_empty() {
        let vars: Vec<Value> = env
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        container["env"] = Value::Array(vars);
    }
    json!({ "container": container })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{DagCheck, WorkflowGraph};

    fn dag(yaml: &str) -> Dag {
        let graph: WorkflowGraph = serde_yaml::from_str(yaml).unwrap();
        Dag::build(graph, &DagCheck::default()).unwrap()
    }

    fn options(dag: &Dag) -> CompileOptions {
        let mut options = CompileOptions::new("proj", "img:1");
        for step in dag.steps() {
            let entry: FunctionEntry =
                serde_json::from_value(json!({"name": step.function, "kind": "job"})).unwrap();
            options.functions.insert(step.function.clone(), entry);
        }
        options
    }

    fn spec(yaml: &str) -> Value {
        let dag = dag(yaml);
        compile(&dag, &options(&dag)).unwrap()
    }

    fn error(yaml: &str) -> String {
        let dag = dag(yaml);
        compile(&dag, &options(&dag)).unwrap_err().to_string()
    }

    fn command(spec: &Value, key: &str) -> Vec<String> {
        serde_json::from_value(
            spec["deploymentSpec"]["executors"][format!("exec-{key}")]["container"]["command"]
                .clone(),
        )
        .unwrap()
    }

    #[test]
    fn pipeline_parameters_are_typed_with_sdk_style_defaults() {
        let spec = spec(
            r#"
name: Typed Params_X
params:
  - {name: i, type: int, default: 3}
  - {name: f, type: float, default: 1}
  - {name: s, type: str, default: hi}
  - {name: b, type: bool, default: true}
  - {name: l, type: list, default: [1, 2]}
  - {name: d, type: dict, default: {k: v}}
  - {name: n, default: null}
  - {name: inferred, default: 0.5}
  - {name: required}
  - {name: opt, type: "Optional[int]", default: "7"}
steps:
  - {name: a, function: f, params: {x: "{{args.i}}"}}
"#,
        );
        assert_eq!(spec["pipelineInfo"]["name"], "typed-params-x");
        assert_eq!(spec["schemaVersion"], "2.1.0");
        let defs = &spec["root"]["inputDefinitions"]["parameters"];
        let expect = [
            ("i", "NUMBER_INTEGER", Some(json!(3.0))),
            ("f", "NUMBER_DOUBLE", Some(json!(1.0))),
            ("s", "STRING", Some(json!("hi"))),
            ("b", "BOOLEAN", Some(json!(true))),
            ("l", "LIST", Some(json!([1, 2]))),
            ("d", "STRUCT", Some(json!({"k": "v"}))),
            ("n", "STRING", None),
            ("inferred", "NUMBER_DOUBLE", Some(json!(0.5))),
            ("required", "STRING", None),
            ("opt", "NUMBER_INTEGER", Some(json!(7.0))),
        ];
        for (name, ty, default) in expect {
            assert_eq!(defs[name]["parameterType"], ty, "{name}");
            assert_eq!(defs[name].get("defaultValue"), default.as_ref(), "{name}");
        }
        assert_eq!(defs["n"]["isOptional"], true);
        assert!(defs["required"].get("isOptional").is_none());
        // The default 3 is written 3.0, as the SDK does.
        assert!(to_yaml(&spec).contains("defaultValue: 3.0"));
    }

    #[test]
    fn a_default_of_the_wrong_type_is_refused() {
        let err = error(
            "name: w\nparams: [{name: i, type: int, default: abc}]\nsteps: [{name: a, function: f}]",
        );
        assert!(
            err.contains("workflow parameter `i` is of type NUMBER_INTEGER"),
            "{err}"
        );
    }

    #[test]
    fn references_become_inputs_and_edges() {
        let spec = spec(
            r#"
name: refs
params: [{name: n, type: int, default: 1}, {name: who, default: bob}]
steps:
  - {name: A_1, function: f, outputs: [msg], params: {n: "{{args.n}}", c: 5, s: x, z: null}}
  - name: b
    function: g
    handler: mod:h
    params: {m: "{{steps.A_1.outputs.msg}}", t: "hi {{args.who}}/{{steps.A_1.outputs.msg}}"}
    inputs: {data: "{{steps.A_1.outputs.msg}}"}
    timeout: 90s
    retries: {limit: 2, backoff: 5s}
  - {name: c, function: f, after: [b]}
"#,
        );
        let tasks = &spec["root"]["dag"]["tasks"];
        let a = &tasks["a-1"];
        assert_eq!(a["taskInfo"]["name"], "A_1");
        assert_eq!(
            a["inputs"]["parameters"]["n"],
            json!({"componentInputParameter": "n"})
        );
        assert_eq!(
            a["inputs"]["parameters"]["c"],
            json!({"runtimeValue": {"constant": 5}})
        );
        assert!(a.get("cachingOptions").is_none(), "caching stays off");
        let comp_a = &spec["components"]["comp-a-1"];
        assert_eq!(
            comp_a["inputDefinitions"]["parameters"]["n"]["parameterType"],
            "NUMBER_INTEGER"
        );
        assert_eq!(
            comp_a["outputDefinitions"]["parameters"]["msg"]["parameterType"],
            "STRING"
        );
        let cmd = command(&spec, "a-1");
        assert_eq!(
            &cmd[..10],
            [
                "baton",
                "runner",
                "--kfp",
                "--project",
                "proj",
                "--workflow",
                "{{$.pipeline_job_uuid}}",
                "--step",
                "A_1",
                "--function"
            ]
        );
        let joined = cmd.join(" ");
        assert!(
            joined.contains("--param-json n={{$.inputs.parameters['n']}}"),
            "{joined}"
        );
        assert!(
            joined.contains("--param-json c={{$.inputs.parameters['c']}}"),
            "{joined}"
        );
        assert!(
            joined.contains("--param s={{$.inputs.parameters['s']}}"),
            "{joined}"
        );
        assert!(joined.contains("--param-json z=null"), "{joined}");
        assert!(joined.ends_with("--output msg={{$.outputs.parameters['msg'].output_file}}"));

        let b = &tasks["b"];
        assert_eq!(b["dependentTasks"], json!(["a-1"]));
        let out =
            json!({"taskOutputParameter": {"producerTask": "a-1", "outputParameterKey": "msg"}});
        assert_eq!(b["inputs"]["parameters"]["m"], out);
        assert_eq!(b["inputs"]["parameters"]["input--data"], out);
        assert_eq!(
            b["inputs"]["parameters"]["t--1"],
            json!({"componentInputParameter": "who"})
        );
        assert_eq!(b["inputs"]["parameters"]["t--2"], out);
        assert_eq!(
            b["retryPolicy"],
            json!({"maxRetryCount": 2, "backoffDuration": "5s", "backoffFactor": 1.0})
        );
        let joined = command(&spec, "b").join(" ");
        for part in [
            "--handler mod:h",
            "--timeout 90",
            "--param-json m={{$.inputs.parameters['m']}}",
            "--param-template t=hi {{$.inputs.parameters['t--1']}}/{{$.inputs.parameters['t--2']}}",
            "--input-json data={{$.inputs.parameters['input--data']}}",
        ] {
            assert!(joined.contains(part), "{part} in {joined}");
        }
        assert_eq!(tasks["c"]["dependentTasks"], json!(["b"]));
        assert_eq!(
            spec["deploymentSpec"]["executors"]["exec-c"]["container"]["image"],
            "img:1"
        );
    }

    #[test]
    fn task_keys_are_sanitised_and_unique() {
        let spec = spec(
            "name: k\nsteps: [{name: A b, function: f}, {name: a-b, function: f}, {name: '!!', function: f}]",
        );
        let tasks = spec["root"]["dag"]["tasks"].as_object().unwrap();
        let keys: Vec<&str> = tasks.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a-b", "a-b-2", "step"]);
        assert_eq!(tasks["a-b-2"]["taskInfo"]["name"], "a-b");
    }

    #[test]
    fn a_when_becomes_a_condition_sub_dag_with_cel() {
        let spec = spec(
            r#"
name: cond
params: [{name: threshold, type: float, default: 0.5}, {name: mode, default: fast}]
steps:
  - {name: a, function: f, outputs: [flag, score, msg]}
  - name: e
    function: f
    params: {text: "{{steps.a.outputs.msg}}", m: "{{args.mode}}"}
    outputs: [r]
    when: "{{steps.a.outputs.flag}} == 'yes' and {{steps.a.outputs.score}} > {{args.threshold}}"
  - {name: z, function: f, params: {r: "{{steps.e.outputs.r}}"}}
"#,
        );
        let tasks = &spec["root"]["dag"]["tasks"];
        let cond = &tasks["condition-1"];
        assert_eq!(cond["componentRef"]["name"], "comp-condition-1");
        assert_eq!(cond["dependentTasks"], json!(["a"]));
        assert_eq!(
            cond["triggerPolicy"]["condition"],
            "(inputs.parameter_values['pipelinechannel--a-flag'] == '\"yes\"') && \
             (double(inputs.parameter_values['pipelinechannel--a-score']) > \
             double(inputs.parameter_values['pipelinechannel--threshold']))"
        );
        let params = &cond["inputs"]["parameters"];
        assert_eq!(
            params["pipelinechannel--a-msg"],
            json!({"taskOutputParameter": {"producerTask": "a", "outputParameterKey": "msg"}})
        );
        assert_eq!(
            params["pipelinechannel--threshold"],
            json!({"componentInputParameter": "threshold"})
        );
        let comp = &spec["components"]["comp-condition-1"];
        assert_eq!(
            comp["inputDefinitions"]["parameters"]["pipelinechannel--threshold"]["parameterType"],
            "NUMBER_DOUBLE"
        );
        let inner = &comp["dag"]["tasks"]["e"];
        assert!(inner.get("dependentTasks").is_none());
        assert_eq!(
            inner["inputs"]["parameters"]["text"],
            json!({"componentInputParameter": "pipelinechannel--a-msg"})
        );
        assert_eq!(
            inner["inputs"]["parameters"]["m"],
            json!({"componentInputParameter": "pipelinechannel--mode"})
        );
        assert_eq!(
            comp["dag"]["outputs"]["parameters"]["r"],
            json!({"valueFromParameter": {"producerSubtask": "e", "outputParameterKey": "r"}})
        );
        // A later step reads the output from the condition task.
        assert_eq!(tasks["z"]["dependentTasks"], json!(["condition-1"]));
        assert_eq!(
            tasks["z"]["inputs"]["parameters"]["r"]["taskOutputParameter"]["producerTask"],
            "condition-1"
        );
    }

    fn cel(when: &str) -> String {
        let yaml = format!(
            r#"
name: c
params: [{{name: n, type: int, default: 1}}, {{name: s, default: x}}, {{name: b, type: bool, default: true}}, {{name: l, type: list, default: []}}]
steps:
  - {{name: a, function: f, outputs: [o]}}
  - {{name: e, function: f, when: "{when}"}}
"#
        );
        spec(&yaml)["root"]["dag"]["tasks"]["condition-1"]["triggerPolicy"]["condition"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn comparisons_translate_by_operand_types() {
        let v = |name: &str| format!("inputs.parameter_values['pipelinechannel--{name}']");
        assert_eq!(cel("{{args.n}} >= 3"), format!("double({}) >= 3.0", v("n")));
        assert_eq!(
            cel("{{args.s}} == \\\"it's\\\""),
            format!("{} == 'it\\'s'", v("s"))
        );
        assert_eq!(cel("{{args.b}} == true"), format!("{} == true", v("b")));
        assert_eq!(cel("{{args.s}} != null"), format!("{} != null", v("s")));
        assert_eq!(
            cel("{{steps.a.outputs.o}} < 1e3"),
            format!("double({}) < 1000.0", v("a-o"))
        );
        assert_eq!(
            cel("{{steps.a.outputs.o}} == true"),
            format!("{} == 'true'", v("a-o"))
        );
        assert_eq!(
            cel("{{steps.a.outputs.o}} == {{args.s}}"),
            format!("{} == '\"' + {} + '\"'", v("a-o"), v("s"))
        );
        assert_eq!(
            cel("'x-{{args.n}}' == x-1"),
            format!("'x-' + string({}) == 'x-1'", v("n"))
        );
        let err = error(
            "name: c\nparams: [{name: l, type: list, default: []}]\nsteps: [{name: e, function: f, when: '{{args.l}} == 1'}]",
        );
        assert!(err.contains("step `e`") && err.contains("LIST"), "{err}");
    }

    #[test]
    fn what_kfp_cannot_express_is_refused_naming_the_step() {
        let err = error("name: w\nsteps: [{name: img, function: f, action: build}]");
        assert!(err.contains("step `img` is a `build` step"), "{err}");
        let err = error(
            "name: w\nsteps: [{name: a, function: f, outputs: [o]}, {name: b, function: f, params: {l: ['{{steps.a.outputs.o}}']}}]",
        );
        assert!(
            err.contains("step `b`: param `l` holds references inside a list"),
            "{err}"
        );
        let err = error("name: w\nsteps: [{name: a, function: f, params: {\"it's\": 1}}]");
        assert!(
            err.contains("step `a`: param `it's` cannot be compiled"),
            "{err}"
        );
        let dag = dag("name: w\nsteps: [{name: a, function: nope}]");
        let err = compile(&dag, &CompileOptions::new("p", "i"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("step `a` uses function `nope`"), "{err}");
        for (overrides, want) in [
            (
                "{node_selector: {pool: gpu}}",
                "step `a`: node selection (`with_node_selection`) cannot be expressed in a KFP pipeline spec",
            ),
            (
                "{mounts: [{helper: auto_mount}]}",
                "step `a`: a volume mount (`apply`) cannot be expressed in a KFP pipeline spec",
            ),
            (
                "{limits: {nvidia.com/gpu: '1', amd.com/gpu: '1'}}",
                "step `a`: the resource `nvidia.com/gpu` cannot be expressed in a KFP pipeline spec",
            ),
        ] {
            let err = error(&format!(
                "name: w\nsteps: [{{name: a, function: f, overrides: {overrides}}}]"
            ));
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn overrides_go_into_the_container() {
        let spec = spec(
            "name: w\nsteps: [{name: a, function: f, overrides: {env: {MODE: fast}, requests: {cpu: '1'}, limits: {memory: 2Gi, nvidia.com/gpu: '2'}}}]",
        );
        let container = &spec["deploymentSpec"]["executors"]["exec-a"]["container"];
        assert_eq!(container["env"], json!([{"name": "MODE", "value": "fast"}]));
        assert_eq!(
            container["resources"],
            json!({
                "resourceCpuRequest": "1",
                "resourceMemoryLimit": "2Gi",
                "accelerator": {"resourceType": "nvidia.com/gpu", "resourceCount": "2"},
            })
        );
    }

    #[test]
    fn compiling_twice_gives_the_same_document() {
        let yaml = "name: w\nparams: [{name: z}, {name: a}]\nsteps: [{name: b, function: f, params: {y: 1, x: 2}}]";
        let one = to_yaml(&spec(yaml));
        assert_eq!(one, to_yaml(&spec(yaml)));
        assert!(
            one.starts_with("# PIPELINE DEFINITION\n# Name: w\ncomponents:"),
            "{one}"
        );
    }
}
