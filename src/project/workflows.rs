//! `set_workflow` and resolving a workflow's source at execution time.

use std::path::PathBuf;

use croner::parser::{CronParser, Seconds, Year};
use serde_json::{Map, Value};

use super::Project;
use crate::artifact::check_role;
use crate::code::CodeCache;
use crate::datastore::profile::ProfileAccess;
use crate::datastore::DataStore;
use crate::db::Db;
use crate::engine::EngineKind;
use crate::error::{Error, Result};
use crate::model::{Artifact, CodeType, ResolvedCodeRecord, WorkflowSpec};
use crate::uri::{is_remote_url, is_store_uri, StoreUri};
use crate::workflow::ArgSchemaEntry;

/// File suffixes a workflow source may have.
const WORKFLOW_SUFFIXES: [&str; 3] = [".py", ".yaml", ".yml"];

/// Archive suffixes, refused for workflows with a dedicated message.
const ARCHIVE_SUFFIXES: [&str; 5] = [".zip", ".tar.gz", ".tgz", ".tar", ".gz"];

/// What `set-workflow` accepts.
#[derive(Debug, Clone, Default)]
pub struct SetWorkflowRequest {
    /// Workflow name.
    pub name: String,
    /// Source: a `store://` workflow artifact or a local `.py`/`.yaml`/`.yml` path.
    pub path: String,
    /// Engine name.
    pub engine: Option<String>,
    /// Workflow handler.
    pub handler: Option<String>,
    /// Default arguments.
    pub args: Map<String, Value>,
    /// 5-field cron schedule.
    pub schedule: Option<String>,
    /// Argument schema.
    pub args_schema: Vec<ArgSchemaEntry>,
}

/// A workflow source made available locally for one execution.
#[derive(Debug, Clone)]
pub struct ResolvedWorkflow {
    /// The workflow file.
    pub file: PathBuf,
    /// What was resolved (the artifact uid and digest for a store source).
    pub record: ResolvedCodeRecord,
}

/// The five crontab fields MLRun's scheduler takes, in order, with the values each accepts.
const CRON_FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day-of-week", "0-7 or sun-sat"),
];

/// Checks a cron schedule the way MLRun's scheduler parses it: exactly five crontab fields
/// (`ScheduleCronTrigger.from_crontab`), each within its range.
///
/// `@hourly`-style macros are refused, as MLRun refuses them (one field, not five); the hint
/// gives the five-field equivalent. The error names the first field that is out of range.
pub fn check_schedule(schedule: &str) -> Result<()> {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        let hint = match macro_equivalent(schedule.trim()) {
            Some(cron) => format!("MLRun takes no `@` macros: write `{cron}` instead"),
            None => "a schedule is `minute hour day-of-month month day-of-week`, e.g. `0 * * * *`"
                .to_string(),
        };
        return Err(Error::invalid_with_hint(
            format!(
                "Wrong number of fields in crontab expression `{schedule}`; got {}, expected 5",
                fields.len()
            ),
            hint,
        ));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let Err(whole) = parser.parse(schedule) else {
        return Ok(());
    };
    // croner does not say which field failed: parse each one alone, the others left as `*`.
    for (index, (name, range)) in CRON_FIELDS.iter().enumerate() {
        let mut alone = ["*"; 5];
        alone[index] = fields[index];
        if parser.parse(&alone.join(" ")).is_err() {
            return Err(Error::invalid_with_hint(
                format!(
                    "Invalid {name} `{}` in crontab expression `{schedule}`; expected {range}",
                    fields[index]
                ),
                "each field is a value, a range `a-b`, a list `a,b` or a step `*/n`",
            ));
        }
    }
    Err(Error::invalid(format!(
        "Invalid crontab expression `{schedule}`: {whole}"
    )))
}

/// The five-field crontab an `@` macro stands for.
fn macro_equivalent(schedule: &str) -> Option<&'static str> {
    Some(match schedule.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// The workflow file name of an artifact must be a single `.py`, `.yaml` or `.yml` file.
fn check_workflow_file_name(uri: &str, artifact: &Artifact) -> Result<()> {
    let name = artifact.file_name();
    let lower = name.to_ascii_lowercase();
    if ARCHIVE_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
        return Err(Error::invalid(format!(
            "Workflow path `{uri}` resolves to the archive `{name}`; workflow code artifacts must be a single .py, .yaml or .yml file"
        )));
    }
    if !WORKFLOW_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
        return Err(Error::invalid(format!(
            "Workflow path `{uri}` resolves to `{name}`; workflow code artifacts must be a single .py, .yaml or .yml file"
        )));
    }
    Ok(())
}

/// Reads and checks the workflow artifact a `store://` path names.
pub async fn resolve_workflow_artifact(db: &dyn Db, project: &str, path: &str) -> Result<Artifact> {
    let uri: StoreUri = path.parse()?;
    let artifact = db.read_artifact(project, &uri).await?;
    check_role(&artifact, path, CodeType::Workflow, "Workflow path")?;
    check_workflow_file_name(path, &artifact)?;
    Ok(artifact)
}

impl Project {
    /// Validates a workflow definition and writes it into `project.yaml`, replacing a workflow
    /// of the same name. A `store://` path is stored exactly as given.
    pub async fn set_workflow(
        &mut self,
        db: &dyn Db,
        request: SetWorkflowRequest,
    ) -> Result<WorkflowSpec> {
        let engine = self
            .check_workflow(
                db,
                &request.path,
                request.engine.as_deref(),
                request.schedule.as_deref(),
            )
            .await?;
        let spec = WorkflowSpec {
            name: request.name.clone(),
            path: Some(request.path),
            code: None,
            engine: engine.map(|e| e.to_string()),
            args: request.args,
            args_schema: request
                .args_schema
                .iter()
                .map(|e| serde_json::to_value(e).expect("schema entries serialize"))
                .collect(),
            handler: request.handler,
            schedule: request.schedule,
            image: None,
            extra: Default::default(),
        };
        let value = serde_json::to_value(&spec).expect("workflow specs serialize");
        self.update(|file| super::entries::upsert(&mut file.spec.workflows, &request.name, value))?;
        Ok(spec)
    }

    /// Checks a workflow definition as `set-workflow` does, without writing it: the engine, the
    /// schedule, and the path (a `store://` artifact must exist and be a single workflow file;
    /// a local file must exist with a workflow suffix). Returns the parsed engine.
    pub async fn check_workflow(
        &self,
        db: &dyn Db,
        path: &str,
        engine: Option<&str>,
        schedule: Option<&str>,
    ) -> Result<Option<EngineKind>> {
        if path.is_empty() {
            return Err(Error::invalid("workflow_path must be provided."));
        }
        let engine: Option<EngineKind> = engine.map(str::parse).transpose()?;
        if let Some(schedule) = schedule {
            if engine.is_some_and(EngineKind::is_local_flavour) {
                return Err(Error::invalid_with_hint(
                    "'schedule' argument is not supported for 'local' engine.",
                    "scheduled workflows run on the server: use `--engine remote` or `--engine remote:kfp`",
                ));
            }
            check_schedule(schedule)?;
        }
        if is_store_uri(path) {
            resolve_workflow_artifact(db, self.name(), path).await?;
        } else {
            let lower = path.to_ascii_lowercase();
            if !WORKFLOW_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
                return Err(Error::invalid(format!(
                    "Invalid workflow path `{path}`: expected a store:// workflow artifact or a .py, .yaml or .yml file (by path or URL)"
                )));
            }
            let local = self.source_path(path);
            // A URL is fetched when the workflow runs, like a store:// artifact.
            if !is_remote_url(path) && !local.is_file() {
                return Err(Error::invalid(format!(
                    "Invalid workflow path `{path}`: got a path to a non-existing file (looked for `{}`)",
                    local.display()
                )));
            }
        }
        Ok(engine)
    }

    /// The project's workflow specs.
    pub fn workflows(&self) -> Result<Vec<WorkflowSpec>> {
        super::entries::decode(&self.file.spec.workflows, "workflow")
    }

    /// One workflow spec by name.
    pub fn workflow(&self, name: &str) -> Result<WorkflowSpec> {
        super::entries::find(
            self.workflows()?,
            |w| &w.name,
            name,
            "Workflow",
            self.name(),
        )
    }

    /// Resolves a workflow's source for one execution: a `store://` artifact is read and checked
    /// now (every run, so a new version is picked up) and fetched through the code cache; a URL
    /// (`s3://`, `http(s)://`, `ds://`) is fetched through the cache too, verified by the digest
    /// it has now.
    pub async fn resolve_workflow(
        &self,
        db: &dyn Db,
        spec: &WorkflowSpec,
    ) -> Result<ResolvedWorkflow> {
        let path = spec.path.clone().ok_or_else(|| {
            Error::invalid(format!(
                "Workflow `{}` must have code or path properties",
                spec.name
            ))
        })?;
        let store = || -> Result<DataStore> {
            Ok(DataStore::from_env()?.with_profiles(ProfileAccess {
                store: db.profile_store(),
                project: self.name().to_string(),
            }))
        };
        if is_remote_url(&path) {
            let code = CodeCache::new(CodeCache::default_root()?)
                .resolve_url(&path, &store()?)
                .await?;
            return single_file(code, path, None);
        }
        if !is_store_uri(&path) {
            let file = self.source_path(&path);
            let bytes = std::fs::read(&file).map_err(|e| {
                Error::io(format!("Failed to read workflow `{}`", file.display()), e)
            })?;
            return Ok(ResolvedWorkflow {
                file,
                record: ResolvedCodeRecord {
                    source: path,
                    uid: None,
                    digest: format!(
                        "sha256:{}",
                        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
                    ),
                },
            });
        }
        let artifact = resolve_workflow_artifact(db, self.name(), &path).await?;
        let code = CodeCache::new(CodeCache::default_root()?)
            .resolve(&artifact, &store()?)
            .await?;
        single_file(code, path, artifact.metadata.uid.clone())
    }
}

/// A workflow resolved through the code cache, which must be one file, not an archive.
fn single_file(
    code: crate::code::ResolvedCode,
    path: String,
    uid: Option<String>,
) -> Result<ResolvedWorkflow> {
    let file = code.file.ok_or_else(|| {
        Error::invalid(format!(
            "Workflow path `{path}` resolved to an archive; expected a single file"
        ))
    })?;
    Ok(ResolvedWorkflow {
        file,
        record: ResolvedCodeRecord {
            source: path,
            uid,
            digest: code.digest,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per rule: what MLRun's `from_crontab` accepts passes; anything else is refused
    /// with a message naming the field (or the field count) and quoting the expression.
    #[test]
    fn check_schedule_accepts_five_field_crontab_and_names_the_bad_field() {
        for ok in [
            "0 * * * *",
            "*/15 9-17 * * 1-5",
            "0 0 1,15 * *",
            "30 2 * jan-mar sun",
            "0 0 * * 7",
            "  0   *  * * *  ",
        ] {
            assert!(check_schedule(ok).is_ok(), "`{ok}` was refused");
        }
        let refused = [
            (
                "0 99 * * *",
                "Invalid hour `99` in crontab expression `0 99 * * *`; expected 0-23",
            ),
            ("60 * * * *", "Invalid minute `60`"),
            ("0 0 32 * *", "Invalid day-of-month `32`"),
            ("0 0 0 * *", "Invalid day-of-month `0`"),
            ("0 0 * 13 *", "Invalid month `13`"),
            ("0 0 * * 8", "Invalid day-of-week `8`"),
            ("x * * * *", "Invalid minute `x`"),
            ("0 5-2x * * *", "Invalid hour `5-2x`"),
            (
                "0 * * *",
                "Wrong number of fields in crontab expression `0 * * *`; got 4, expected 5",
            ),
            ("0 0 * * * *", "got 6, expected 5"),
            ("", "got 0, expected 5"),
            (
                "@hourly",
                "Wrong number of fields in crontab expression `@hourly`; got 1",
            ),
        ];
        for (bad, message) in refused {
            let err = check_schedule(bad).unwrap_err();
            assert!(err.to_string().contains(message), "`{bad}`: {err}");
            assert!(err.hint().is_some(), "`{bad}` has no hint");
        }
    }

    /// MLRun takes no `@` macros; the hint gives the five fields to write instead.
    #[test]
    fn check_schedule_hints_the_crontab_for_a_macro() {
        for (macro_, cron) in [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@WEEKLY", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
        ] {
            let err = check_schedule(macro_).unwrap_err();
            assert!(
                err.hint().unwrap().contains(&format!("write `{cron}`")),
                "{macro_}: {:?}",
                err.hint()
            );
            assert!(check_schedule(cron).is_ok(), "{cron}");
        }
    }
}
