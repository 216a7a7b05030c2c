//! Function runs: `submit_job`, reading a run, and its log.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::db::RunFilter;
use crate::error::{Error, ErrorKind, IoResultExt};
use crate::launcher::RunRequest;
use crate::model::HyperParamOptions;
use crate::server::api_error::ApiResult;
use crate::server::body::{JsonBody, Query};
use crate::server::AppState;

/// The body of `POST /api/v1/submit_job`.
#[derive(Debug, Deserialize)]
pub struct SubmitJob {
    task: Task,
    /// A cron schedule: not served yet.
    schedule: Option<Value>,
}

/// The run the client wants: its metadata and spec.
#[derive(Debug, Deserialize)]
struct Task {
    metadata: TaskMetadata,
    #[serde(default)]
    spec: TaskSpec,
}

#[derive(Debug, Deserialize)]
struct TaskMetadata {
    project: String,
    uid: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
struct TaskSpec {
    /// `<project>/<name>[@<hash>|:<tag>]`.
    function: Option<String>,
    handler: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    /// Hyperparameters: the run's iterations each run one parameter set.
    #[serde(default)]
    hyperparams: Option<Map<String, Value>>,
    /// How they are expanded and judged; MLRun's client sends every field, unset ones `null`.
    #[serde(default)]
    hyper_param_options: Option<HyperParamOptions>,
    /// `run(selector=...)`: the best iteration's selector when the options name none.
    #[serde(default)]
    selector: Option<String>,
    /// `run(strategy=...)`: the strategy when the options name none.
    #[serde(default)]
    strategy: Option<String>,
}

impl TaskSpec {
    /// The hyper-parameter options as MLRun combines them: the options' own fields first, then
    /// the spec's `selector` and `strategy`. `None` when the task has no hyperparameters.
    fn hyper_param_options(&self) -> Option<HyperParamOptions> {
        self.hyperparams.as_ref().filter(|h| !h.is_empty())?;
        let mut options = self.hyper_param_options.clone().unwrap_or_default();
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        options.selector = given(&options.selector).or_else(|| given(&self.selector));
        options.strategy = given(&options.strategy).or_else(|| given(&self.strategy));
        Some(options)
    }
}

/// `POST /api/v1/submit_job`: records the run under the client's uid, answers it (`created`),
/// and executes it on this server: the runner pulls the function's code when it starts.
pub async fn submit_job(
    State(state): State<Arc<AppState>>,
    JsonBody(job): JsonBody<SubmitJob>,
) -> ApiResult<Json<Value>> {
    if job.schedule.as_ref().is_some_and(|s| !s.is_null()) {
        return Err(Error::bad_request(
            "Scheduled jobs are not supported by this server yet; submit the run without a schedule",
        )
        .into());
    }
    let task = job.task;
    let project = task.metadata.project;
    let function = task
        .spec
        .function
        .as_deref()
        .map(function_name)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::bad_request("task.spec.function must name the function to run"))?;
    let baton = state.projects.baton(&project).await?;
    let labels = task
        .metadata
        .labels
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let hyper_param_options = task.spec.hyper_param_options();
    let submitted = baton
        .submit_run(RunRequest {
            function,
            handler: task.spec.handler.filter(|h| !h.is_empty()),
            params: task.spec.parameters,
            inputs: task.spec.inputs,
            labels,
            uid: task.metadata.uid,
            hyperparams: task.spec.hyperparams.unwrap_or_default(),
            hyper_param_options,
            ..RunRequest::default()
        })
        .await?;
    let run = submitted.run;
    state.jobs.start_run(baton, run.clone());
    Ok(Json(json!({ "data": run })))
}

/// The function's name in `<project>/<name>[@<hash>|:<tag>]`.
fn function_name(reference: &str) -> String {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    let name = name.split('@').next().unwrap_or(name);
    name.split(':').next().unwrap_or(name).to_string()
}

/// `GET /api/v1/projects/{project}/runs/{uid}`: a run, settled first when its runner is gone.
/// A workflow run's id answers as MLRun's workflow-runner run of that workflow.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((project, uid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let baton = state.projects.baton(&project).await?;
    match baton.run(&uid).await {
        Ok(run) => Ok(Json(json!({ "data": run }))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let workflow = baton.workflow_run(&uid).await.map_err(|_| e)?;
            Ok(Json(
                json!({ "data": super::workflows::runner_run(&workflow) }),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Query of `GET .../runs`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// `key=value`: only runs carrying that label.
    label: Option<String>,
}

/// `GET /api/v1/projects/{project}/runs`: the project's runs, newest first, filtered by one
/// `label=key=value` (the client lists a workflow's step runs with `label=workflow=<id>`).
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let baton = state.projects.baton(&project).await?;
    let mut filter = RunFilter::default();
    if let Some(label) = query.label.filter(|l| !l.is_empty()) {
        let (key, value) = label.split_once('=').ok_or_else(|| {
            Error::bad_request(format!("label `{label}` is not of the form key=value"))
        })?;
        filter.labels.push((key.to_string(), value.to_string()));
    }
    let runs = baton.runs(&filter).await?;
    Ok(Json(json!({ "runs": runs, "pagination": {} })))
}

/// Query of `GET .../logs/{uid}`.
#[derive(Debug, Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    offset: u64,
    /// How many bytes at most; absent or negative means all.
    size: Option<i64>,
}

/// The most log bytes one request returns.
const MAX_LOG_CHUNK: u64 = 4 * 1024 * 1024;

/// `GET /api/v1/projects/{project}/logs/{uid}`: the run's log bytes from `offset`, at most
/// `size`, with the run's state in `x-mlrun-run-state` (the client keeps polling while it is
/// not final).
pub async fn logs(
    State(state): State<Arc<AppState>>,
    Path((project, uid)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> ApiResult<(HeaderMap, Vec<u8>)> {
    let baton = state.projects.baton(&project).await?;
    let state = match baton.run(&uid).await {
        Ok(run) => run.status.state.as_str(),
        // A workflow run is served as its runner run, whose log is empty.
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let workflow = baton.workflow_run(&uid).await.map_err(|_| e)?;
            super::workflows::runner_state(workflow.state)
        }
        Err(e) => return Err(e.into()),
    };
    let size = match query.size {
        Some(size) if size >= 0 => (size as u64).min(MAX_LOG_CHUNK),
        _ => MAX_LOG_CHUNK,
    };
    let path = baton.logs().path(&uid);
    let bytes = tokio::task::spawn_blocking(move || read_chunk(&path, query.offset, size))
        .await
        .map_err(|e| Error::internal_from("Reading the log failed", e))??;
    let mut headers = HeaderMap::new();
    headers.insert("x-mlrun-run-state", state.parse().expect("ascii"));
    Ok((headers, bytes))
}

/// Up to `size` bytes of the file at `path` from `offset`; a missing file has none yet.
fn read_chunk(path: &std::path::Path, offset: u64, size: u64) -> crate::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("Failed to open `{}`", path.display()), e)),
    };
    file.seek(SeekFrom::Start(offset))
        .io_context(|| format!("Failed to read `{}`", path.display()))?;
    let mut bytes = Vec::new();
    file.take(size)
        .read_to_end(&mut bytes)
        .io_context(|| format!("Failed to read `{}`", path.display()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn function_names_drop_project_hash_and_tag() {
        assert_eq!(function_name("my-project/my-func@abc123"), "my-func");
        assert_eq!(function_name("my-project/my-func:latest"), "my-func");
        assert_eq!(function_name("my-func"), "my-func");
    }
}
