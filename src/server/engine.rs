//! The engine that hosts every workflow run of a server.
//!
//! One local engine serves all projects: its steps go to [`ProjectsExecutor`], which runs each
//! in the step's project exactly as `baton run` does on a laptop (a handler forked by a warm
//! Python worker the server keeps, or a `baton runner` process). Runs
//! submitted through MLRun's API, through baton's own service API and through the remote
//! engine's protocol all live in this engine, so any of them can be followed or terminated by
//! id.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use async_trait::async_trait;

use super::Projects;
use crate::engine::{
    EngineRegistry, StepExecutor, StepInvocation, StepOutcome, WorkflowRunRequest,
};
use crate::engines::kfp::{CompileFn, KfpEngine};
use crate::engines::local::LocalEngine;
use crate::kfp::client::KfpClient;
use crate::kfp::{configured_image, CompileOptions};
use crate::runner::{CodeSources, ForkServer, Isolation};
use crate::service::RunnerExecutor;

/// Runs each step in the project the step belongs to, isolated as the server is configured:
/// forked by the server's long-lived warm Python workers, or through a `baton runner` process.
pub struct ProjectsExecutor {
    projects: Weak<Projects>,
    python: Option<PathBuf>,
    /// The warm workers every project's steps share, with the code sources they resolve
    /// through ([`Isolation::Fork`]); `None` starts a `baton runner` per step.
    fork: Option<(ForkServer, CodeSources)>,
}

impl ProjectsExecutor {
    /// Steps of `projects`' workflows, every handler on interpreter `python` (else
    /// `BATON_PYTHON`, else `python3`), isolated as `isolation` says.
    pub fn new(
        projects: &Arc<Projects>,
        python: Option<PathBuf>,
        isolation: Isolation,
    ) -> crate::Result<Self> {
        let fork = match isolation {
            Isolation::Fork => Some((ForkServer::new(), CodeSources::from_env()?)),
            Isolation::Process => None,
        };
        Ok(ProjectsExecutor {
            projects: Arc::downgrade(projects),
            python,
            fork,
        })
    }
}

#[async_trait]
impl StepExecutor for ProjectsExecutor {
    async fn execute(&self, step: StepInvocation) -> StepOutcome {
        let Some(projects) = self.projects.upgrade() else {
            return StepOutcome::failed("The server is stopping").not_retryable();
        };
        match projects.baton(&step.project).await {
            Ok(baton) => {
                let executor = RunnerExecutor::new(
                    baton.project().clone(),
                    baton.shared_db(),
                    baton.runner_db(),
                    baton.logs().clone(),
                    self.python.clone(),
                );
                let executor = match &self.fork {
                    Some((server, code)) => executor.forked_by(server.clone(), code.clone()),
                    None => executor,
                };
                executor.execute(step).await
            }
            Err(e) => StepOutcome::failed(e.to_string()).not_retryable(),
        }
    }
}

/// How long the server's local engine keeps a finished run in memory: long enough for every
/// follower to read its end; its record keeps it after that.
const RUN_RETENTION: std::time::Duration = std::time::Duration::from_secs(600);

/// The server's engines: `local` running steps through `executor` (finished runs forgotten
/// after [`RUN_RETENTION`], so a server that runs for months holds only recent ones), and `kfp`
/// when given.
pub fn registry(executor: Arc<dyn StepExecutor>, kfp: Option<KfpEngine>) -> EngineRegistry {
    let local = LocalEngine::new(executor).with_retention(RUN_RETENTION);
    let registry = EngineRegistry::new().with(Arc::new(local));
    match kfp {
        Some(kfp) => registry.with(Arc::new(kfp)),
        None => registry,
    }
}

/// The server's `kfp` engine: each workflow compiles with its project's functions as the
/// server holds them when the run starts, and its steps report to `api_url` (this server, as
/// the pods reach it).
pub fn kfp_engine(projects: &Arc<Projects>, client: KfpClient, api_url: String) -> KfpEngine {
    let projects = Arc::downgrade(projects);
    let compile: CompileFn = Arc::new(move |request: &WorkflowRunRequest| {
        let projects = projects
            .upgrade()
            .ok_or_else(|| crate::Error::runtime("The server is stopping"))?;
        let project = projects.load(&request.project)?;
        let mut options = CompileOptions::new(project.name(), configured_image());
        options.functions = project
            .functions()?
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect();
        options.env.insert("BATON_API".to_string(), api_url.clone());
        crate::kfp::compile(&request.dag, &options)
    });
    KfpEngine::new(client, compile)
}
