//! Function runs: submit and start them, read them, follow their logs.

use std::io::Write;
use std::time::Duration;

use super::Baton;
use crate::db::{segment, settle_run, ApiClient, RunFilter};
use crate::error::{Error, Result};
use crate::launcher::{self, RunHandle, RunRequest};
use crate::logs::{Copied, LogTail};
use crate::model::{RunObject, RunState};
use crate::runner::{run_step, PythonRunner, StepEnv};

/// A run recorded and ready to start, with what the caller should tell the user about it.
#[derive(Debug, Clone)]
pub struct SubmittedRun {
    /// The run record, in state `created`.
    pub run: RunObject,
    /// Whether the function's build configuration changed since its last build (or it was
    /// never built): the run goes ahead, but the image it would run in is stale.
    pub build_required: bool,
}

/// How often a followed log is checked for new bytes.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

impl Baton {
    /// Validates and records a run of a project function (see [`launcher::submit`]), and says
    /// whether the function needs a build.
    pub async fn submit_run(&self, request: RunRequest) -> Result<SubmittedRun> {
        // A hub function is not in the project: it is resolved (and checked) at submit.
        let build_required = !request.function.starts_with(crate::project::HUB_PREFIX)
            && self.build_required(&request.function).await?;
        let run = launcher::submit(&self.project, self.db.as_ref(), request).await?;
        Ok(SubmittedRun {
            run,
            build_required,
        })
    }

    /// Starts the runner of a recorded run; it resolves the run's code when it starts.
    pub fn start_run(&self, run: &RunObject) -> Result<RunHandle> {
        launcher::start(
            &self.project,
            &self.runner_db(),
            run,
            None,
            &self.logs.path(&run.metadata.uid),
        )
    }

    /// Executes recorded run `run` with the runner in this process, its handler run by `python`
    /// (a child of a warm worker when `python` has a fork server); `cancel` resolving aborts
    /// the handler and records the run `aborted`. Returns the final record.
    pub async fn run_forked(
        &self,
        run: &RunObject,
        python: &PythonRunner,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<RunObject> {
        let env = StepEnv {
            code: self.code.clone(),
            python: python.clone(),
            log: self.logs.path(&run.metadata.uid),
        };
        run_step(
            self.db.clone(),
            self.project.name(),
            &run.metadata.uid,
            &env,
            cancel,
        )
        .await
    }

    /// The project's runs matching `filter`, newest first; runs whose runner died are settled
    /// (see [`Baton::run`]).
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunObject>> {
        let mut runs = Vec::new();
        for run in self.db.list_runs(self.project.name(), filter).await? {
            runs.push(self.settle_if_orphaned(run).await?);
        }
        Ok(runs)
    }

    /// Run `uid`. A `running` run whose runner's lease expired lost its runner (it was killed
    /// outright, with the process that started it): it is recorded `error` now, so no run stays
    /// `running` forever.
    pub async fn run(&self, uid: &str) -> Result<RunObject> {
        let run = self.db.read_run(self.project.name(), uid).await?;
        self.settle_if_orphaned(run).await
    }

    async fn settle_if_orphaned(&self, run: RunObject) -> Result<RunObject> {
        if run.status.state != RunState::Running || self.db.lease_alive(&run.runner_lease()).await?
        {
            return Ok(run);
        }
        settle_run(
            self.db.as_ref(),
            &run,
            RunState::Error,
            "The run's runner stopped without recording an outcome (it was killed, with the \
             process that started it?)"
                .into(),
        )
        .await
    }

    /// Copies run `uid`'s log to `out`; with `follow`, keeps copying until the run has ended and
    /// its log is drained. A closed `out` (a pipe whose reader left) ends the copy quietly.
    /// With a server, a run this machine has no log of (the server executed it) is read from
    /// the server.
    pub async fn copy_log(&self, uid: &str, out: &mut impl Write, follow: bool) -> Result<()> {
        self.run(uid).await?;
        let path = self.logs.path(uid);
        if let Some(api) = &self.server {
            if !path.exists() {
                return self.copy_server_log(api, uid, out, follow).await;
            }
        }
        let mut tail = LogTail::default();
        loop {
            let ended = !follow || self.run(uid).await?.status.state.is_terminal();
            match tail.copy_new(&path, out)? {
                Copied::Closed => return Ok(()),
                Copied::NoLog if !follow => {
                    return Err(Error::not_found(format!("Run `{uid}` has no log yet")));
                }
                Copied::NoLog | Copied::Bytes(_) => {}
            }
            if ended {
                return Ok(());
            }
            tokio::time::sleep(FOLLOW_INTERVAL).await;
        }
    }

    /// [`Baton::copy_log`] of a log kept by the server, read in chunks from MLRun's log route.
    async fn copy_server_log(
        &self,
        api: &ApiClient,
        uid: &str,
        out: &mut impl Write,
        follow: bool,
    ) -> Result<()> {
        let url = api.url(&format!(
            "/api/v1/projects/{}/logs/{}",
            segment("project", self.project.name())?,
            segment("run uid", uid)?
        ));
        let mut offset = 0u64;
        loop {
            let ended = !follow || self.run(uid).await?.status.state.is_terminal();
            loop {
                let query = [("offset", offset.to_string()), ("size", "1048576".into())];
                let chunk = api.call(reqwest::Method::GET, &url, &query, None).await?;
                if chunk.is_empty() {
                    break;
                }
                offset += chunk.len() as u64;
                if out.write_all(&chunk).and_then(|()| out.flush()).is_err() {
                    return Ok(());
                }
            }
            if ended {
                return Ok(());
            }
            tokio::time::sleep(FOLLOW_INTERVAL).await;
        }
    }
}
