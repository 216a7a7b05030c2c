//! `baton set-workflow`, `baton run`, `baton workflows list | get | terminate`, `baton graph`.

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::progress::Progress;
use super::table::Table;
use super::Context;
use crate::engine::{EngineKind, StepState, WorkflowState};
use crate::error::{Error, Result};
use crate::project::{RunWorkflowOptions, SetWorkflowRequest, WorkflowRunHandle};
use crate::runner::parse_params;
use crate::runner::Isolation;
use crate::service::{Baton, RemoteWorkflowRun, Termination};
use crate::workflow::{render_graph, ArgSchemaEntry, GraphFormat};
use clap::builder::TypedValueParser as _;

/// Arguments of `baton set-workflow`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    baton set-workflow --name main --path store://artifacts/my-project/my_workflow_code\n  \
    baton set-workflow --name nightly --path ./workflows/nightly.yaml --engine remote --schedule '0 2 * * *'")]
pub struct SetWorkflowArgs {
    /// Workflow name
    #[arg(long)]
    name: String,
    /// Source: a store:// workflow code artifact, or a local .py/.yaml/.yml file
    #[arg(long, value_name = "SRC")]
    path: String,
    /// Engine: local, kfp, remote, remote:local, remote:kfp
    #[arg(long)]
    engine: Option<String>,
    /// The workflow function of a Python file (default: kfpipeline, else pipeline)
    #[arg(long)]
    handler: Option<String>,
    /// A default argument as key=value (typed like run-function's -p); repeatable
    #[arg(long = "arg", value_name = "K=V", value_parser = super::parse_key_value)]
    args: Vec<(String, String)>,
    /// A 5-field cron schedule (runs on the server; not with a local engine)
    #[arg(long, value_name = "CRON")]
    schedule: Option<String>,
    /// A YAML or JSON file with the argument schema (a list of {name, type, default, doc, required})
    #[arg(long, value_name = "FILE")]
    args_schema: Option<PathBuf>,
}

/// Arguments of `baton run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  baton run main -a p1=5\n  baton run main --json --parallelism 4"
)]
pub struct RunArgs {
    /// The workflow to run (default: the project's only workflow)
    name: Option<String>,
    /// An argument as key=value (typed like run-function's -p); repeatable
    #[arg(short = 'a', long = "arg", value_name = "K=V", value_parser = super::parse_key_value)]
    args: Vec<(String, String)>,
    /// Engine: local, kfp, remote, remote:local, remote:kfp (default: the workflow's, else local)
    #[arg(long)]
    engine: Option<String>,
    /// Run on this machine (MLRun's local=True)
    #[arg(long)]
    local: bool,
    /// Run even when an argument is not declared by the workflow (a warning instead of an error)
    #[arg(long)]
    allow_extra_args: bool,
    /// How local steps run: `fork` (a child of a warm Python worker, about a millisecond to
    /// start) or `process` (a `baton runner` and a fresh Python per step)
    #[arg(long, value_name = "HOW", default_value = "fork",
          value_parser = clap::builder::PossibleValuesParser::new(["fork", "process"])
              .map(|s| s.parse::<Isolation>().expect("a listed value")))]
    isolation: Isolation,
    #[command(flatten)]
    schedule: super::schedules::ScheduleArgs,
    #[command(flatten)]
    follow: FollowArgs,
}

/// How a run is driven and shown, shared by `baton run` and `baton workflows retry`.
#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Steps run at once (default: the number of CPUs)
    #[arg(long, value_name = "N")]
    parallelism: Option<NonZeroUsize>,
    /// Show live progress (the default)
    #[arg(long, overrides_with = "no_watch")]
    watch: bool,
    /// Only print the outcome
    #[arg(long)]
    no_watch: bool,
    /// Terminate the run if it takes longer than this (e.g. 10m)
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Print the final workflow run as JSON
    #[arg(long)]
    json: bool,
}

impl FollowArgs {
    /// Whether to draw progress: unless asked not to, or printing JSON, or quiet.
    fn watch(&self, ctx: &Context) -> bool {
        !self.no_watch && !self.json && !ctx.printer.is_quiet()
    }
}

/// The `workflows` command group.
#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// List workflow runs, newest first
    List {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one workflow run with its steps
    Get {
        /// Workflow run id
        id: String,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Ask a running workflow to stop: running steps are aborted, pending ones never start
    Terminate {
        /// Workflow run id
        id: String,
    },
    /// Run a failed or canceled workflow run again as a new run: steps that succeeded keep their
    /// outputs, the others run again
    Retry(RetryArgs),
}

/// Arguments of `baton workflows retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Workflow run id
    id: String,
    #[command(flatten)]
    follow: FollowArgs,
}

/// Output formats of `baton graph`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormatArg {
    /// A Mermaid flowchart
    Mermaid,
    /// Graphviz dot
    Dot,
}

/// Arguments of `baton graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The workflow
    name: String,
    /// Output format
    #[arg(long, value_enum, default_value = "mermaid")]
    format: GraphFormatArg,
}

pub(crate) async fn set_workflow(args: SetWorkflowArgs, ctx: &Context) -> Result<ExitCode> {
    let mut baton = ctx.baton().await?;
    let args_schema = match &args.args_schema {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::io(format!("Failed to read `{}`", path.display()), e))?;
            serde_yaml::from_str::<Vec<ArgSchemaEntry>>(&text).map_err(|e| {
                Error::invalid(format!("`{}` is not a valid args schema (a list of {{name, type, default, doc, required}}): {e}", path.display()))
            })?
        }
        None => Vec::new(),
    };
    let spec = baton
        .set_workflow(SetWorkflowRequest {
            name: args.name,
            path: args.path,
            engine: args.engine,
            handler: args.handler,
            args: parse_params(args.args)?,
            schedule: args.schedule,
            args_schema,
        })
        .await?;
    ctx.printer.info(format!("Set workflow `{}`", spec.name));
    ctx.printer.data(&spec.name);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(args: RunArgs, ctx: &Context) -> Result<ExitCode> {
    // Caught from now on: Ctrl-C, `kill`, `timeout`, systemd or a closed terminal cancel the run
    // (every step aborted and recorded) instead of killing this process and orphaning its steps.
    let cancel = crate::launcher::shutdown_signal();
    // One set of warm workers for this run: it traces a Python workflow, then forks its steps.
    // A run on this machine starts its worker first of all, while the project and the database
    // open.
    let fork = crate::runner::ForkServer::new();
    if args.isolation == Isolation::Fork && ctx.api.is_none() {
        fork.prestart(crate::runner::PythonRunner::from_env().python());
    }
    let mut baton = ctx.baton().await?;
    baton.set_isolation(args.isolation);
    baton.set_fork_server(fork);
    let name = match args.name {
        Some(name) => name,
        None => baton.default_workflow()?,
    };
    if let Some(schedule) = args.schedule.schedule.clone() {
        return schedule_workflow(
            name,
            schedule,
            args.schedule,
            args.engine,
            args.args,
            args.follow.json,
            ctx,
        )
        .await;
    }
    let options = RunWorkflowOptions {
        args: parse_params(args.args)?,
        engine: args
            .engine
            .as_deref()
            .map(str::parse::<EngineKind>)
            .transpose()?,
        local: args.local,
        parallelism: args.follow.parallelism,
        timeout: args.follow.timeout,
        allow_extra_args: args.allow_extra_args,
        labels: Default::default(),
    };
    let watch = args.follow.watch(ctx);
    if let EngineKind::Remote { inner } = baton.workflow_engine(&name, &options)? {
        let remote = ctx.remote_engine()?;
        let run = baton
            .submit_remote_workflow(&remote, &name, inner, &options)
            .await?;
        ctx.printer.info(format!(
            "Running workflow `{name}` on the server at {} (run `{}`)",
            remote.base_url(),
            run.id()
        ));
        return follow_and_report(
            &baton,
            Started::Remote(Box::new(run)),
            watch,
            cancel,
            args.follow.json,
            ctx,
        )
        .await;
    }
    let prepared = baton.prepare_workflow(&name, &options).await?;
    ctx.printer.info(format!(
        "Running workflow `{name}` on the {} engine ({})",
        prepared.engine,
        prepared.source.record.uid.as_deref().map_or_else(
            || prepared.source.record.source.clone(),
            |uid| format!(
                "{} ^{}",
                prepared.source.record.source,
                &uid[..uid.len().min(12)]
            )
        )
    ));
    let handle = baton.start_workflow(prepared, &options).await;
    follow_and_report(
        &baton,
        Started::Local(Box::new(handle)),
        watch,
        cancel,
        args.follow.json,
        ctx,
    )
    .await
}

/// `baton run NAME --schedule CRON`: stores the schedule on the server (MLRun's rules: a
/// schedule forces the remote runner, and a local engine is refused).
async fn schedule_workflow(
    name: String,
    schedule: String,
    args: super::schedules::ScheduleArgs,
    engine: Option<String>,
    run_args: Vec<(String, String)>,
    json: bool,
    ctx: &Context,
) -> Result<ExitCode> {
    let engine = engine
        .as_deref()
        .map(str::parse::<EngineKind>)
        .transpose()?;
    let engine = crate::engine::select_engine(engine, None, false, true)?;
    let inner = match engine {
        EngineKind::Remote { inner } => inner,
        _ => None,
    };
    let body = crate::server::schedules::routes::ScheduleBody {
        name: name.clone(),
        workflow: Some(name),
        schedule,
        timezone: args.timezone,
        overlap: args.overlap,
        catchup: args.catchup,
        args: parse_params(run_args)?,
        engine: crate::service::server_engine(inner),
        ..Default::default()
    };
    super::schedules::store(body, json, ctx).await
}

/// Whether progress is drawn as a live tree: on a terminal, unless `BATON_NO_PROGRESS` is set.
fn live_progress(watch: bool) -> bool {
    watch && std::io::stderr().is_terminal() && std::env::var_os("BATON_NO_PROGRESS").is_none()
}

/// A run that was started: driven by this process, or by a server.
enum Started {
    /// Driven here; `Err` when it could not start (its runners are still reaped).
    Local(Box<Result<WorkflowRunHandle>>),
    /// Driven by a server and followed from here.
    Remote(Box<RemoteWorkflowRun>),
}

/// Draws a started run's progress while it is recorded to its end (by the service here, or by
/// the server), then prints the outcome; exit code 1 unless it succeeded.
async fn follow_and_report(
    baton: &Baton,
    started: Started,
    watch: bool,
    cancel: impl std::future::Future<Output = ()>,
    json: bool,
    ctx: &Context,
) -> Result<ExitCode> {
    let (record, drawing) = match started {
        Started::Local(started) => match *started {
            Ok(mut handle) => {
                let progress = Progress::new(handle.dag(), watch, live_progress(watch));
                let drawing = tokio::spawn(progress.follow(handle.subscribe().await?));
                let record = baton.finish_workflow(Ok(handle), cancel).await;
                (record, Some(drawing))
            }
            Err(e) => (baton.finish_workflow(Err(e), cancel).await, None),
        },
        Started::Remote(run) => {
            let progress = Progress::new(run.dag(), watch, live_progress(watch));
            let drawing = tokio::spawn(progress.follow(run.subscribe().await?));
            (run.finish(cancel).await, Some(drawing))
        }
    };
    if let Some(drawing) = drawing {
        // The drawing ends with the run's event stream.
        let _ = drawing.await;
    }
    let record = record?;
    if json {
        ctx.printer.json(&record);
    } else {
        ctx.printer
            .info(format!("Workflow run `{}` {}", record.id, record.state));
        if let Some(error) = &record.error {
            ctx.printer.info(format!("error: {error}"));
        }
        for step in record.steps.iter().filter(|s| s.state == StepState::Failed) {
            if let Some(uid) = &step.run_uid {
                ctx.printer
                    .info(format!("  logs of `{}`: baton runs logs {uid}", step.name));
            }
        }
        ctx.printer.data(&record.id);
    }
    Ok(if record.state == WorkflowState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `baton workflows retry ID`.
async fn retry(args: RetryArgs, baton: &Baton, ctx: &Context) -> Result<ExitCode> {
    let cancel = crate::launcher::shutdown_signal();
    let options = RunWorkflowOptions {
        parallelism: args.follow.parallelism,
        timeout: args.follow.timeout,
        ..RunWorkflowOptions::default()
    };
    let watch = args.follow.watch(ctx);
    let (started, new_id) = if ctx.api.is_some() {
        let remote = ctx.remote_engine()?;
        let run = baton
            .retry_remote_workflow(&remote, &args.id, &options)
            .await?;
        let id = run.id();
        (Started::Remote(Box::new(run)), id)
    } else {
        let handle = baton.retry_workflow(&args.id, &options).await?;
        let id = handle.id();
        (Started::Local(Box::new(Ok(handle))), id)
    };
    ctx.printer
        .info(format!("Retrying workflow run `{}` as `{new_id}`", args.id));
    follow_and_report(baton, started, watch, cancel, args.follow.json, ctx).await
}

pub(crate) async fn workflows(cmd: WorkflowsCommand, ctx: &Context) -> Result<ExitCode> {
    let baton = ctx.baton().await?;
    match cmd {
        WorkflowsCommand::Retry(args) => return retry(args, &baton, ctx).await,
        WorkflowsCommand::List { json: true } => {
            ctx.printer.json(&baton.workflow_runs().await?);
        }
        WorkflowsCommand::List { json: false } => {
            let mut table = Table::new(&["ID", "NAME", "STATE", "ENGINE", "STARTED"]);
            for r in baton.workflow_run_summaries().await? {
                table.row([r.id, r.name, r.state.to_string(), r.engine, r.started]);
            }
            ctx.printer.data(table);
        }
        WorkflowsCommand::Get { id, json } => {
            let run = baton.workflow_run(&id).await?;
            if json {
                ctx.printer.json(&run);
            } else {
                ctx.printer
                    .data(serde_yaml::to_string(&run).expect("records serialize"));
            }
        }
        WorkflowsCommand::Terminate { id } => match baton.terminate_workflow(&id).await? {
            Termination::AlreadyEnded(state) => ctx
                .printer
                .info(format!("Workflow run `{id}` already ended ({state})")),
            Termination::Requested => ctx
                .printer
                .info(format!("Asked workflow run `{id}` to terminate")),
        },
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn graph(args: GraphArgs, ctx: &Context) -> Result<ExitCode> {
    let dag = ctx.baton().await?.workflow_dag(&args.name).await?;
    let format = match args.format {
        GraphFormatArg::Mermaid => GraphFormat::Mermaid,
        GraphFormatArg::Dot => GraphFormat::Dot,
    };
    ctx.printer.data(render_graph(&dag, format));
    Ok(ExitCode::SUCCESS)
}
