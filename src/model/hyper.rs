//! Hyper-parameter runs, as MLRun's local runtime does them: the options a run carries
//! (`spec.hyperparams`, `spec.hyper_param_options`) and the rules that turn them into iterations,
//! pick the best one and summarise them.
//!
//! The rules are MLRun 1.12.1's (`mlrun/runtimes/generators.py`, `runtimes/utils.py`):
//!
//! - `grid` (the default): every combination, the first parameter varying fastest;
//! - `list`: the i-th values of every list together (the lists have one length);
//! - `random`: `max_iterations` (default 10) draws, each value picked uniformly from its list;
//! - iterations are numbered from 1; the parent run is iteration 0;
//! - a selector `[min|max.]<result>` (no prefix: `max`) picks the best completed iteration, the
//!   first one on a tie, comparing results as numbers (text that parses as one counts);
//! - `max_errors` (0 or unset: 3) failed iterations are tolerated, one more stops the run
//!   starting new ones; `stop_condition` (a Python expression over the iteration's results)
//!   stops it after the first iteration for which it holds;
//! - the summary table (`status.iterations`) has the header `state`, `iter`, `param.<k>`...,
//!   `output.<k>`... and one row per iteration, by iteration number.
//!
//! Where MLRun fails late or oddly, baton refuses when the run is submitted, naming the field:
//! a strategy it does not know, `max_iterations` without `random`, a hyperparameter that is not
//! a non-empty list, `list` lists of different lengths, and the options that need a Dask cluster
//! or a parameter file.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Extra;
use crate::error::{Error, Result};

/// MLRun's `HyperParamOptions`, as a run spec carries it. Every field is optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HyperParamOptions {
    /// `grid` (default), `list` or `random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// `[min|max.]<result>`: how the best iteration is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// A Python expression over an iteration's results that stops the run when true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_condition: Option<String>,
    /// How many iterations run at once (unset: one after the other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_runs: Option<u32>,
    /// How many iterations the `random` strategy draws (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// How many failed iterations are tolerated before no new one starts (0 or unset: 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u32>,
    /// A file of parameter sets (not supported by baton; refused by [`HyperPlan::new`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_file: Option<String>,
    /// A Dask cluster to run on (not supported by baton; refused by [`HyperPlan::new`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dask_cluster_uri: Option<String>,
    /// Unknown fields (MLRun's `teardown_dask`, ...), kept for the round trip.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How the parameter sets are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every combination.
    Grid,
    /// The lists zipped.
    List,
    /// Random draws.
    Random,
}

/// The default number of `random` draws (MLRun's `default_max_iterations`).
pub const DEFAULT_MAX_ITERATIONS: u32 = 10;
/// The default number of tolerated failures (MLRun's `default_max_errors`).
pub const DEFAULT_MAX_ERRORS: u32 = 3;

/// A checked hyper-parameter run: what [`HyperPlan::parameter_sets`] expands and how the
/// iterations are judged.
#[derive(Debug, Clone, PartialEq)]
pub struct HyperPlan {
    strategy: Strategy,
    hyperparams: Vec<(String, Vec<Value>)>,
    selector: Option<Selector>,
    options: HyperParamOptions,
}

impl Strategy {
    /// The strategy's name, as MLRun writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Grid => "grid",
            Strategy::List => "list",
            Strategy::Random => "random",
        }
    }
}

impl HyperPlan {
    /// Checks `hyperparams` and `options`, refusing what MLRun would refuse (or fail on later)
    /// with a message naming the field.
    pub fn new(hyperparams: &Map<String, Value>, options: &HyperParamOptions) -> Result<Self> {
        let strategy = match options.strategy.as_deref() {
            None | Some("") | Some("grid") => Strategy::Grid,
            Some("list") => Strategy::List,
            Some("random") => Strategy::Random,
            Some("custom") => {
                return Err(Error::invalid_with_hint(
                    "Hyper-parameter strategy `custom` is not supported by baton",
                    "use `grid`, `list` or `random`",
                ))
            }
            Some(other) => {
                return Err(Error::invalid(format!(
                    "Illegal hyper-parameter strategy `{other}`; use one of: grid, list, random"
                )))
            }
        };
        if options.max_iterations.is_some_and(|n| n > 0) && strategy != Strategy::Random {
            return Err(Error::invalid(
                "Hyper-parameter option `max_iterations` is only valid with strategy `random`",
            ));
        }
        for (field, value) in [
            ("param_file", &options.param_file),
            ("dask_cluster_uri", &options.dask_cluster_uri),
        ] {
            if value.as_deref().is_some_and(|v| !v.is_empty()) {
                return Err(Error::invalid_with_hint(
                    format!("Hyper-parameter option `{field}` is not supported by baton"),
                    "give the values inline as `hyperparams` (a list per parameter)",
                ));
            }
        }
        if options.parallel_runs == Some(0) {
            return Err(Error::invalid(
                "Hyper-parameter option `parallel_runs` must be at least 1",
            ));
        }
        if hyperparams.is_empty() {
            return Err(Error::invalid(
                "A hyper-parameter run needs at least one hyperparameter",
            ));
        }
        let mut lists = Vec::with_capacity(hyperparams.len());
        for (key, value) in hyperparams {
            match value {
                Value::Array(values) if !values.is_empty() => {
                    lists.push((key.clone(), values.clone()))
                }
                Value::Array(_) => {
                    return Err(Error::invalid(format!(
                        "Hyperparameter `{key}` has no values"
                    )))
                }
                other => {
                    return Err(Error::invalid_with_hint(
                        format!("Hyperparameter `{key}` is `{other}`, not a list of values"),
                        format!("write e.g. `{key}=[1, 2, 3]`"),
                    ))
                }
            }
        }
        if strategy == Strategy::List {
            let (first, len) = (&lists[0].0, lists[0].1.len());
            if let Some((key, values)) = lists.iter().find(|(_, v)| v.len() != len) {
                return Err(Error::invalid(format!(
                    "Strategy `list` takes lists of one length: hyperparameter `{first}` has {len} \
                     values, `{key}` has {}",
                    values.len()
                )));
            }
        }
        let selector = match options.selector.as_deref() {
            None | Some("") => None,
            Some(text) => Some(Selector::parse(text)?),
        };
        Ok(HyperPlan {
            strategy,
            hyperparams: lists,
            selector,
            options: options.clone(),
        })
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The selector, if one was given.
    pub fn selector(&self) -> Option<&Selector> {
        self.selector.as_ref()
    }

    /// The stop condition, if one was given.
    pub fn stop_condition(&self) -> Option<&str> {
        self.options
            .stop_condition
            .as_deref()
            .filter(|s| !s.is_empty())
    }

    /// How many iterations may run at once (1 unless `parallel_runs` says more).
    pub fn parallel_runs(&self) -> usize {
        self.options.parallel_runs.unwrap_or(1).max(1) as usize
    }

    /// How many failed iterations are tolerated (MLRun: 0 or unset means 3).
    pub fn max_errors(&self) -> u32 {
        match self.options.max_errors {
            None | Some(0) => DEFAULT_MAX_ERRORS,
            Some(n) => n,
        }
    }

    /// The parameter sets of iterations 1, 2, ...; `pick(n)` draws an index below `n` for the
    /// `random` strategy.
    pub fn parameter_sets(&self, mut pick: impl FnMut(usize) -> usize) -> Vec<Map<String, Value>> {
        match self.strategy {
            Strategy::Grid => {
                let total: usize = self.hyperparams.iter().map(|(_, v)| v.len()).product();
                (0..total)
                    .map(|mut index| {
                        // The first parameter varies fastest (MLRun's `grid_to_list`).
                        self.hyperparams
                            .iter()
                            .map(|(key, values)| {
                                let value = values[index % values.len()].clone();
                                index /= values.len();
                                (key.clone(), value)
                            })
                            .collect()
                    })
                    .collect()
            }
            Strategy::List => (0..self.hyperparams[0].1.len())
                .map(|i| {
                    self.hyperparams
                        .iter()
                        .map(|(key, values)| (key.clone(), values[i].clone()))
                        .collect()
                })
                .collect(),
            Strategy::Random => {
                let draws = match self.options.max_iterations {
                    None | Some(0) => DEFAULT_MAX_ITERATIONS,
                    Some(n) => n,
                };
                (0..draws)
                    .map(|_| {
                        self.hyperparams
                            .iter()
                            .map(|(key, values)| (key.clone(), values[pick(values.len())].clone()))
                            .collect()
                    })
                    .collect()
            }
        }
    }
}

/// `[min|max.]<result>`: the best iteration has the lowest or highest value of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Whether the highest value wins.
    pub max: bool,
    /// The result compared.
    pub result: String,
}

impl Selector {
    /// Parses `max.accuracy`, `min.loss` or `accuracy` (which means `max.accuracy`).
    pub fn parse(text: &str) -> Result<Self> {
        let (op, result) = match text.split_once('.') {
            Some((op, result)) => (op, result),
            None => ("max", text),
        };
        let max = match op {
            "max" => true,
            "min" => false,
            _ => {
                return Err(Error::invalid_with_hint(
                    format!("Illegal iteration selector `{text}`"),
                    "write `[min|max.]<result-name>`, e.g. `max.accuracy`",
                ))
            }
        };
        if result.is_empty() {
            return Err(Error::invalid_with_hint(
                format!("Iteration selector `{text}` names no result"),
                "write `[min|max.]<result-name>`, e.g. `max.accuracy`",
            ));
        }
        Ok(Selector {
            max,
            result: result.to_string(),
        })
    }

    /// The best of `iterations` (iteration number, completed?, results): the first completed
    /// one with the best numeric value of the result; `None` when no completed iteration has it.
    pub fn best<'a>(
        &self,
        iterations: impl IntoIterator<Item = (u32, bool, &'a Map<String, Value>)>,
    ) -> Option<u32> {
        let mut best: Option<(u32, f64)> = None;
        for (iteration, completed, results) in iterations {
            let Some(value) = results.get(&self.result).and_then(number) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((_, current)) if self.max => value > current,
                Some((_, current)) => value < current,
            };
            if completed && better {
                best = Some((iteration, value));
            }
        }
        best.map(|(iteration, _)| iteration)
    }
}

/// A result as a number: numbers, and text that parses as one (MLRun's `float(val)`).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Checks a run's hyperparameters and options when it is submitted: options without
/// hyperparameters, and anything [`HyperPlan::new`] refuses, are errors naming the field.
pub fn check_hyper(
    hyperparams: &Map<String, Value>,
    options: Option<&HyperParamOptions>,
) -> Result<()> {
    let options = options.cloned().unwrap_or_default();
    if hyperparams.is_empty() {
        let HyperParamOptions { extra, .. } = &options;
        let bare = HyperParamOptions {
            extra: extra.clone(),
            ..HyperParamOptions::default()
        };
        if options != bare {
            return Err(Error::invalid_with_hint(
                "Hyper-parameter options were given without hyperparameters",
                "add `hyperparams` (a list of values per parameter), or drop the options",
            ));
        }
        return Ok(());
    }
    HyperPlan::new(hyperparams, &options).map(drop)
}

/// One iteration as the summary table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationRow<'a> {
    /// The iteration number.
    pub iteration: u32,
    /// Its state's name.
    pub state: &'a str,
    /// Its parameters (all of them, not only the hyperparameters).
    pub params: &'a Map<String, Value>,
    /// Its results.
    pub results: &'a Map<String, Value>,
}

/// MLRun's `status.iterations`: a header row (`state`, `iter`, `param.<k>`..., `output.<k>`...,
/// columns in order of first appearance) and one row per iteration by number; a value an
/// iteration lacks is `null`.
pub fn summary_table(rows: &[IterationRow<'_>]) -> Vec<Vec<Value>> {
    let mut sorted: Vec<&IterationRow<'_>> = rows.iter().collect();
    sorted.sort_by_key(|row| row.iteration);
    let mut columns: Vec<(bool, &str)> = Vec::new();
    for row in &sorted {
        let keys = row
            .params
            .keys()
            .map(|k| (true, k.as_str()))
            .chain(row.results.keys().map(|k| (false, k.as_str())));
        for column in keys {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
    }
    let header = ["state".to_string(), "iter".to_string()]
        .into_iter()
        .chain(
            columns
                .iter()
                .map(|(param, key)| format!("{}.{key}", if *param { "param" } else { "output" })),
        )
        .map(Value::String)
        .collect();
    let mut table = vec![header];
    for row in sorted {
        let mut line = vec![Value::from(row.state), Value::from(row.iteration)];
        line.extend(columns.iter().map(|(param, key)| {
            let source = if *param { row.params } else { row.results };
            source.get(*key).cloned().unwrap_or(Value::Null)
        }));
        table.push(line);
    }
    table
}

/// The summary table as CSV (the `iteration_results` artifact): text as is, other values as
/// JSON, `null` as an empty field; a field holding `,`, `"` or a line break is quoted.
pub fn table_csv(table: &[Vec<Value>]) -> String {
    let field = |value: &Value| {
        let text = match value {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text
        }
    };
    let mut out = String::new();
    for row in table {
        let line: Vec<String> = row.iter().map(field).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn options(value: Value) -> HyperParamOptions {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn grid_varies_the_first_parameter_fastest() {
        let plan = HyperPlan::new(
            &params(json!({"a": [1, 2], "b": ["x", "y", "z"]})),
            &HyperParamOptions::default(),
        )
        .unwrap();
        let sets = plan.parameter_sets(|_| unreachable!());
        let pairs: Vec<Value> = sets.iter().map(|s| json!([s["a"], s["b"]])).collect();
        assert_eq!(
            pairs,
            [
                json!([1, "x"]),
                json!([2, "x"]),
                json!([1, "y"]),
                json!([2, "y"]),
                json!([1, "z"]),
                json!([2, "z"])
            ]
        );
    }

    #[test]
    fn list_zips_and_refuses_uneven_lists() {
        let plan = HyperPlan::new(
            &params(json!({"a": [1, 2], "b": [3, 4]})),
            &options(json!({"strategy": "list"})),
        )
        .unwrap();
        assert_eq!(
            plan.parameter_sets(|_| 0),
            [
                params(json!({"a": 1, "b": 3})),
                params(json!({"a": 2, "b": 4}))
            ]
        );
        let err = HyperPlan::new(
            &params(json!({"a": [1, 2], "b": [3]})),
            &options(json!({"strategy": "list"})),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("`a` has 2 values, `b` has 1"),
            "{err}"
        );
    }

    #[test]
    fn random_draws_max_iterations_times() {
        let plan = HyperPlan::new(
            &params(json!({"a": [1, 2, 3]})),
            &options(json!({"strategy": "random", "max_iterations": 4})),
        )
        .unwrap();
        let mut draws = [2, 0, 1, 2].into_iter();
        let sets = plan.parameter_sets(|n| {
            assert_eq!(n, 3);
            draws.next().unwrap()
        });
        let values: Vec<&Value> = sets.iter().map(|s| &s["a"]).collect();
        assert_eq!(values, [&json!(3), &json!(1), &json!(2), &json!(3)]);
        let default = HyperPlan::new(
            &params(json!({"a": [1]})),
            &options(json!({"strategy": "random"})),
        )
        .unwrap();
        assert_eq!(default.parameter_sets(|_| 0).len(), 10);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (json!({"a": [1]}), json!({"strategy": "bayes"}), "`bayes`"),
            (json!({"a": [1]}), json!({"strategy": "custom"}), "`custom`"),
            (
                json!({"a": [1]}),
                json!({"max_iterations": 3}),
                "`max_iterations`",
            ),
            (
                json!({"a": [1]}),
                json!({"param_file": "p.csv"}),
                "`param_file`",
            ),
            (
                json!({"a": [1]}),
                json!({"dask_cluster_uri": "db://p/d"}),
                "`dask_cluster_uri`",
            ),
            (
                json!({"a": [1]}),
                json!({"parallel_runs": 0}),
                "`parallel_runs`",
            ),
            (
                json!({"a": [1]}),
                json!({"selector": "best.acc"}),
                "`best.acc`",
            ),
            (json!({"a": 3}), json!({}), "`a` is `3`"),
            (json!({"a": []}), json!({}), "`a` has no values"),
            (json!({}), json!({}), "at least one"),
        ];
        for (hyper, opts, needle) in cases {
            let err = HyperPlan::new(&params(hyper), &options(opts)).unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn selector_picks_the_first_best_completed_iteration() {
        let r = |v: Value| params(v);
        let rows = [
            (1, true, r(json!({"acc": 0.5}))),
            (2, false, r(json!({"acc": 0.99}))),
            (3, true, r(json!({"acc": "0.8"}))),
            (4, true, r(json!({"acc": 0.8}))),
            (5, true, r(json!({"other": 1}))),
        ];
        let each = || rows.iter().map(|(i, ok, res)| (*i, *ok, res));
        assert_eq!(Selector::parse("max.acc").unwrap().best(each()), Some(3));
        assert_eq!(Selector::parse("acc").unwrap().best(each()), Some(3));
        assert_eq!(Selector::parse("min.acc").unwrap().best(each()), Some(1));
        assert_eq!(Selector::parse("max.missing").unwrap().best(each()), None);
    }

    #[test]
    fn max_errors_zero_means_the_default() {
        let plan = |o| HyperPlan::new(&params(json!({"a": [1]})), &options(o)).unwrap();
        assert_eq!(plan(json!({"max_errors": 0})).max_errors(), 3);
        assert_eq!(plan(json!({})).max_errors(), 3);
        assert_eq!(plan(json!({"max_errors": 1})).max_errors(), 1);
    }

    #[test]
    fn summary_table_has_mlruns_columns_and_csv_quotes() {
        let (p1, p2) = (params(json!({"a": 2, "b": "x,y"})), params(json!({"a": 1})));
        let (r1, r2) = (params(json!({"acc": 0.5})), params(json!({})));
        let table = summary_table(&[
            IterationRow {
                iteration: 2,
                state: "completed",
                params: &p1,
                results: &r1,
            },
            IterationRow {
                iteration: 1,
                state: "error",
                params: &p2,
                results: &r2,
            },
        ]);
        assert_eq!(
            table,
            [
                vec![
                    json!("state"),
                    json!("iter"),
                    json!("param.a"),
                    json!("param.b"),
                    json!("output.acc")
                ],
                vec![json!("error"), json!(1), json!(1), Value::Null, Value::Null],
                vec![
                    json!("completed"),
                    json!(2),
                    json!(2),
                    json!("x,y"),
                    json!(0.5)
                ],
            ]
        );
        assert_eq!(
            table_csv(&table),
            "state,iter,param.a,param.b,output.acc\nerror,1,1,,\ncompleted,2,2,\"x,y\",0.5\n"
        );
    }
}
