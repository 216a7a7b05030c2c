//! `baton run-function`, `baton runs list | get | logs`, and the hidden `baton runner`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::table::Table;
use super::Context;
use crate::db::RunFilter;
use crate::db::{HttpDb, SqliteDb};
use crate::error::{Error, Result};
use crate::launcher::{self, RunRequest};
use crate::logs::LogTail;
use crate::model::{HyperParamOptions, RunObject, RunState};
use crate::runner::{parse_params, run_step, CodeSources, PythonRunner, StepEnv};

/// Arguments of `baton run-function`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    baton run-function my-func -p p1=5\n  \
    baton run-function trainer -p lr=0.1 -p epochs=3 --input data=./data.csv --json")]
pub struct RunFunctionArgs {
    /// The project function to run
    name: String,
    /// A parameter as key=value; the value is typed as JSON (5 is an int, 0.5 a float,
    /// true a bool, {"a":1} an object), else a string; repeatable
    #[arg(short = 'p', long = "param", value_name = "K=V", value_parser = super::parse_key_value)]
    params: Vec<(String, String)>,
    /// An input as key=URL (a local path or file:// URL); repeatable
    #[arg(long = "input", value_name = "K=URL", value_parser = super::parse_key_value)]
    inputs: Vec<(String, String)>,
    /// Handler override (`<module>:<function>`)
    #[arg(long)]
    handler: Option<String>,
    /// A hyperparameter as key=[v1,v2,...]: the run becomes one iteration per parameter set
    /// (every combination by default); repeatable
    #[arg(short = 'x', long = "hyperparam", value_name = "K=[..]", value_parser = super::parse_key_value)]
    hyperparams: Vec<(String, String)>,
    /// How hyperparameters are combined: grid (every combination), list (zipped) or random
    #[arg(long, value_name = "STRATEGY", requires = "hyperparams")]
    hyper_param_strategy: Option<String>,
    /// How the best iteration is chosen: [min|max.]<result>, e.g. max.accuracy
    #[arg(long, value_name = "SELECTOR", requires = "hyperparams")]
    selector: Option<String>,
    /// More hyper-parameter options as JSON (MLRun's HyperParamOptions: stop_condition,
    /// parallel_runs, max_iterations, max_errors, ...)
    #[arg(long, value_name = "JSON", requires = "hyperparams")]
    hyper_param_options: Option<String>,
    /// Print the final run object as JSON
    #[arg(long)]
    json: bool,
}

impl RunFunctionArgs {
    /// The hyper-parameter options the flags give, if any: `--hyper-param-options`, then
    /// `--hyper-param-strategy` and `--selector` on top (MLRun's CLI order).
    fn hyper_param_options(&self) -> Result<Option<HyperParamOptions>> {
        let mut options = match &self.hyper_param_options {
            Some(text) => serde_json::from_str::<HyperParamOptions>(text).map_err(|e| {
                Error::invalid_with_hint(
                    format!("--hyper-param-options `{text}` is not hyper-parameter options: {e}"),
                    r#"write JSON such as `{"selector": "max.accuracy", "parallel_runs": 2}`"#,
                )
            })?,
            None if self.hyper_param_strategy.is_none() && self.selector.is_none() => {
                return Ok(None)
            }
            None => HyperParamOptions::default(),
        };
        if let Some(strategy) = &self.hyper_param_strategy {
            options.strategy = Some(strategy.clone());
        }
        if let Some(selector) = &self.selector {
            options.selector = Some(selector.clone());
        }
        Ok(Some(options))
    }
}

/// The `runs` command group.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first
    List {
        /// Only runs with this label (key=value); repeatable
        #[arg(long = "label", value_name = "K=V", value_parser = super::parse_key_value)]
        labels: Vec<(String, String)>,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one run
    Get {
        /// Run uid
        uid: String,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print a run's log
    Logs {
        /// Run uid
        uid: String,
        /// Keep printing until the run ends
        #[arg(short, long)]
        follow: bool,
    },
}

pub(crate) async fn run_function(args: RunFunctionArgs, ctx: &Context) -> Result<ExitCode> {
    let stop = launcher::shutdown_signal();
    let baton = ctx.baton().await?;
    let hyper_param_options = args.hyper_param_options()?;
    let request = RunRequest {
        function: args.name,
        handler: args.handler,
        params: parse_params(args.params)?,
        inputs: args.inputs.into_iter().collect::<BTreeMap<_, _>>(),
        labels: BTreeMap::new(),
        uid: None,
        hyper_param_options,
        hyperparams: parse_params(args.hyperparams)?,
        ..RunRequest::default()
    };
    let submitted = baton.submit_run(request).await?;
    let run = submitted.run;
    if submitted.build_required {
        let name = &run
            .spec
            .function_snapshot
            .as_ref()
            .expect("submitted runs have one")
            .function
            .name;
        ctx.printer.warn(format!(
            "Function `{name}` requires a build (its build configuration changed or it was never built); run `baton build {name}`"
        ));
    }
    ctx.printer
        .info(format!("Run `{}` started", run.metadata.uid));
    let handle = baton.start_run(&run)?;
    let log = baton.logs().path(handle.uid());
    let show_log = !args.json && !ctx.printer.is_quiet();
    let mut tail = LogTail::default();
    // Ctrl-C, SIGTERM or SIGHUP: the runner is asked to stop (it may have got the same signal
    // from the terminal); it aborts the handler and records the run, and that is waited for.
    let wait = handle.wait_or_stop(baton.db(), async {
        stop.await;
        ctx.printer.warn("Interrupted; aborting the run");
    });
    tokio::pin!(wait);
    let run = loop {
        tokio::select! {
            run = &mut wait => break run?,
            _ = tokio::time::sleep(Duration::from_millis(100)), if show_log => tail.copy_to_stderr(&log)?,
        }
    };
    if show_log {
        tail.copy_to_stderr(&log)?;
    }
    print_outcome(ctx, &run, args.json);
    Ok(if run.status.state == RunState::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_outcome(ctx: &Context, run: &RunObject, json: bool) {
    if json {
        ctx.printer.json(run);
        return;
    }
    ctx.printer
        .info(format!("Run `{}` {}", run.metadata.uid, run.status.state));
    if let Some(error) = &run.status.error {
        ctx.printer.info(format!("error: {error}"));
    }
    for (key, value) in &run.status.results {
        ctx.printer.data(format!("{key}: {value}"));
    }
    if let Some((header, rows)) = run.status.iterations.split_first() {
        let header: Vec<String> = header.iter().map(cell_text).collect();
        let mut table = Table::new(&header.iter().map(String::as_str).collect::<Vec<_>>());
        for row in rows {
            table.row(row.iter().map(cell_text));
        }
        ctx.printer.info(table.to_string());
    }
}

/// A summary table cell as text: strings unquoted, `null` empty, anything else as JSON.
fn cell_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Arguments of the hidden `baton runner`. Started with `--project` and `--db`, it needs no
/// project folder: the run record holds everything else. With `--kfp` (a step of a compiled
/// pipeline, in a KFP pod) there is no recorded run yet: the runner records one on the server
/// that `BATON_API` (else `MLRUN_DBPATH`) names, from the step's flags.
#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// The run's uid
    #[arg(required_unless_present = "kfp")]
    uid: Option<String>,
    /// The run's project (default: the project found from the folder); with --db, or with
    /// --api for a run recorded on a server
    #[arg(long)]
    project: Option<String>,
    /// The database holding the run (default: the project's `.baton/baton.db`)
    #[arg(long, value_name = "FILE", requires = "project")]
    db: Option<PathBuf>,
    /// The run's log file (default: `logs/UID.log` beside the database)
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    #[command(flatten)]
    kfp: KfpStepArgs,
}

/// The flags of a compiled KFP step (`baton runner --kfp`).
#[derive(Debug, Args)]
pub struct KfpStepArgs {
    /// Run a step of a compiled pipeline: record a new run on the server, execute it, write
    /// its outputs
    #[arg(long, requires_all = ["project", "function", "step"], conflicts_with = "db")]
    kfp: bool,
    /// The pipeline run the step belongs to
    #[arg(long, default_value = "")]
    workflow: String,
    /// The step's name
    #[arg(long)]
    step: Option<String>,
    /// The function's definition, as JSON
    #[arg(long, value_name = "JSON")]
    function: Option<String>,
    /// The step's handler
    #[arg(long)]
    handler: Option<String>,
    /// A parameter whose value is text, as name=value
    #[arg(long = "param", value_name = "K=V", value_parser = super::parse_key_value)]
    params: Vec<(String, String)>,
    /// A parameter whose value is JSON, as name=json
    #[arg(long = "param-json", value_name = "K=JSON", value_parser = super::parse_key_value)]
    params_json: Vec<(String, String)>,
    /// A text parameter built from other values (they are substituted by KFP), as name=text
    #[arg(long = "param-template", value_name = "K=TEXT", value_parser = super::parse_key_value)]
    params_template: Vec<(String, String)>,
    /// A data input, as name=url
    #[arg(long = "input", value_name = "K=URL", value_parser = super::parse_key_value)]
    inputs: Vec<(String, String)>,
    /// A data input whose value is JSON (another step's output), as name=json
    #[arg(long = "input-json", value_name = "K=JSON", value_parser = super::parse_key_value)]
    inputs_json: Vec<(String, String)>,
    /// A data input built from other values (substituted by KFP), as name=text
    #[arg(long = "input-template", value_name = "K=TEXT", value_parser = super::parse_key_value)]
    inputs_template: Vec<(String, String)>,
    /// A label for the step's run, as key=value
    #[arg(long = "label", value_name = "K=V", value_parser = super::parse_key_value)]
    labels: Vec<(String, String)>,
    /// Where to write a declared output, as name=path
    #[arg(long = "output", value_name = "K=PATH", value_parser = super::parse_key_value)]
    outputs: Vec<(String, String)>,
    /// Abort the run when it takes longer than this many seconds
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// The step's hyperparameters, as a JSON object of lists
    #[arg(long, value_name = "JSON")]
    hyperparams: Option<String>,
    /// The step's hyper-parameter options, as JSON
    #[arg(long, value_name = "JSON", requires = "hyperparams")]
    hyper_param_options: Option<String>,
}

impl KfpStepArgs {
    /// The step, its values typed: `--param` and `--param-template` are text, `--param-json`
    /// is parsed.
    fn into_step(self, project: String) -> Result<crate::service::PodStep> {
        let text = |what: &str, value: Option<String>| {
            value.ok_or_else(|| Error::invalid(format!("--kfp needs --{what}")))
        };
        let function_json = text("function", self.function)?;
        let function = serde_json::from_str(&function_json).map_err(|e| {
            Error::invalid(format!(
                "--function is not a function definition (JSON): {e}"
            ))
        })?;
        let mut params = serde_json::Map::new();
        for (key, value) in self.params.into_iter().chain(self.params_template) {
            params.insert(key, serde_json::Value::String(value));
        }
        for (key, value) in self.params_json {
            let parsed = serde_json::from_str(&value).map_err(|e| {
                Error::invalid(format!("--param-json `{key}`: `{value}` is not JSON: {e}"))
            })?;
            params.insert(key, parsed);
        }
        let mut inputs: BTreeMap<String, String> = self
            .inputs
            .into_iter()
            .chain(self.inputs_template)
            .collect();
        for (key, value) in self.inputs_json {
            let parsed: serde_json::Value = serde_json::from_str(&value).map_err(|e| {
                Error::invalid(format!("--input-json `{key}`: `{value}` is not JSON: {e}"))
            })?;
            let text = match parsed {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            inputs.insert(key, text);
        }
        let hyperparams = match &self.hyperparams {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                Error::invalid(format!("--hyperparams `{text}` is not a JSON object: {e}"))
            })?,
            None => serde_json::Map::new(),
        };
        let hyper_param_options = match &self.hyper_param_options {
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                Error::invalid(format!(
                    "--hyper-param-options `{text}` is not hyper-parameter options: {e}"
                ))
            })?),
            None => None,
        };
        Ok(crate::service::PodStep {
            project,
            hyperparams,
            hyper_param_options,
            workflow: self.workflow,
            step: text("step", self.step)?,
            function,
            handler: self.handler,
            params,
            inputs,
            labels: self.labels.into_iter().collect(),
            outputs: self
                .outputs
                .into_iter()
                .map(|(k, path)| (k, PathBuf::from(path)))
                .collect(),
        })
    }
}

pub(crate) async fn runner(args: RunnerArgs, ctx: &Context) -> Result<ExitCode> {
    // Listen first, so a signal from here on aborts the run instead of killing the runner
    // before it can record anything.
    let cancel = launcher::shutdown_signal();
    if args.kfp.kfp {
        return kfp_step(args, ctx, cancel).await;
    }
    let uid = args.uid.clone().unwrap_or_default();
    let (db, project, default_log): (Arc<dyn crate::db::Db>, _, _) =
        match (args.db, args.project, ctx.api_client()?) {
            (Some(path), Some(project), _) => {
                let logs = path.parent().unwrap_or(Path::new(".")).join("logs");
                let log = logs.join(format!("{uid}.log"));
                (Arc::new(SqliteDb::open(&path)?), project, log)
            }
            (None, Some(project), Some(api)) => {
                let log = std::env::temp_dir()
                    .join("baton-logs")
                    .join(format!("{uid}.log"));
                (Arc::new(HttpDb::with_client(api)), project, log)
            }
            _ => {
                let baton = ctx.baton().await?;
                let log = baton.logs().path(&uid);
                (baton.shared_db(), baton.project().name().to_string(), log)
            }
        };
    let log = args.log.unwrap_or(default_log);
    let env = StepEnv {
        code: CodeSources::from_env()?,
        python: PythonRunner::from_env(),
        log,
    };
    let run = run_step(db, &project, &uid, &env, cancel).await?;
    Ok(exit_code_of(&run))
}

/// `baton runner --kfp`: a step of a compiled pipeline, recorded on the server the environment
/// names; the handler's output goes to this process's stdout (the pod's log) unless `--log`.
async fn kfp_step(
    args: RunnerArgs,
    ctx: &Context,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<ExitCode> {
    let api = ctx.api_client()?.ok_or_else(|| {
        Error::invalid_with_hint(
            "A KFP step records its run on a baton server, and none is given",
            "set BATON_API (or MLRUN_DBPATH) in the step's environment",
        )
    })?;
    let project = args.project.clone().unwrap_or_default();
    let timeout = args.kfp.timeout;
    let step = args.kfp.into_step(project)?;
    let env = StepEnv {
        code: CodeSources::from_env()?,
        python: PythonRunner::from_env(),
        log: args.log.unwrap_or_else(|| PathBuf::from("/dev/stdout")),
    };
    let stop = async {
        match timeout {
            Some(secs) => {
                tokio::select! {
                    () = cancel => {}
                    () = tokio::time::sleep(std::time::Duration::from_secs(secs)) => {
                        tracing::warn!("the step did not finish within {secs} s; aborting it");
                    }
                }
            }
            None => cancel.await,
        }
    };
    let db = Arc::new(HttpDb::with_client(api));
    let run = crate::service::run_pod_step(step, db, &env, stop).await?;
    if let Some(error) = &run.status.error {
        ctx.printer.info(format!("error: {error}"));
    }
    Ok(exit_code_of(&run))
}

/// 0 for a completed run, 1 otherwise.
fn exit_code_of(run: &RunObject) -> ExitCode {
    if run.status.state == RunState::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub(crate) async fn run(cmd: RunsCommand, ctx: &Context) -> Result<ExitCode> {
    let baton = ctx.baton().await?;
    match cmd {
        RunsCommand::List { labels, json } => {
            let runs = baton.runs(&RunFilter { labels }).await?;
            if json {
                ctx.printer.json(&runs);
            } else {
                let mut table = Table::new(&["UID", "NAME", "STATE", "STARTED", "RESULTS"]);
                for r in &runs {
                    table.row([
                        r.metadata.uid.clone(),
                        r.metadata.name.clone(),
                        r.status.state.as_str().to_string(),
                        r.status.start_time.as_deref().unwrap_or("-").to_string(),
                        serde_json::Value::Object(r.status.results.clone()).to_string(),
                    ]);
                }
                ctx.printer.data(table);
            }
        }
        RunsCommand::Get { uid, json } => {
            let run = baton.run(&uid).await?;
            if json {
                ctx.printer.json(&run);
            } else {
                ctx.printer
                    .data(serde_yaml::to_string(&run).expect("runs serialize"));
            }
        }
        RunsCommand::Logs { uid, follow } => {
            baton
                .copy_log(&uid, &mut std::io::stdout().lock(), follow)
                .await?
        }
    }
    Ok(ExitCode::SUCCESS)
}
