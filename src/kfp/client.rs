//! A client of the Kubeflow Pipelines v2beta1 REST API: experiments and runs created from an
//! inline pipeline spec, with nothing uploaded.
//!
//! # Why this shape
//!
//! The `kfp` engine needs six calls (create, get, list, terminate, retry, delete a run) and an
//! experiment to put runs in, so this is a thin typed layer over `reqwest` rather than a
//! generated client. Every response field is optional with a default: KFP omits zero values
//! (an empty list is `{}`, a run that has not finished has no `finished_at`), and a newer server
//! may add fields, which are ignored.
//!
//! # Errors
//!
//! KFP answers errors as a `google.rpc.Status` (`{"code", "message", "details"}`). The HTTP status
//! picks the [`Error`] kind: 400 is [`Error::InvalidArgument`], 404 [`Error::NotFound`], 409
//! [`Error::Conflict`], 401/403 [`Error::InvalidArgument`] with a hint about the token or the
//! user header, anything else (5xx) [`Error::Runtime`]. A request that got no answer (refused,
//! timed out) or an answer that is not the JSON KFP sends is [`Error::Runtime`]. Every message
//! names the method, the URL and, when there is one, the run.
//!
//! # Retries
//!
//! Reads and deletes (`GET`, `DELETE`) are repeated with a doubling delay when they got no
//! answer or a 5xx answer: repeating them is harmless. Creating, terminating and retrying a run
//! are `POST`s and are never repeated: the first attempt may have been applied, and a second
//! create would start a second run.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// The API prefix of every call.
pub const API: &str = "/apis/v2beta1";

/// The header a Kubeflow gateway sets from the session, and multi-user KFP reads the user from.
pub const DEFAULT_USER_ID_HEADER: &str = "kubeflow-userid";

/// The experiment runs go into when `BATON_KFP_EXPERIMENT` is not set.
pub const DEFAULT_EXPERIMENT: &str = "baton";

/// The default delays before each repeat of a `GET` or `DELETE`: four repeats, about 3 s in all.
pub const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1600),
];

/// How long one request may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the KFP server is and how to talk to it.
///
/// The token is never shown: `Debug` prints it redacted and no error message includes it.
#[derive(Clone, Default)]
pub struct KfpConfig {
    /// The API's base URL: `http://ml-pipeline.kubeflow:8888`, or behind a Kubeflow gateway
    /// `https://host/pipeline`. `http` and `https` only.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// A header naming the user, `(name, value)`, for multi-user KFP behind a gateway that
    /// trusts it (`kubeflow-userid: alice@example.com`).
    pub user_id_header: Option<(String, String)>,
    /// The display name of the experiment runs are created in; created when missing.
    pub experiment: String,
    /// The namespace (Kubeflow profile) of the experiment and the runs, in multi-user KFP.
    pub namespace: Option<String>,
}

impl fmt::Debug for KfpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KfpConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("user_id_header", &self.user_id_header)
            .field("experiment", &self.experiment)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl KfpConfig {
    /// A configuration for the server at `url`, with no credentials, in the default experiment.
    pub fn new(url: impl Into<String>) -> Self {
        KfpConfig {
            url: url.into(),
            experiment: DEFAULT_EXPERIMENT.to_string(),
            ..KfpConfig::default()
        }
    }

    /// The configuration from the environment:
    ///
    /// | variable | meaning |
    /// | --- | --- |
    /// | `BATON_KFP_URL` | the API's base URL (required) |
    /// | `BATON_KFP_TOKEN` | a bearer token |
    /// | `BATON_KFP_USER` | the user to name in the user-id header |
    /// | `BATON_KFP_USER_HEADER` | that header's name (default `kubeflow-userid`) |
    /// | `BATON_KFP_EXPERIMENT` | the experiment's display name (default `baton`) |
    /// | `BATON_KFP_NAMESPACE` | the namespace (profile) of the experiment and runs |
    ///
    /// Empty variables count as unset.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`KfpConfig::from_env`] over any lookup (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let url = var("BATON_KFP_URL").ok_or_else(|| {
            Error::invalid_with_hint(
                "The KFP server is not configured: BATON_KFP_URL is not set",
                "set BATON_KFP_URL to the KFP API's address, e.g. `http://ml-pipeline.kubeflow:8888`",
            )
        })?;
        let user_id_header = var("BATON_KFP_USER").map(|user| {
            let header =
                var("BATON_KFP_USER_HEADER").unwrap_or_else(|| DEFAULT_USER_ID_HEADER.to_string());
            (header, user)
        });
        Ok(KfpConfig {
            url,
            token: var("BATON_KFP_TOKEN"),
            user_id_header,
            experiment: var("BATON_KFP_EXPERIMENT")
                .unwrap_or_else(|| DEFAULT_EXPERIMENT.to_string()),
            namespace: var("BATON_KFP_NAMESPACE"),
        })
    }
}

/// The state of a run or a task (`V2beta1RuntimeState`). An unknown value reads as
/// [`RuntimeState::Unspecified`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuntimeState {
    /// Accepted, not started.
    Pending,
    /// Started.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Not run (a false condition, a cache hit on some versions).
    Skipped,
    /// Failed; also how a terminated run ends on KFP 2.x.
    Failed,
    /// Being terminated.
    Canceling,
    /// Terminated.
    Canceled,
    /// Paused.
    Paused,
    /// Not set (also any value this build does not know).
    #[default]
    #[serde(rename = "RUNTIME_STATE_UNSPECIFIED", other)]
    Unspecified,
}

impl RuntimeState {
    /// Whether the state is final (`SUCCEEDED`, `FAILED`, `SKIPPED`, `CANCELED`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RuntimeState::Succeeded
                | RuntimeState::Failed
                | RuntimeState::Skipped
                | RuntimeState::Canceled
        )
    }
}

/// A `google.rpc.Status`: KFP's error body, and the `error` of a run or task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcStatus {
    /// The gRPC code (3 invalid argument, 5 not found, ...).
    pub code: i32,
    /// What went wrong.
    pub message: String,
    /// Extra details, as KFP sends them.
    pub details: Vec<Value>,
}

/// An experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Experiment {
    /// Its id.
    pub experiment_id: String,
    /// Its display name (unique per namespace).
    pub display_name: String,
    /// Its description.
    pub description: String,
    /// Its namespace, in multi-user KFP.
    pub namespace: String,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
}

/// One entry of a run's `state_history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateChange {
    /// When (RFC 3339).
    pub update_time: Option<String>,
    /// The state entered.
    pub state: RuntimeState,
    /// The error that came with it, if any.
    pub error: Option<RpcStatus>,
}

/// One task of a run (`run_details.task_details[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskDetail {
    /// The task's id.
    pub task_id: String,
    /// Its display name: the pipeline task's `taskInfo.name` (baton's step name).
    pub display_name: String,
    /// When it was created (RFC 3339).
    pub create_time: Option<String>,
    /// When it started.
    pub start_time: Option<String>,
    /// When it ended.
    pub end_time: Option<String>,
    /// Its state.
    pub state: RuntimeState,
    /// Why it failed, if it did.
    pub error: Option<RpcStatus>,
    /// The pod that ran it.
    pub pod_name: String,
}

/// The details of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunDetails {
    /// Its tasks, in no particular order.
    pub task_details: Vec<TaskDetail>,
}

/// A run, as KFP answers it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Run {
    /// Its id (a uuid).
    pub run_id: String,
    /// The experiment it belongs to.
    pub experiment_id: String,
    /// Its display name.
    pub display_name: String,
    /// Its description.
    pub description: String,
    /// The inline pipeline spec it runs, when it was created with one.
    pub pipeline_spec: Option<Value>,
    /// The runtime config it was created with (`parameters`, `pipeline_root`).
    pub runtime_config: Option<Value>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// When it was scheduled.
    pub scheduled_at: Option<String>,
    /// When it finished (absent, or the epoch, while it runs).
    pub finished_at: Option<String>,
    /// Its state.
    pub state: RuntimeState,
    /// Why it failed, if it did.
    pub error: Option<RpcStatus>,
    /// Its tasks.
    pub run_details: RunDetails,
    /// Every state it went through, with when.
    pub state_history: Vec<StateChange>,
}

/// One page of runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunPage {
    /// The runs of this page.
    pub runs: Vec<Run>,
    /// How many runs match in all.
    pub total_size: i64,
    /// The token of the next page; empty on the last page.
    pub next_page_token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExperimentPage {
    experiments: Vec<Experiment>,
}

/// How a [`Predicate`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The key equals the value.
    Equals,
    /// The key differs from the value.
    NotEquals,
    /// The key contains the value.
    IsSubstring,
}

/// One condition of a list filter, on a string field (`display_name`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    /// The field, as KFP names it (`display_name`).
    pub key: String,
    /// The comparison.
    pub op: Op,
    /// The value to compare with.
    pub value: String,
}

impl Predicate {
    /// `key` equals `value`.
    pub fn equals(key: &str, value: &str) -> Self {
        Predicate {
            key: key.into(),
            op: Op::Equals,
            value: value.into(),
        }
    }

    /// `key` contains `value`.
    pub fn contains(key: &str, value: &str) -> Self {
        Predicate {
            key: key.into(),
            op: Op::IsSubstring,
            value: value.into(),
        }
    }
}

/// The `filter` query parameter of a list: `{"predicates": [...]}` as JSON text.
fn filter_json(predicates: &[Predicate]) -> String {
    let predicates: Vec<Value> = predicates
        .iter()
        .map(|p| {
            let op = match p.op {
                Op::Equals => "EQUALS",
                Op::NotEquals => "NOT_EQUALS",
                Op::IsSubstring => "IS_SUBSTRING",
            };
            json!({"key": p.key, "operation": op, "string_value": p.value})
        })
        .collect();
    json!({ "predicates": predicates }).to_string()
}

/// What to list (see [`KfpClient::list_runs`]); every field optional.
#[derive(Debug, Clone, Default)]
pub struct ListRuns {
    /// Only runs matching every predicate.
    pub filter: Vec<Predicate>,
    /// At most this many runs per page.
    pub page_size: Option<u32>,
    /// The page to read: a previous page's `next_page_token`.
    pub page_token: Option<String>,
    /// The order, `created_at desc` say.
    pub sort_by: Option<String>,
    /// Only runs of this experiment.
    pub experiment_id: Option<String>,
}

/// What to create a run from (see [`KfpClient::create_run`]).
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// The run's display name.
    pub display_name: &'a str,
    /// Its description.
    pub description: &'a str,
    /// The pipeline spec (JSON, `schemaVersion` 2.1.0), or `{pipeline_spec, platform_spec}`.
    pub pipeline_spec: &'a Value,
    /// The pipeline parameters, typed as the spec's `root.inputDefinitions` declares them.
    pub parameters: &'a Map<String, Value>,
}

/// A client of one KFP API server. Cloning is cheap and clones share one connection pool and
/// the experiment id once it is known.
#[derive(Clone)]
pub struct KfpClient {
    http: reqwest::Client,
    base: String,
    config: KfpConfig,
    retry_delays: Vec<Duration>,
    timeout: Duration,
    experiment: std::sync::Arc<OnceCell<String>>,
}

impl fmt::Debug for KfpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KfpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for KfpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KFP at {}", self.base)
    }
}

impl KfpClient {
    /// A client for `config`. A URL that is not `http://` or `https://`, or an empty token, is
    /// [`Error::InvalidArgument`].
    pub fn new(config: KfpConfig) -> Result<Self> {
        let url = url::Url::parse(&config.url).map_err(|e| {
            Error::invalid_from(format!("Malformed KFP URL `{}`", config.url), e)
                .with_hint("give the KFP API's address, e.g. `http://ml-pipeline.kubeflow:8888`")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid(format!(
                "Unsupported KFP URL `{}`: only `http://` and `https://` are supported",
                config.url
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::invalid(format!(
                "Malformed KFP URL `{}`: it must not have a query or fragment",
                config.url
            )));
        }
        if config.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(Error::invalid_with_hint(
                "The KFP token is empty",
                "set BATON_KFP_TOKEN to a token KFP accepts, or unset it",
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal_from("Failed to set up the HTTP client", e))?;
        Ok(KfpClient {
            http,
            base: url.as_str().trim_end_matches('/').to_string(),
            config,
            retry_delays: RETRY_DELAYS.to_vec(),
            timeout: DEFAULT_TIMEOUT,
            experiment: Default::default(),
        })
    }

    /// This client, waiting `delays` before each repeat of a `GET` or `DELETE` (none: never
    /// repeat).
    #[must_use]
    pub fn with_retry_delays(mut self, delays: Vec<Duration>) -> Self {
        self.retry_delays = delays;
        self
    }

    /// This client, giving up on a request after `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The API's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The configuration the client was built from.
    pub fn config(&self) -> &KfpConfig {
        &self.config
    }

    /// The URL of a run.
    pub fn run_url(&self, run_id: &str) -> String {
        self.url(&format!("/runs/{}", segment(run_id)))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{API}{path}", self.base)
    }

    /// Whether the server answers (`GET /healthz`); its body (`{multi_user, ...}`).
    pub async fn healthz(&self) -> Result<Value> {
        self.json(Method::GET, &self.url("/healthz"), &[], None, None)
            .await
    }

    /// The experiment called `display_name` (in the configured namespace), if any.
    pub async fn find_experiment(&self, display_name: &str) -> Result<Option<Experiment>> {
        let mut query = vec![(
            "filter",
            filter_json(&[Predicate::equals("display_name", display_name)]),
        )];
        if let Some(ns) = &self.config.namespace {
            query.push(("namespace", ns.clone()));
        }
        let page: ExperimentPage = self
            .json(Method::GET, &self.url("/experiments"), &query, None, None)
            .await?;
        Ok(page
            .experiments
            .into_iter()
            .find(|e| e.display_name == display_name))
    }

    /// Creates an experiment called `display_name` in the configured namespace.
    pub async fn create_experiment(&self, display_name: &str) -> Result<Experiment> {
        let mut body =
            json!({"display_name": display_name, "description": "runs started by baton"});
        if let Some(ns) = &self.config.namespace {
            body["namespace"] = json!(ns);
        }
        self.json(
            Method::POST,
            &self.url("/experiments"),
            &[],
            Some(body),
            None,
        )
        .await
    }

    /// The id of the configured experiment, found by display name or created; looked up once
    /// per client.
    pub async fn experiment_id(&self) -> Result<String> {
        self.experiment
            .get_or_try_init(|| async {
                let name = &self.config.experiment;
                if let Some(found) = self.find_experiment(name).await? {
                    return Ok(found.experiment_id);
                }
                match self.create_experiment(name).await {
                    Ok(created) => Ok(created.experiment_id),
                    // Someone else created it between the list and the create.
                    Err(e) if e.kind() == crate::error::ErrorKind::Conflict => self
                        .find_experiment(name)
                        .await?
                        .map(|e| e.experiment_id)
                        .ok_or(e),
                    Err(e) => Err(e),
                }
            })
            .await
            .cloned()
    }

    /// Creates a run of an inline pipeline spec in the configured experiment (`POST /runs`).
    /// Never repeated: a second attempt would start a second run.
    pub async fn create_run(&self, new: &NewRun<'_>) -> Result<Run> {
        let experiment_id = self.experiment_id().await?;
        let body = json!({
            "experiment_id": experiment_id,
            "display_name": new.display_name,
            "description": new.description,
            "pipeline_spec": new.pipeline_spec,
            "runtime_config": {"parameters": new.parameters},
        });
        self.json(Method::POST, &self.url("/runs"), &[], Some(body), None)
            .await
    }

    /// Run `run_id` (`GET /runs/{id}`).
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.json(Method::GET, &self.run_url(run_id), &[], None, Some(run_id))
            .await
    }

    /// One page of runs (`GET /runs`), in the configured namespace.
    pub async fn list_runs(&self, list: &ListRuns) -> Result<RunPage> {
        let mut query = Vec::new();
        if !list.filter.is_empty() {
            query.push(("filter", filter_json(&list.filter)));
        }
        if let Some(size) = list.page_size {
            query.push(("page_size", size.to_string()));
        }
        if let Some(token) = &list.page_token {
            query.push(("page_token", token.clone()));
        }
        if let Some(sort) = &list.sort_by {
            query.push(("sort_by", sort.clone()));
        }
        if let Some(id) = &list.experiment_id {
            query.push(("experiment_id", id.clone()));
        }
        if let Some(ns) = &self.config.namespace {
            query.push(("namespace", ns.clone()));
        }
        self.json(Method::GET, &self.url("/runs"), &query, None, None)
            .await
    }

    /// Asks run `run_id` to stop (`POST /runs/{id}:terminate`). KFP refuses (400) a run that
    /// is not pending or running.
    pub async fn terminate_run(&self, run_id: &str) -> Result<()> {
        let url = format!("{}:terminate", self.run_url(run_id));
        let _: Value = self
            .json(Method::POST, &url, &[], None, Some(run_id))
            .await?;
        Ok(())
    }

    /// Runs the failed tasks of run `run_id` again, in place (`POST /runs/{id}:retry`). KFP
    /// refuses (409) a run that has not failed.
    pub async fn retry_run(&self, run_id: &str) -> Result<()> {
        let url = format!("{}:retry", self.run_url(run_id));
        let _: Value = self
            .json(Method::POST, &url, &[], None, Some(run_id))
            .await?;
        Ok(())
    }

    /// Deletes run `run_id` (`DELETE /runs/{id}`), stopping it if it runs.
    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        let _: Value = self
            .json(
                Method::DELETE,
                &self.run_url(run_id),
                &[],
                None,
                Some(run_id),
            )
            .await?;
        Ok(())
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        run: Option<&str>,
    ) -> Result<T> {
        let bytes = self.call(&method, url, query, body, run).await?;
        // An empty body is an empty message (`{}`).
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map_err(|e| {
            Error::runtime_from(
                format!(
                    "The answer to `{method} {url}`{} is not the JSON KFP sends",
                    on_run(run)
                ),
                e,
            )
        })
    }

    /// Sends one request and returns the body of a successful answer, repeating a `GET` or
    /// `DELETE` that got no answer or a 5xx one.
    async fn call(
        &self,
        method: &Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        run: Option<&str>,
    ) -> Result<Bytes> {
        let repeatable = matches!(*method, Method::GET | Method::DELETE);
        let mut delays = self.retry_delays.iter();
        let mut attempts = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url)
                .query(query)
                .timeout(self.timeout);
            if let Some(token) = &self.config.token {
                request = request.bearer_auth(token);
            }
            if let Some((name, value)) = &self.config.user_id_header {
                request = request.header(name.as_str(), value.as_str());
            }
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    match response.bytes().await {
                        Ok(bytes) if status.is_success() => return Ok(bytes),
                        Ok(bytes) if status.is_server_error() => {
                            Failure::Answer(self.answer_error(method, url, run, status, &bytes))
                        }
                        Ok(bytes) => {
                            return Err(self.answer_error(method, url, run, status, &bytes))
                        }
                        Err(e) => Failure::NoAnswer(e),
                    }
                }
                Err(e) => Failure::NoAnswer(e),
            };
            match (repeatable, delays.next()) {
                (true, Some(delay)) => {
                    tracing::debug!("{method} {url} failed; repeating it in {delay:?}");
                    tokio::time::sleep(*delay).await;
                    attempts += 1;
                }
                _ => {
                    return Err(match failure {
                        Failure::Answer(e) => e,
                        Failure::NoAnswer(e) => self.no_answer(method, url, run, attempts, e),
                    })
                }
            }
        }
    }

    fn no_answer(
        &self,
        method: &Method,
        url: &str,
        run: Option<&str>,
        attempts: usize,
        e: reqwest::Error,
    ) -> Error {
        let tried = if attempts > 1 {
            format!(" (tried {attempts} times)")
        } else {
            String::new()
        };
        let what = if e.is_timeout() {
            "got no answer in time"
        } else {
            "got no answer"
        };
        Error::runtime_from(
            format!("`{method} {url}`{}{what}{tried}", on_run(run)),
            e.without_url(),
        )
        .with_hint(format!("check that KFP is reachable at {}", self.base))
    }

    /// The [`Error`] of an error answer: its kind from the HTTP status, its words from KFP's
    /// `google.rpc.Status` body (or the body itself when it is not one).
    fn answer_error(
        &self,
        method: &Method,
        url: &str,
        run: Option<&str>,
        status: StatusCode,
        body: &[u8],
    ) -> Error {
        let text = String::from_utf8_lossy(body);
        let said = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                ["message", "error_message", "error"]
                    .iter()
                    .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_string))
            })
            .unwrap_or_else(|| text.trim().to_string());
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        };
        let message = format!(
            "KFP answered HTTP {} to `{method} {url}`{}{said}",
            status.as_u16(),
            on_run(run)
        );
        match status.as_u16() {
            400 => Error::invalid(message),
            401 | 403 => {
                let hint = match (&self.config.token, &self.config.user_id_header) {
                    (None, None) => {
                        "KFP wants credentials: set BATON_KFP_TOKEN to a token it accepts, or \
                         BATON_KFP_USER to the user a trusted gateway would name"
                    }
                    _ => {
                        "KFP refused the credentials it was given: check BATON_KFP_TOKEN (or \
                         BATON_KFP_USER and BATON_KFP_USER_HEADER)"
                    }
                };
                Error::invalid_with_hint(message, hint)
            }
            404 => Error::not_found(message),
            409 => Error::conflict(message),
            s if s >= 500 => Error::runtime(message),
            _ => Error::bad_request(message),
        }
    }
}

enum Failure {
    Answer(Error),
    NoAnswer(reqwest::Error),
}

fn on_run(run: Option<&str>) -> String {
    run.map(|r| format!(" (run `{r}`)")).unwrap_or_default()
}

/// `value` as one path segment: everything but unreserved characters percent-encoded.
fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A KFP time (RFC 3339) as a UTC time; absent, unreadable or the epoch (KFP's "not set") is
/// `None`.
pub fn parse_time(text: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    let time = chrono::DateTime::parse_from_rfc3339(text?).ok()?;
    (time.timestamp() > 0).then(|| time.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_env() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = KfpConfig::from_lookup(env(&[])).unwrap_err();
        assert!(e.to_string().contains("BATON_KFP_URL"), "{e}");
        let c = KfpConfig::from_lookup(env(&[
            ("BATON_KFP_URL", "http://kfp:8888"),
            ("BATON_KFP_USER", "alice@example.com"),
            ("BATON_KFP_TOKEN", ""),
        ]))
        .unwrap();
        assert_eq!(c.url, "http://kfp:8888");
        assert_eq!(c.token, None);
        assert_eq!(
            c.user_id_header,
            Some(("kubeflow-userid".into(), "alice@example.com".into()))
        );
        assert_eq!(c.experiment, "baton");
        let c = KfpConfig::from_lookup(env(&[
            ("BATON_KFP_URL", "https://host/pipeline"),
            ("BATON_KFP_TOKEN", "t0k"),
            ("BATON_KFP_USER", "bob"),
            ("BATON_KFP_USER_HEADER", "x-user"),
            ("BATON_KFP_EXPERIMENT", "exp"),
            ("BATON_KFP_NAMESPACE", "team"),
        ]))
        .unwrap();
        assert_eq!(c.token.as_deref(), Some("t0k"));
        assert_eq!(c.user_id_header, Some(("x-user".into(), "bob".into())));
        assert_eq!(
            (c.experiment.as_str(), c.namespace.as_deref()),
            ("exp", Some("team"))
        );
        assert!(!format!("{c:?}").contains("t0k"));
    }

    #[test]
    fn runs_read_with_every_field_missing_and_unknown_states() {
        let run: Run = serde_json::from_str("{}").unwrap();
        assert_eq!(run.state, RuntimeState::Unspecified);
        let run: Run = serde_json::from_str(
            r#"{"run_id": "r", "state": "SOMETHING_NEW", "run_details": {"task_details": [{"display_name": "a", "state": "RUNNING"}]}, "extra": 1}"#,
        )
        .unwrap();
        assert_eq!(run.state, RuntimeState::Unspecified);
        assert_eq!(run.run_details.task_details[0].state, RuntimeState::Running);
    }

    #[test]
    fn the_filter_is_kfp_json() {
        assert_eq!(
            filter_json(&[Predicate::equals("display_name", "x")]),
            r#"{"predicates":[{"key":"display_name","operation":"EQUALS","string_value":"x"}]}"#
        );
    }

    #[test]
    fn times_treat_the_epoch_as_unset() {
        assert_eq!(parse_time(Some("1970-01-01T00:00:00Z")), None);
        assert_eq!(parse_time(Some("garbage")), None);
        assert!(parse_time(Some("2026-01-02T03:04:05Z")).is_some());
    }

    #[test]
    fn urls_must_be_http_or_https() {
        assert!(KfpClient::new(KfpConfig::new("https://host/pipeline")).is_ok());
        let e = KfpClient::new(KfpConfig::new("ftp://host")).unwrap_err();
        assert!(
            e.to_string().contains("only `http://` and `https://`"),
            "{e}"
        );
    }
}
