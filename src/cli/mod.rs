//! The `baton` command line: clap definitions, then one module per command group.
//!
//! Every command parses its arguments, resolves the project (`-C DIR`, found by walking up like
//! git), calls the library, and prints through the [`Printer`]. Exit codes: 0 success, 1 a
//! failure while doing the work (including a run that did not complete), 2 bad input (invalid
//! argument, not found, conflict, bad request).

mod artifacts;
mod build;
mod compile;
mod export;
mod functions;
mod import;
mod init;
mod log_code;
mod printer;
mod profiles;
mod progress;
mod runs;
mod schedules;
mod server;
mod table;
mod ui;
mod workflows;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use printer::Printer;

use crate::error::{Error, Result};
use crate::project::Project;
use crate::service::Baton;

/// baton: run MLRun-style workflows whose functions and workflows are versioned code artifacts.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about, propagate_version = true)]
pub struct Cli {
    /// Run as if baton was started in DIR (the project is found from there upwards)
    #[arg(
        short = 'C',
        long = "context",
        global = true,
        value_name = "DIR",
        default_value = "."
    )]
    pub context: PathBuf,

    /// More logs on stderr (-v info, -vv debug, -vvv trace); BATON_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only print data and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// A baton server to work against (e.g. http://127.0.0.1:8080); MLRUN_DBPATH is used when
    /// neither this nor BATON_API is set. Needed by the remote engines
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "BATON_API",
        hide_env_values = true
    )]
    pub api: Option<String>,

    /// The Kubeflow Pipelines API the kfp engine submits to (BATON_KFP_TOKEN, BATON_KFP_USER,
    /// BATON_KFP_EXPERIMENT and BATON_KFP_NAMESPACE refine it)
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "BATON_KFP_URL",
        hide_env_values = true
    )]
    pub kfp_url: Option<String>,

    /// The server's token: the one `--api`'s server requires (else MLRUN_HTTPDB__TOKEN), or the
    /// one `baton server` requires of every request but GET /healthz
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "BATON_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a project: project.yaml and the embedded .baton/ state
    Init(init::InitArgs),
    /// Log a file, an archive or an inline body as a code artifact
    LogCode(Box<log_code::LogCodeArgs>),
    /// List, inspect and pull code artifacts
    #[command(subcommand)]
    Artifacts(artifacts::ArtifactsCommand),
    /// Define a function whose source is a code artifact, a .py file, an archive or a git repository
    SetFunction(Box<functions::SetFunctionArgs>),
    /// List and inspect the project's functions
    #[command(subcommand)]
    Functions(functions::FunctionsCommand),
    /// Run a project function; its code is pulled by the runner at start-up
    RunFunction(Box<runs::RunFunctionArgs>),
    /// List and inspect runs and their logs
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Define a workflow whose source is a workflow code artifact or a local file
    SetWorkflow(Box<workflows::SetWorkflowArgs>),
    /// Run a project workflow: resolve its artifact now, build the step DAG, dispatch the steps
    Run(Box<workflows::RunArgs>),
    /// List, inspect and terminate workflow runs
    #[command(subcommand)]
    Workflows(workflows::WorkflowsCommand),
    /// List, pause, trigger and backfill the schedules a server holds (needs --api)
    #[command(subcommand)]
    Schedules(schedules::SchedulesCommand),
    /// Print a workflow's step graph
    Graph(workflows::GraphArgs),
    /// Compile a workflow to a Kubeflow Pipelines v2 pipeline (YAML)
    Compile(compile::CompileArgs),
    /// Write a function's image build context and record its build configuration
    Build(build::BuildArgs),
    /// Export the project: OUT.zip with its code (handlers still resolve), or OUT.yaml
    Export(export::ExportArgs),
    /// Import an exported project into a new folder (`--context DIR`, created if missing)
    Import(import::ImportArgs),
    /// Manage datastore profiles: named stores with their credentials, used as ds://NAME/path
    #[command(subcommand)]
    Profiles(profiles::ProfilesCommand),
    /// Serve the MLRun-compatible HTTP API and the runs' web page at /: runs and workflows
    /// submitted to it execute here
    Server(server::ServerArgs),
    /// Serve the web page of this project's runs on 127.0.0.1, over its embedded database
    Ui(ui::UiArgs),
    /// Execute one recorded run (started by baton itself; not for direct use)
    #[command(hide = true)]
    Runner(Box<runs::RunnerArgs>),
}

/// What the commands share: where they run, how they print, and the server they work
/// against, if any.
pub(crate) struct Context {
    /// The context folder (`-C DIR`), absolute: the working folder, except for `import`, which
    /// creates the project there and runs where it was started.
    pub dir: PathBuf,
    pub printer: Printer,
    pub api: Option<Api>,
    /// `--token` as given (for `baton server`).
    pub token: Option<String>,
    /// `--kfp-url` as given.
    pub kfp_url: Option<String>,
}

/// A `baton server` the CLI works against.
pub(crate) struct Api {
    /// Its address.
    pub url: String,
    /// Its token, if it needs one.
    pub token: Option<String>,
}

impl Api {
    /// The server from `--api`/`BATON_API`, else from `MLRUN_DBPATH` (MLRun's client setting),
    /// with the token from `--token`/`BATON_TOKEN`, else `MLRUN_HTTPDB__TOKEN`.
    fn from_args(api: Option<String>, token: Option<String>) -> Option<Api> {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url = api
            .filter(|u| !u.is_empty())
            .or_else(|| from_env("MLRUN_DBPATH"))?;
        let token = token
            .filter(|t| !t.is_empty())
            .or_else(|| from_env("MLRUN_HTTPDB__TOKEN"));
        Some(Api { url, token })
    }
}

impl Context {
    /// The project containing the context folder.
    pub fn project(&self) -> Result<Project> {
        Project::discover(&self.dir)
    }

    /// The service over that project: on the embedded database, or with `--api` on the
    /// server's, where the project is created first if the server does not have it yet.
    pub async fn baton(&self) -> Result<Baton> {
        let project = self.project()?;
        let baton = match self.api_client()? {
            None => Baton::open(project)?,
            Some(api) => {
                crate::service::ensure_server_project(&api, &project).await?;
                Baton::with_server(project, api, crate::runner::CodeSources::from_env()?)
            }
        };
        Ok(match self.kfp_client()? {
            Some(kfp) => baton.with_kfp(kfp),
            None => baton,
        })
    }

    /// The client of the KFP given by `--kfp-url` (or `BATON_KFP_URL`), if any.
    pub fn kfp_client(&self) -> Result<Option<crate::kfp::client::KfpClient>> {
        let Some(url) = self.kfp_url.clone().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let config = crate::kfp::client::KfpConfig::from_lookup(|name| match name {
            "BATON_KFP_URL" => Some(url.clone()),
            other => std::env::var(other).ok(),
        })?;
        crate::kfp::client::KfpClient::new(config).map(Some)
    }

    /// The client of the server given by `--api`, if any.
    pub fn api_client(&self) -> Result<Option<crate::db::ApiClient>> {
        self.api
            .as_ref()
            .map(|api| crate::db::ApiClient::new(&api.url, api.token.clone()))
            .transpose()
    }

    /// The remote engine of the server given by `--api`; without one, an error saying how to
    /// give it.
    pub fn remote_engine(&self) -> Result<crate::engines::remote::RemoteEngine> {
        let api = self.api.as_ref().ok_or_else(|| {
            Error::invalid_with_hint(
                "The remote engines run workflows on a baton server, and none is given",
                "start one with `baton server` and pass `--api http://127.0.0.1:8080` (or set BATON_API)",
            )
        })?;
        crate::engines::remote::RemoteEngine::new(&api.url, api.token.clone())
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The exit code of a failed command.
fn exit_code(err: &Error) -> u8 {
    err.kind().exit_code()
}

/// Parses `key=value` arguments (`-p`, `-a`, `--label`, `--input`).
pub(crate) fn parse_key_value(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not of the form key=value"))
}

/// Makes the context folder the working folder (creating it for `init`) and returns it. For
/// `import` the context folder is the project to create, which need not exist yet: it is
/// returned (absolute) without being entered, so the source is found from where baton runs.
fn enter_context(cli: &Cli) -> Result<PathBuf> {
    if matches!(cli.command, Command::Import(_)) {
        return std::path::absolute(&cli.context)
            .map_err(|e| Error::io(format!("Failed to resolve `{}`", cli.context.display()), e));
    }
    if matches!(cli.command, Command::Init(_)) {
        std::fs::create_dir_all(&cli.context)
            .map_err(|e| Error::io(format!("Failed to create `{}`", cli.context.display()), e))?;
    }
    std::env::set_current_dir(&cli.context).map_err(|e| {
        Error::io(
            format!(
                "Cannot enter the context folder `{}`",
                cli.context.display()
            ),
            e,
        )
    })?;
    std::env::current_dir().map_err(|e| Error::io("Cannot read the working folder", e))
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let printer = Printer::new(cli.quiet);
    // Like `git -C`, relative paths in arguments are taken from the context folder.
    let dir = match enter_context(&cli) {
        Ok(dir) => dir,
        Err(err) => {
            printer.error(&err);
            return ExitCode::from(exit_code(&err));
        }
    };
    let api = Api::from_args(cli.api.clone(), cli.token.clone());
    let ctx = Context {
        dir,
        printer,
        api,
        token: cli.token.clone(),
        kfp_url: cli.kfp_url.clone(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            ctx.printer
                .error(&Error::io("Failed to start the async runtime", e));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command, &ctx)) {
        Ok(code) => code,
        Err(err) => {
            ctx.printer.error(&err);
            ExitCode::from(exit_code(&err))
        }
    }
}

async fn run(command: Command, ctx: &Context) -> Result<ExitCode> {
    match command {
        Command::Init(args) => init::run(args, ctx),
        Command::LogCode(args) => log_code::run(*args, ctx).await,
        Command::Artifacts(cmd) => artifacts::run(cmd, ctx).await,
        Command::SetFunction(args) => functions::set_function(*args, ctx).await,
        Command::Functions(cmd) => functions::run(cmd, ctx).await,
        Command::RunFunction(args) => runs::run_function(*args, ctx).await,
        Command::Runs(cmd) => runs::run(cmd, ctx).await,
        Command::Build(args) => build::run(args, ctx).await,
        Command::Export(args) => export::run(args, ctx).await,
        Command::Import(args) => import::run(args, ctx).await,
        Command::SetWorkflow(args) => workflows::set_workflow(*args, ctx).await,
        Command::Run(args) => workflows::run(*args, ctx).await,
        Command::Workflows(cmd) => workflows::workflows(cmd, ctx).await,
        Command::Schedules(cmd) => schedules::run(cmd, ctx).await,
        Command::Graph(args) => workflows::graph(args, ctx).await,
        Command::Compile(args) => compile::run(args, ctx).await,
        Command::Runner(args) => runs::runner(*args, ctx).await,
        Command::Server(args) => server::run(args, ctx).await,
        Command::Ui(args) => ui::run(args, ctx).await,
        Command::Profiles(cmd) => profiles::run(cmd, ctx).await,
    }
}
