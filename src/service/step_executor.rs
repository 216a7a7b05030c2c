//! [`RunnerExecutor`]: the local engine's steps, each recorded as a function run exactly as
//! `baton run-function` records one, then executed by a `baton runner` process
//! ([`Isolation::Process`]) or by the runner in this process, its handler forked by a warm Python
//! worker ([`Isolation::Fork`]).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::db::{settle_run, Db};
use crate::engine::{StepExecutor, StepInvocation, StepOutcome};
use crate::launcher::{self, RunRequest};
use crate::logs::LogStore;
use crate::model::{RunObject, RunState};
use crate::project::Project;
use crate::runner::{run_recorded_step, CodeSources, ForkServer, Isolation, PythonRunner, StepEnv};
use crate::workflow::StepAction;

/// The image a build step names as its `image` output: MLRun's target for a built function,
/// `.mlrun/func-<project>-<function>:latest` (a registry-relative name; `baton build` writes
/// its context, and the image is built from it outside baton).
fn built_image(project: &str, function: &str) -> String {
    format!(".mlrun/func-{project}-{function}:latest")
}

/// Executes workflow steps as recorded function runs labelled `workflow=<id>`.
///
/// A step whose future is dropped (timeout, terminate) stops its runner: a `baton runner`
/// process gets SIGTERM (dropping its [`launcher::RunHandle`]); an in-process runner is told to
/// stop. Either aborts the handler and records the run as `aborted`.
pub struct RunnerExecutor {
    project: Project,
    db: Arc<dyn Db>,
    runner_db: launcher::RunnerDb,
    logs: LogStore,
    python: Option<PathBuf>,
    /// `Some` when steps run in this process ([`Isolation::Fork`]).
    in_process: Option<InProcess>,
}

/// What the runner needs to execute steps in this process.
struct InProcess {
    code: CodeSources,
    python: PythonRunner,
}

impl RunnerExecutor {
    /// An executor for the steps of `project`'s workflows, recorded in `db` (which runners reach
    /// as `runner_db`), their logs kept in `logs`; `python` is the interpreter every step's
    /// runner uses (else `BATON_PYTHON`, else `python3`).
    pub fn new(
        project: Project,
        db: Arc<dyn Db>,
        runner_db: launcher::RunnerDb,
        logs: LogStore,
        python: Option<PathBuf>,
    ) -> Self {
        RunnerExecutor {
            project,
            db,
            runner_db,
            logs,
            python,
            in_process: None,
        }
    }

    /// The same executor with its steps isolated as `isolation` says. With
    /// [`Isolation::Fork`] the runner runs in this process, resolving code through `code`, and
    /// the interpreter's warm worker starts now, so it is ready by the first step.
    pub fn with_isolation(self, isolation: Isolation, code: CodeSources) -> Self {
        match isolation {
            Isolation::Process => RunnerExecutor {
                in_process: None,
                ..self
            },
            Isolation::Fork => self.forked_by(ForkServer::new(), code),
        }
    }

    /// The same executor with its runner in this process, resolving code through `code`, each
    /// handler forked by `server`'s warm worker for this executor's interpreter. Executors that
    /// share a server (a long-lived process running many workflows) share its workers.
    pub fn forked_by(self, server: ForkServer, code: CodeSources) -> Self {
        let python = match &self.python {
            Some(python) => PythonRunner::new(python),
            None => PythonRunner::from_env(),
        };
        let in_process = Some(InProcess {
            code,
            python: python.with_fork_server(server),
        });
        RunnerExecutor { in_process, ..self }
    }

    /// Runs the recorded `run` with the runner in this process, its log at `log`.
    async fn run_in_process(
        &self,
        env: &InProcess,
        run: &RunObject,
        log: PathBuf,
    ) -> crate::Result<RunObject> {
        let env = StepEnv {
            code: env.code.clone(),
            python: env.python.clone(),
            log,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let db = self.db.clone();
        let project = run.metadata.project.clone();
        let uid = run.metadata.uid.clone();
        let task = tokio::spawn({
            let run = run.clone();
            async move {
                let stopped = async {
                    let _ = stopped.await;
                };
                // The run as it was just submitted: no need to read it back.
                run_recorded_step(db, run, &env, stopped).await
            }
        });
        let mut step = InProcessStep {
            stop: Some(stop),
            task: Some(task),
            project,
            uid,
        };
        let ended = step
            .task
            .as_mut()
            .expect("a running step has its task")
            .await;
        step.task = None;
        let (project, uid) = (&step.project, &step.uid);
        let why = match ended {
            Ok(Ok(run)) => return Ok(run),
            Ok(Err(err)) => err.chain().to_string(),
            Err(err) => format!("the runner stopped: {err}"),
        };
        let run = self.db.read_run(project, uid).await?;
        settle_run(self.db.as_ref(), &run, RunState::Error, why).await
    }

    async fn run_function(&self, invocation: &StepInvocation) -> crate::Result<StepOutcome> {
        let step = &invocation.step;
        let request = RunRequest {
            function: step.function.clone(),
            handler: step.handler.clone(),
            params: step.params.clone().into_iter().collect(),
            inputs: step
                .inputs
                .iter()
                .map(|(k, v)| (k.clone(), input_text(v)))
                .collect(),
            // The run's labels, then the two that link the step run to the workflow run.
            labels: invocation
                .labels
                .clone()
                .into_iter()
                .chain([
                    ("workflow".to_string(), invocation.workflow_id.clone()),
                    ("workflow-step".to_string(), step.name.clone()),
                ])
                .collect(),
            uid: None,
            hyperparams: step.hyperparams.clone(),
            hyper_param_options: step.hyper_param_options.clone(),
            overrides: step.overrides.clone(),
        };
        let run = launcher::submit(&self.project, self.db.as_ref(), request).await?;
        invocation.report_run(&run.metadata.uid);
        let log = self.logs.path(&run.metadata.uid);
        let run = match &self.in_process {
            Some(env) => self.run_in_process(env, &run, log).await?,
            None => {
                let handle = launcher::start(
                    &self.project,
                    &self.runner_db,
                    &run,
                    self.python.as_deref(),
                    &log,
                )?;
                tracing::trace!(step = %step.name, uid = %run.metadata.uid, "runner started");
                handle.wait(self.db.as_ref()).await?
            }
        };
        tracing::trace!(step = %step.name, uid = %run.metadata.uid, state = %run.status.state, "runner ended");
        let uid = run.metadata.uid.clone();
        if run.status.state != RunState::Completed {
            let error = run
                .status
                .error
                .unwrap_or_else(|| format!("run ended in state `{}`", run.status.state));
            let outcome = StepOutcome::failed(format!("run `{uid}`: {error}")).with_run_uid(uid);
            return Ok(match run.status.failure_kind {
                Some(kind) if !kind.is_retryable() => outcome.not_retryable(),
                _ => outcome,
            });
        }
        Ok(StepOutcome::succeeded(run.step_outputs()).with_run_uid(uid))
    }
}

/// An input value as the URL or path text a run takes.
fn input_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl StepExecutor for RunnerExecutor {
    async fn execute(&self, invocation: StepInvocation) -> StepOutcome {
        let result = match invocation.step.action {
            StepAction::Run => self.run_function(&invocation).await,
            StepAction::Build => self
                .project
                .build_function(self.db.as_ref(), &invocation.step.function, None)
                .await
                .map(|out| {
                    let mut outputs = Map::new();
                    outputs.insert(
                        "image".into(),
                        built_image(self.project.name(), &invocation.step.function).into(),
                    );
                    outputs.insert(
                        "build_context".into(),
                        out.dir.to_string_lossy().into_owned().into(),
                    );
                    StepOutcome::succeeded(outputs)
                }),
            // `LocalEngine::check` refuses deploy steps before a run starts.
            StepAction::Deploy => Ok(StepOutcome::failed(format!(
                "the local engine cannot deploy function `{}`",
                invocation.step.function
            ))
            .not_retryable()),
        };
        result.unwrap_or_else(|err| {
            let outcome = StepOutcome::failed(err.chain().to_string());
            match crate::runner::failure_kind_of(&err) {
                Some(kind) if !kind.is_retryable() => outcome.not_retryable(),
                _ => outcome,
            }
        })
    }
}

/// A step whose runner runs in this process. Dropped before it ends (the step was canceled), it
/// tells the runner to stop (it aborts the handler and records the run `aborted`) and leaves the
/// runner's task to [`launcher::reap_stopped_runners`].
struct InProcessStep {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<crate::Result<RunObject>>>,
    project: String,
    uid: String,
}

impl Drop for InProcessStep {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take().filter(|t| !t.is_finished()) {
            launcher::stopping_in_process(
                task,
                std::mem::take(&mut self.project),
                std::mem::take(&mut self.uid),
            );
        }
    }
}
