//! Workflow engines: the [`WorkflowEngine`] trait every engine implements, the five engine names
//! ([`EngineKind`]), and the one place an engine is chosen for a run ([`select_engine`]).
//!
//! An engine takes a checked [`Dag`] with its merged arguments and drives its steps to a terminal
//! state. The implementations live in the `engines` module, above this one:
//!
//! - `engines::local::LocalEngine`: steps run on this machine, through a [`StepExecutor`].
//! - `engines::remote::RemoteEngine`: runs hosted by a `baton server` ([`wire`] is its protocol).
//! - `engines::kfp::KfpEngine`: Kubeflow Pipelines runs created from compiled specs.
//! - [`UnavailableEngine`]: stands in for an engine this process was not given (`kfp` without a
//!   KFP URL, the remote engines without a server); every method is a clear
//!   [`Error::BadRequest`].
//!
//! Engines do not draw anything: they publish [`WorkflowEvent`]s that fold into the run's
//! [`WorkflowRunStatus`]; [`WorkflowEngine::subscribe`] streams them to the CLI's progress view
//! and to the run recorder. [`feed`] is the publishing machinery an engine can reuse.
//!
//! Which engine runs what is decided once per process: an [`EngineRegistry`] holds one shared
//! engine per [`EngineKind`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::workflow::Dag;

#[doc(hidden)]
pub mod conformance;
mod executor;
pub mod feed;
pub mod wire;

pub use crate::model::{
    AttemptResult, StepRef, StepState, StepStatus, WorkflowEvent, WorkflowEventKind, WorkflowRunId,
    WorkflowRunStatus, WorkflowState,
};
pub(crate) use executor::RunReport;
pub use executor::{StepExecutor, StepInvocation, StepOutcome};
pub use feed::Subscription;

/// The engine a remote runner drives on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InnerEngine {
    /// Subprocesses on the server host (`remote:local`).
    Local,
    /// KFP pods (`remote:kfp`).
    Kfp,
}

/// One of the five engine names: `local`, `kfp`, `remote`, `remote:local`, `remote:kfp`.
///
/// Parsed with [`FromStr`]; [`fmt::Display`] writes the same string back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// Steps run as subprocesses of the caller.
    Local,
    /// The caller compiles the workflow to a KFP pipeline and submits it.
    Kfp,
    /// The server runs the workflow; `inner` is the engine it uses there, `None` letting the
    /// server decide (the workflow spec's engine, else kfp when it has a KFP endpoint, else local).
    Remote {
        /// The server-side engine, when fixed.
        inner: Option<InnerEngine>,
    },
}

impl EngineKind {
    /// The accepted engine strings, in the order error messages list them.
    pub const VALID: [&'static str; 5] = ["local", "kfp", "remote", "remote:local", "remote:kfp"];

    /// Whether this is one of the `remote` forms.
    pub fn is_remote(self) -> bool {
        matches!(self, EngineKind::Remote { .. })
    }

    /// Whether steps end up running on a local engine (`local` or `remote:local`).
    pub fn is_local_flavour(self) -> bool {
        matches!(
            self,
            EngineKind::Local
                | EngineKind::Remote {
                    inner: Some(InnerEngine::Local)
                }
        )
    }
}

impl From<InnerEngine> for EngineKind {
    fn from(inner: InnerEngine) -> Self {
        match inner {
            InnerEngine::Local => EngineKind::Local,
            InnerEngine::Kfp => EngineKind::Kfp,
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Local => "local",
            EngineKind::Kfp => "kfp",
            EngineKind::Remote { inner: None } => "remote",
            EngineKind::Remote {
                inner: Some(InnerEngine::Local),
            } => "remote:local",
            EngineKind::Remote {
                inner: Some(InnerEngine::Kfp),
            } => "remote:kfp",
        })
    }
}

impl FromStr for EngineKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "local" => EngineKind::Local,
            "kfp" => EngineKind::Kfp,
            "remote" => EngineKind::Remote { inner: None },
            "remote:local" => EngineKind::Remote {
                inner: Some(InnerEngine::Local),
            },
            "remote:kfp" => EngineKind::Remote {
                inner: Some(InnerEngine::Kfp),
            },
            other => {
                return Err(Error::invalid(format!(
                    "Provided workflow engine is not supported. engine_kind=`{other}`; valid \
                     engines: {}",
                    EngineKind::VALID.join(", ")
                )))
            }
        })
    }
}

impl Serialize for EngineKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EngineKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Chooses the engine of a run, following MLRun's `project.run` (reference section 6.1 and 6.3).
///
/// - `requested` is the engine passed to the run, `spec_engine` the workflow spec's; `local` is
///   the caller's explicit "run locally" flag, `schedule` whether the run is scheduled.
/// - A local-flavoured engine (`local`, `remote:local`, requested or from the spec) with a
///   schedule is refused: "'schedule' argument is not supported for 'local' engine.".
/// - An explicit `remote:<inner>` request, or any schedule, makes the runner `remote`; with a
///   schedule the inner engine is the requested one.
/// - Otherwise the runner is `requested`, else `spec_engine`, else `kfp`. With `local` set, `kfp`
///   becomes `local`, and any `remote` form is refused, pointing to `remote:local`.
/// - A remote runner without an inner engine takes the spec's (`local`, `kfp`, or the inner of a
///   `remote:<inner>` spec); failing that the server decides (`inner: None`).
///
/// Where MLRun raises on a `remote:<inner>` spec engine run without an explicit engine (an
/// accident of its string handling), baton honours the spec.
pub fn select_engine(
    requested: Option<EngineKind>,
    spec_engine: Option<EngineKind>,
    local: bool,
    schedule: bool,
) -> Result<EngineKind> {
    if schedule
        && requested
            .or(spec_engine)
            .is_some_and(EngineKind::is_local_flavour)
    {
        return Err(Error::invalid(
            "'schedule' argument is not supported for 'local' engine.",
        ));
    }
    let inner_of = |kind: Option<EngineKind>| match kind {
        Some(EngineKind::Local) => Some(InnerEngine::Local),
        Some(EngineKind::Kfp) => Some(InnerEngine::Kfp),
        Some(EngineKind::Remote { inner }) => inner,
        None => None,
    };
    let runner = match requested {
        Some(EngineKind::Remote { inner: Some(_) }) => requested.expect("matched Some"),
        _ if schedule => EngineKind::Remote {
            inner: inner_of(requested),
        },
        _ => requested.or(spec_engine).unwrap_or(EngineKind::Kfp),
    };
    match runner {
        EngineKind::Remote { .. } if local => Err(Error::invalid_with_hint(
            format!(
                "Cannot run a remote pipeline locally using `kind='{runner}'` and `local=True`"
            ),
            "to run the workflow on the server's local engine use `engine='remote:local'` \
             instead, without `local`",
        )),
        EngineKind::Remote { inner: None } => Ok(EngineKind::Remote {
            inner: inner_of(spec_engine),
        }),
        EngineKind::Kfp if local => Ok(EngineKind::Local),
        other => Ok(other),
    }
}

/// What a caller asks an engine to run.
#[derive(Debug, Clone)]
pub struct WorkflowRunRequest {
    /// The project the workflow belongs to (steps resolve functions in it).
    pub project: String,
    /// The checked workflow.
    pub dag: Dag,
    /// The merged arguments (see [`crate::workflow::merge_args`]).
    pub args: Map<String, Value>,
}

/// How to run one workflow run; engines are shared across runs, so everything per run is here.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// At most this many attempts at once (default: the engine's own, e.g. the CPU count).
    pub parallelism: Option<NonZeroUsize>,
    /// The run is stopped (it ends `Canceled`, saying so) when it has not finished after this
    /// long.
    pub timeout: Option<Duration>,
    /// Labels for the run; an engine puts them on what it records for the steps.
    pub labels: BTreeMap<String, String>,
    /// The schedule that fired this run, if any (only remote engines accept one).
    pub schedule: Option<String>,
}

/// Drives workflow runs. One implementation per engine; see the module docs. Engines are built
/// once and shared: nothing in them is tied to one run or one project.
///
/// Runs are identified by the [`WorkflowRunId`] that [`run`](Self::run) returns; the other
/// methods answer [`Error::NotFound`] for an id the engine does not know.
///
/// Every status an engine reports is the fold ([`WorkflowRunStatus::apply`]) of the events it
/// published for the run, starting from [`WorkflowRunStatus::pending`]; the conformance suite
/// (`engine::conformance`) checks this and the other promises below against any engine.
#[async_trait]
pub trait WorkflowEngine: Send + Sync {
    /// The engine's name.
    fn kind(&self) -> EngineKind;

    /// Whether this engine can run `dag`: an error naming the first step it cannot honour (e.g.
    /// a `deploy` step on the local engine). [`run`](Self::run) and [`retry`](Self::retry) check
    /// it too, so a refused workflow never starts.
    fn check(&self, dag: &Dag) -> Result<()>;

    /// Starts a run and returns its id without waiting for any step.
    ///
    /// The request is refused (an error, nothing started) when the engine cannot honour it
    /// ([`check`](Self::check), or an option it does not support). Once this returns `Ok`, the
    /// run is owned by the engine: [`status`](Self::status) reports it until the engine is
    /// dropped, or until a retention period the engine documents has passed after the run
    /// finished. The run's timeout and parallelism come from `options`.
    async fn run(&self, request: WorkflowRunRequest, options: RunOptions) -> Result<WorkflowRunId>;

    /// The current status: a consistent snapshot (no step is reported in two states), possibly
    /// already stale when it returns. Never waits for a step.
    async fn status(&self, id: &WorkflowRunId) -> Result<WorkflowRunStatus>;

    /// The status now and every later event of the run, so an observer needs no polling. The
    /// event stream ends after `WorkflowFinished` (at once for a run already finished).
    async fn subscribe(&self, id: &WorkflowRunId) -> Result<Subscription>;

    /// Waits until the run is terminal and returns its final status.
    ///
    /// A failed or canceled run is returned as `Ok` with that state; `Err` means the engine could
    /// not tell. With `timeout`, an unfinished run after that long is an [`Error::Runtime`] and
    /// the run keeps going. After [`terminate`](Self::terminate) it returns `Canceled`, unless the
    /// run had already finished.
    async fn wait(
        &self,
        id: &WorkflowRunId,
        timeout: Option<Duration>,
    ) -> Result<WorkflowRunStatus>;

    /// Asks the run to stop: running steps are aborted and unstarted ones never start; the run
    /// goes `Canceling`, then ends `Canceled`. Idempotent, and a terminal run ignores it (its
    /// state does not change). Returns once the request is delivered; [`wait`](Self::wait)
    /// observes the outcome.
    async fn terminate(&self, id: &WorkflowRunId) -> Result<()>;

    /// Starts a new run of `request` that continues `previous`, a terminal, unsuccessful run of
    /// the same workflow, typically read back from its stored record (so a retry works in a
    /// process that never saw the first run): steps that succeeded keep their outputs and are not
    /// run again; failed, skipped and canceled steps run again (conditions are re-evaluated). A
    /// succeeded run is refused with [`Error::BadRequest`], an unfinished one with
    /// [`Error::Conflict`].
    async fn retry(
        &self,
        previous: &WorkflowRunStatus,
        request: WorkflowRunRequest,
        options: RunOptions,
    ) -> Result<WorkflowRunId>;
}

/// Warns once about what steps ask of their functions (`with_limits`, `with_node_selection`,
/// mounts) that an engine running steps as processes on one machine cannot enforce; `engine`
/// names the engine. Environment variables are not in the list: such engines set them.
pub fn warn_unenforced_overrides(dag: &Dag, engine: &str) {
    let steps: Vec<String> = dag
        .steps()
        .iter()
        .filter_map(|step| {
            let what = step.overrides.unenforceable_locally();
            (!what.is_empty()).then(|| format!("`{}` ({})", step.name, what.join(", ")))
        })
        .collect();
    if !steps.is_empty() {
        tracing::warn!(
            "{engine} cannot enforce what these steps ask of their functions, so they run \
             without it: {}",
            steps.join(", ")
        );
    }
}

/// Refuses a workflow with a `deploy` step: engines that run steps as processes (the local
/// engine, and a server's local engine behind the remote one) cannot deploy real-time
/// functions. `engine` names the engine in the error.
pub fn refuse_deploy_steps(dag: &Dag, engine: &str) -> Result<()> {
    match dag
        .steps()
        .iter()
        .find(|s| s.action == crate::workflow::StepAction::Deploy)
    {
        Some(step) => Err(Error::bad_request(format!(
            "Step `{}` deploys real-time function `{}`, which {engine} cannot do (no engine of \
             baton deploys nuclio or serving functions yet): deploy the function before the \
             run and keep only `run` and `build` steps",
            step.name, step.function
        ))),
        None => Ok(()),
    }
}

/// [`WorkflowEngine::wait`] for an engine that follows runs through its own
/// [`WorkflowEngine::subscribe`] (the remote and kfp engines): the events are folded until the
/// stream ends; a stream that ended before the run did (a dropped connection) is answered by
/// [`WorkflowEngine::status`]. After `timeout` the run keeps going and the wait is an
/// [`Error::Runtime`] saying so.
pub async fn wait_by_following(
    engine: &dyn WorkflowEngine,
    id: &WorkflowRunId,
    timeout: Option<Duration>,
) -> Result<WorkflowRunStatus> {
    use futures::StreamExt;
    let follow = async {
        let mut subscription = engine.subscribe(id).await?;
        while let Some(event) = subscription.events.next().await {
            subscription.status.apply(&event);
        }
        if subscription.status.state.is_terminal() {
            Ok(subscription.status)
        } else {
            engine.status(id).await
        }
    };
    match timeout {
        None => follow.await,
        Some(limit) => tokio::time::timeout(limit, follow).await.map_err(|_| {
            Error::runtime(format!(
                "workflow run `{id}` did not finish within {}; it is still running",
                humantime::format_duration(limit)
            ))
        })?,
    }
}

/// Whether `previous` may be retried: terminal and not succeeded. Every engine's
/// [`WorkflowEngine::retry`] applies this rule.
pub fn check_retryable(previous: &WorkflowRunStatus) -> Result<()> {
    let id = &previous.id;
    if !previous.state.is_terminal() {
        return Err(Error::conflict(format!(
            "workflow run `{id}` is still running; wait for it or terminate it before retrying"
        )));
    }
    if previous.state == WorkflowState::Succeeded {
        return Err(Error::bad_request(format!(
            "workflow run `{id}` succeeded; there is nothing to retry"
        )));
    }
    Ok(())
}

/// Conveniences over any [`WorkflowEngine`]. Blanket-implemented; do not implement it yourself.
#[async_trait]
pub trait WorkflowEngineExt: WorkflowEngine {
    /// [`run`](WorkflowEngine::run), then [`wait`](WorkflowEngine::wait) without a timeout.
    async fn run_and_wait(
        &self,
        request: WorkflowRunRequest,
        options: RunOptions,
    ) -> Result<WorkflowRunStatus> {
        let id = self.run(request, options).await?;
        self.wait(&id, None).await
    }
}

impl<T: WorkflowEngine + ?Sized> WorkflowEngineExt for T {}

/// The engines of a process, built once and shared by every run, keyed by [`EngineKind`]. Kinds
/// nobody registered are [`UnavailableEngine`]s, so looking one up never fails and running on it
/// is a clear refusal.
#[derive(Clone)]
pub struct EngineRegistry {
    engines: HashMap<EngineKind, Arc<dyn WorkflowEngine>>,
}

impl Default for EngineRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineRegistry {
    /// Every kind unavailable.
    pub fn new() -> Self {
        let engines = EngineKind::VALID
            .iter()
            .map(|text| {
                let kind: EngineKind = text.parse().expect("valid engine strings parse");
                (
                    kind,
                    Arc::new(UnavailableEngine::new(kind)) as Arc<dyn WorkflowEngine>,
                )
            })
            .collect();
        EngineRegistry { engines }
    }

    /// Registers `engine` under its own [`WorkflowEngine::kind`], replacing what was there.
    pub fn with(mut self, engine: Arc<dyn WorkflowEngine>) -> Self {
        self.engines.insert(engine.kind(), engine);
        self
    }

    /// The engine of `kind`.
    pub fn get(&self, kind: EngineKind) -> Arc<dyn WorkflowEngine> {
        Arc::clone(
            self.engines
                .get(&kind)
                .expect("every kind is registered at construction"),
        )
    }
}

/// An engine this build cannot run (`kfp`, `remote` for now): every method is an
/// [`Error::BadRequest`] saying so, so a caller gets a clear refusal at submit time.
#[derive(Debug, Clone, Copy)]
pub struct UnavailableEngine {
    kind: EngineKind,
}

impl UnavailableEngine {
    /// A stand-in for `kind`.
    pub fn new(kind: EngineKind) -> Self {
        UnavailableEngine { kind }
    }

    fn refuse<T>(&self) -> Result<T> {
        Err(Error::bad_request(format!(
            "engine `{}` is not available in this build",
            self.kind
        )))
    }
}

impl fmt::Display for UnavailableEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnavailableEngine({})", self.kind)
    }
}

#[async_trait]
impl WorkflowEngine for UnavailableEngine {
    fn kind(&self) -> EngineKind {
        self.kind
    }

    fn check(&self, _: &Dag) -> Result<()> {
        self.refuse()
    }

    async fn run(&self, _: WorkflowRunRequest, _: RunOptions) -> Result<WorkflowRunId> {
        self.refuse()
    }

    async fn status(&self, _: &WorkflowRunId) -> Result<WorkflowRunStatus> {
        self.refuse()
    }

    async fn subscribe(&self, _: &WorkflowRunId) -> Result<Subscription> {
        self.refuse()
    }

    async fn wait(&self, _: &WorkflowRunId, _: Option<Duration>) -> Result<WorkflowRunStatus> {
        self.refuse()
    }

    async fn terminate(&self, _: &WorkflowRunId) -> Result<()> {
        self.refuse()
    }

    async fn retry(
        &self,
        _: &WorkflowRunStatus,
        _: WorkflowRunRequest,
        _: RunOptions,
    ) -> Result<WorkflowRunId> {
        self.refuse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const L: Option<EngineKind> = Some(EngineKind::Local);
    const K: Option<EngineKind> = Some(EngineKind::Kfp);
    const R: Option<EngineKind> = Some(EngineKind::Remote { inner: None });
    const RL: Option<EngineKind> = Some(EngineKind::Remote {
        inner: Some(InnerEngine::Local),
    });
    const RK: Option<EngineKind> = Some(EngineKind::Remote {
        inner: Some(InnerEngine::Kfp),
    });

    #[test]
    fn engine_strings_round_trip() {
        for text in EngineKind::VALID {
            let kind: EngineKind = text.parse().unwrap();
            assert_eq!(kind.to_string(), text);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(serde_json::from_str::<EngineKind>(&json).unwrap(), kind);
        }
        for bad in ["", "Local", "remote:remote", "remote:", "dask", "kfp "] {
            let err = bad.parse::<EngineKind>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert_eq!(
                err.to_string(),
                format!(
                    "Provided workflow engine is not supported. engine_kind=`{bad}`; valid \
                     engines: local, kfp, remote, remote:local, remote:kfp"
                )
            );
        }
    }

    /// (requested, spec engine, local, schedule, engine string or error substring).
    type Row = (
        Option<EngineKind>,
        Option<EngineKind>,
        bool,
        bool,
        std::result::Result<&'static str, &'static str>,
    );

    /// Every rule of `select_engine`, one row each:
    /// (requested, spec engine, local, schedule) -> engine string or error substring.
    #[test]
    fn engine_selection_table() {
        let sched_local = "'schedule' argument is not supported for 'local' engine.";
        let remote_local = "Cannot run a remote pipeline locally";
        #[rustfmt::skip]
        let table: &[Row] = &[
            // Plain runs: requested, else spec, else kfp.
            (None, None, false, false, Ok("kfp")),
            (L, None, false, false, Ok("local")),
            (K, L, false, false, Ok("kfp")),
            (None, L, false, false, Ok("local")),
            (None, K, false, false, Ok("kfp")),
            // `local=true`: kfp becomes local, local stays.
            (K, None, true, false, Ok("local")),
            (None, None, true, false, Ok("local")),
            (L, None, true, false, Ok("local")),
            (None, K, true, false, Ok("local")),
            // Remote with local is refused, whatever its inner engine.
            (R, None, true, false, Err(remote_local)),
            (RL, None, true, false, Err(remote_local)),
            (RK, None, true, false, Err(remote_local)),
            (None, R, true, false, Err(remote_local)),
            // Explicit remote:<inner> is kept.
            (RL, None, false, false, Ok("remote:local")),
            (RK, L, false, false, Ok("remote:kfp")),
            // Bare remote takes the spec's engine as inner, else the server decides.
            (R, None, false, false, Ok("remote")),
            (R, L, false, false, Ok("remote:local")),
            (R, K, false, false, Ok("remote:kfp")),
            (R, R, false, false, Ok("remote")),
            (R, RL, false, false, Ok("remote:local")),
            (None, R, false, false, Ok("remote")),
            (None, RK, false, false, Ok("remote:kfp")),
            // A schedule forces the remote runner; the inner engine is the requested one.
            (K, None, false, true, Ok("remote:kfp")),
            (None, None, false, true, Ok("remote")),
            (None, K, false, true, Ok("remote:kfp")),
            (R, K, false, true, Ok("remote:kfp")),
            (RK, None, false, true, Ok("remote:kfp")),
            // ...and a schedule with local=true is a remote run requested locally.
            (K, None, true, true, Err(remote_local)),
            // A local-flavoured engine with a schedule is refused (requested or from the spec).
            (L, None, false, true, Err(sched_local)),
            (RL, None, false, true, Err(sched_local)),
            (None, L, false, true, Err(sched_local)),
            (None, RL, false, true, Err(sched_local)),
            (L, K, true, true, Err(sched_local)),
        ];
        for (i, (requested, spec, local, schedule, expected)) in table.iter().enumerate() {
            let got = select_engine(*requested, *spec, *local, *schedule);
            let row = format!("row {i}: {requested:?} {spec:?} local={local} schedule={schedule}");
            match (expected, got) {
                (Ok(want), Ok(kind)) => assert_eq!(kind.to_string(), *want, "{row}"),
                (Err(want), Err(e)) => {
                    assert!(e.to_string().contains(want), "{row}: {e}");
                    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{row}");
                }
                (want, got) => panic!("{row}: expected {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn remote_with_local_hints_remote_local() {
        let e = select_engine(R, None, true, false).unwrap_err();
        assert!(e.hint().unwrap().contains("engine='remote:local'"));
    }

    #[test]
    fn the_registry_has_every_kind_and_takes_registered_engines() {
        let registry = EngineRegistry::new();
        for text in EngineKind::VALID {
            let kind: EngineKind = text.parse().unwrap();
            assert_eq!(registry.get(kind).kind(), kind);
        }
    }

    #[tokio::test]
    async fn unavailable_engines_refuse_every_call() {
        for text in ["kfp", "remote", "remote:kfp"] {
            let engine = UnavailableEngine::new(text.parse().unwrap());
            let id = WorkflowRunId::from("x");
            let want = format!("engine `{text}` is not available in this build");
            let errors = [
                engine.status(&id).await.unwrap_err(),
                engine.wait(&id, None).await.unwrap_err(),
                engine.terminate(&id).await.unwrap_err(),
                engine.subscribe(&id).await.unwrap_err(),
            ];
            for e in errors {
                assert_eq!(e.to_string(), want);
                assert_eq!(e.kind(), ErrorKind::BadRequest);
            }
            let dag = Dag::build(
                crate::workflow::WorkflowGraph {
                    name: "w".into(),
                    params: vec![],
                    steps: vec![],
                },
                &Default::default(),
            )
            .unwrap();
            assert_eq!(engine.check(&dag).unwrap_err().to_string(), want);
            let request = WorkflowRunRequest {
                project: "p".into(),
                dag,
                args: Map::new(),
            };
            let e = engine
                .run(request.clone(), RunOptions::default())
                .await
                .unwrap_err();
            assert_eq!(e.to_string(), want);
            let previous = WorkflowRunStatus::pending(id.clone(), "w", &[]);
            let e = engine
                .retry(&previous, request, RunOptions::default())
                .await
                .unwrap_err();
            assert_eq!(e.to_string(), want);
        }
    }
}
