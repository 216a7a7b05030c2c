//! The remote engine: workflow runs hosted by a `baton server`, driven over HTTP.
//!
//! Every call is one request of the engine protocol ([`crate::engine::wire`]); the server runs
//! the workflow with its own local engine, so the steps execute (and pull their code) on the
//! server's host. Events are streamed back, one JSON document per line, over a single request
//! that stays open until the run finishes: a follower never polls per step.

use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::db::ApiClient;
use crate::engine::wire::{
    EngineRunBody, RunIdBody, StreamLine, WireOptions, WorkflowRetryBody, WorkflowSubmitBody,
    ENGINE_RUNS_PATH,
};
use crate::engine::{
    check_retryable, refuse_deploy_steps, wait_by_following, EngineKind, InnerEngine, RunOptions,
    Subscription, WorkflowEngine, WorkflowRunId, WorkflowRunRequest, WorkflowRunStatus,
};
use crate::error::{Error, Result};
use crate::model::WorkflowRunRecord;
use crate::workflow::Dag;

/// A workflow engine whose runs live on a `baton server`.
#[derive(Clone, Debug)]
pub struct RemoteEngine {
    api: ApiClient,
}

impl RemoteEngine {
    /// An engine for the server at `base` (`http://host:port`), authenticating with `token`
    /// when given.
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        Ok(RemoteEngine {
            api: ApiClient::new(base, token)?,
        })
    }

    /// The server's address.
    pub fn base_url(&self) -> &str {
        self.api.base_url()
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.api.get(&self.api.url(path), &[]).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.api
            .send(Method::POST, &self.api.url(path), &[], body)
            .await
    }

    /// Runs workflow `name` of `project` on the server (`POST
    /// /api/baton/v1/projects/{project}/workflows/{name}/runs`): the server stores the project
    /// definition given in `body`, resolves the workflow's source and records the run. Answers
    /// the run's first record.
    pub async fn submit_workflow(
        &self,
        project: &str,
        name: &str,
        body: &WorkflowSubmitBody,
    ) -> Result<WorkflowRunRecord> {
        let path = format!("/api/baton/v1/projects/{project}/workflows/{name}/runs");
        self.post(&path, body).await
    }

    /// Runs again on the server what did not succeed in recorded run `id` of `project`.
    pub async fn retry_workflow(
        &self,
        project: &str,
        id: &str,
        body: &WorkflowRetryBody,
    ) -> Result<WorkflowRunRecord> {
        let path = format!("/api/baton/v1/projects/{project}/workflow-runs/{id}/retry");
        self.post(&path, body).await
    }

    /// Asks recorded run `id` of `project` to stop.
    pub async fn terminate_workflow(&self, project: &str, id: &str) -> Result<()> {
        let path = format!("/api/baton/v1/projects/{project}/workflow-runs/{id}/terminate");
        let _: serde_json::Value = self.post(&path, &serde_json::json!({})).await?;
        Ok(())
    }

    /// Recorded run `id` of `project`, as the server has it now.
    pub async fn workflow_run(&self, project: &str, id: &str) -> Result<WorkflowRunRecord> {
        let path = format!("/api/baton/v1/projects/{project}/workflow-runs/{id}");
        self.get(&path).await
    }

    async fn start(
        &self,
        request: WorkflowRunRequest,
        options: RunOptions,
        previous: Option<WorkflowRunStatus>,
    ) -> Result<WorkflowRunId> {
        self.check(&request.dag)?;
        let body = EngineRunBody {
            project: request.project,
            graph: request.dag.workflow().clone(),
            args: request.args,
            options: WireOptions::from(&options),
            previous,
        };
        let started: RunIdBody = self.post(ENGINE_RUNS_PATH, &body).await?;
        Ok(started.id.into())
    }
}

#[async_trait]
impl WorkflowEngine for RemoteEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Remote {
            inner: Some(InnerEngine::Local),
        }
    }

    /// The server runs the workflow with its local engine, which cannot deploy.
    fn check(&self, dag: &Dag) -> Result<()> {
        refuse_deploy_steps(dag, "the server's local engine")
    }

    async fn run(&self, request: WorkflowRunRequest, options: RunOptions) -> Result<WorkflowRunId> {
        self.start(request, options, None).await
    }

    async fn status(&self, id: &WorkflowRunId) -> Result<WorkflowRunStatus> {
        let path = format!("{ENGINE_RUNS_PATH}/{id}");
        self.get(&path).await
    }

    async fn subscribe(&self, id: &WorkflowRunId) -> Result<Subscription> {
        let path = format!("{ENGINE_RUNS_PATH}/{id}/events");
        let response = self.api.open_stream(&self.api.url(&path)).await?;
        let mut lines = Box::pin(json_lines(response.bytes_stream()));
        let status = match lines.next().await {
            Some(Ok(StreamLine::Status(status))) => status,
            Some(Ok(StreamLine::Event(_))) | None => {
                return Err(Error::runtime(
                    "The server's event stream did not start with the run's status",
                ))
            }
            Some(Err(e)) => return Err(e),
        };
        let events = lines
            .take_while(|line| std::future::ready(line.is_ok()))
            .filter_map(|line| {
                std::future::ready(match line {
                    Ok(StreamLine::Event(event)) => Some(event),
                    _ => None,
                })
            });
        Ok(Subscription {
            status,
            events: events.fuse().boxed(),
        })
    }

    async fn wait(
        &self,
        id: &WorkflowRunId,
        timeout: Option<Duration>,
    ) -> Result<WorkflowRunStatus> {
        wait_by_following(self, id, timeout).await
    }

    async fn terminate(&self, id: &WorkflowRunId) -> Result<()> {
        let path = format!("{ENGINE_RUNS_PATH}/{id}/terminate");
        let _: serde_json::Value = self.post(&path, &serde_json::json!({})).await?;
        Ok(())
    }

    async fn retry(
        &self,
        previous: &WorkflowRunStatus,
        request: WorkflowRunRequest,
        options: RunOptions,
    ) -> Result<WorkflowRunId> {
        check_retryable(previous)?;
        self.start(request, options, Some(previous.clone())).await
    }
}

/// The stream lines of a response body, each a JSON document ending in a newline.
fn json_lines(
    body: impl Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
) -> impl Stream<Item = Result<StreamLine>> + Send {
    futures::stream::unfold(
        (Box::pin(body), Vec::<u8>::new(), false),
        |(mut body, mut buffer, done)| async move {
            loop {
                if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let parsed = serde_json::from_slice::<StreamLine>(&line)
                        .map_err(|e| Error::runtime_from("The server sent a malformed event", e));
                    return Some((parsed, (body, buffer, done)));
                }
                if done {
                    return None;
                }
                match body.next().await {
                    Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
                    Some(Err(e)) => {
                        let error = Error::runtime_from("The run's event stream broke", e);
                        return Some((Err(error), (body, Vec::new(), true)));
                    }
                    None => return None,
                }
            }
        },
    )
}
