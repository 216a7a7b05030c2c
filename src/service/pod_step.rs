//! One workflow step in a KFP pod: `baton runner --kfp`.
//!
//! A pod has no project folder and no recorded run: the compiled pipeline hands the runner the
//! step's function definition and parameters, and the environment names the `baton server`.
//! The runner records a new run there (labelled with the workflow and the step), pulls the
//! function's code when it starts (so a new artifact version is picked up without a rebuild),
//! runs the handler in this process's runner, and writes each declared output to the file KFP
//! reads it from, as JSON text.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::db::Db;
use crate::error::{Error, IoResultExt, Result};
use crate::launcher::{self, RunRequest};
use crate::model::{
    FunctionEntry, HyperParamOptions, ProjectFile, ProjectMetadata, ProjectSpec, RunObject,
    RunState,
};
use crate::project::{MemoryProjectStore, Project};
use crate::runner::{run_step, StepEnv};

/// What a compiled step hands its runner.
#[derive(Debug, Clone)]
pub struct PodStep {
    /// The project.
    pub project: String,
    /// The KFP run (`{{$.pipeline_job_uuid}}`), the workflow label of the step's run.
    pub workflow: String,
    /// The step's name.
    pub step: String,
    /// The function's definition, as the project had it when the pipeline was compiled.
    pub function: FunctionEntry,
    /// The step's handler override.
    pub handler: Option<String>,
    /// The parameters, typed.
    pub params: Map<String, Value>,
    /// Data inputs.
    pub inputs: BTreeMap<String, String>,
    /// Labels for the step's run (besides `workflow` and `workflow-step`).
    pub labels: BTreeMap<String, String>,
    /// Where each declared output goes.
    pub outputs: BTreeMap<String, PathBuf>,
    /// The step's hyperparameters (none: a single run).
    pub hyperparams: Map<String, Value>,
    /// The step's hyper-parameter options.
    pub hyper_param_options: Option<HyperParamOptions>,
}

/// Records and executes `step` on the server whose database is `db`, then writes its outputs.
/// Returns the final run; a run that did not complete is returned too (the caller exits
/// non-zero), while a completed run missing a declared output is an error.
pub async fn run_pod_step(
    step: PodStep,
    db: Arc<dyn Db>,
    env: &StepEnv,
    cancel: impl Future<Output = ()>,
) -> Result<RunObject> {
    let home = tempfile::tempdir().io_context(|| "Failed to create a scratch folder".into())?;
    let function = serde_json::to_value(&step.function).expect("functions serialize");
    let store = MemoryProjectStore::new(ProjectFile {
        kind: "project".into(),
        metadata: ProjectMetadata {
            name: step.project.clone(),
            extra: Default::default(),
        },
        spec: ProjectSpec {
            functions: vec![function],
            ..ProjectSpec::default()
        },
        status: Default::default(),
        extra: Default::default(),
    });
    let project = Project::open(home.path(), Arc::new(store))?;
    let mut labels = step.labels.clone();
    labels.insert("workflow".to_string(), step.workflow.clone());
    labels.insert("workflow-step".to_string(), step.step.clone());
    let run = launcher::submit(
        &project,
        db.as_ref(),
        RunRequest {
            function: step.function.name.clone(),
            handler: step.handler.clone(),
            params: step.params.clone(),
            inputs: step.inputs.clone(),
            labels,
            uid: None,
            hyperparams: step.hyperparams.clone(),
            hyper_param_options: step.hyper_param_options.clone(),
            ..RunRequest::default()
        },
    )
    .await?;
    let run = run_step(db, &step.project, &run.metadata.uid, env, cancel).await?;
    if run.status.state == RunState::Completed {
        write_outputs(&run, &step.outputs)?;
    }
    Ok(run)
}

/// Writes each declared output of a completed run, as JSON text, where KFP reads it.
fn write_outputs(run: &RunObject, outputs: &BTreeMap<String, PathBuf>) -> Result<()> {
    let results = run.step_outputs();
    for (key, path) in outputs {
        let value = results.get(key).ok_or_else(|| {
            Error::runtime(format!(
                "Step output `{key}` was declared, but run `{}` returned no such result (it returned: {})",
                run.metadata.uid,
                results.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .io_context(|| format!("Failed to create `{}`", dir.display()))?;
        }
        std::fs::write(path, value.to_string())
            .io_context(|| format!("Failed to write output `{key}` to `{}`", path.display()))?;
    }
    Ok(())
}
