//! `set_function` and the effective build configuration of a project's functions.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Project;
use crate::artifact::{check_role, requirements};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::model::{
    Artifact, CodeType, FunctionEntry, FunctionKind, FunctionSnapshot, ResolvedCodeRecord,
};
use crate::runner::HandlerRef;
use crate::uri::{is_remote_url, is_store_uri, source_kind, SourceKind, StoreUri};

/// The base image a build starts from when the function names none.
pub const DEFAULT_BASE_IMAGE: &str = "python:3.11-slim";

/// What `set-function` accepts.
#[derive(Debug, Clone, Default)]
pub struct SetFunctionRequest {
    /// Function name (normalised: lowercase, `_` becomes `-`).
    pub name: String,
    /// The source: a `store://` URI, a `.py` path, an archive path or URL.
    pub func: String,
    /// Runtime kind (`job` when `None`).
    pub kind: Option<String>,
    /// Default handler.
    pub handler: Option<String>,
    /// Container image.
    pub image: Option<String>,
    /// The user's own requirements.
    pub requirements: Vec<String>,
    /// Pull the code at start-up (nuclio/serving) instead of at build time.
    pub load_source_on_run: Option<bool>,
    /// Function tag.
    pub tag: Option<String>,
}

impl SetFunctionRequest {
    /// The request that would define `entry` as it stands (an entry without a source has an
    /// empty `func`).
    pub fn from_entry(entry: &FunctionEntry) -> Self {
        SetFunctionRequest {
            name: entry.name.clone(),
            func: entry.url.clone().unwrap_or_default(),
            kind: entry.kind.clone(),
            handler: entry.handler.clone(),
            image: entry.image.clone(),
            requirements: entry.requirements.clone(),
            load_source_on_run: entry.load_source_on_run,
            tag: entry.tag.clone(),
        }
    }
}

/// MLRun's function name normalisation: lowercase, `_` becomes `-`.
pub fn normalize_function_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Checks a handler in `<module>:<function>` form, which code resolved at start-up needs: the
/// handler itself must say which module of the payload to load.
pub fn check_module_handler(handler: Option<&str>, source: &str) -> Result<HandlerRef> {
    let hint = "write the handler as `<module>:<function>`, e.g. `my_func:main`: the module is the file's name without `.py` (for an archive, a file inside it, not the archive's name)";
    let Some(handler) = handler else {
        return Err(Error::invalid_with_hint(
            format!("A handler is required for source `{source}`: the runner downloads the code at start-up and the handler names the module to load"),
            hint,
        ));
    };
    HandlerRef::parse(handler).map_err(|e| {
        Error::invalid_with_hint(
            format!("{e} (required for source `{source}`, whose code is pulled at start-up)"),
            e.hint().unwrap_or(hint).to_string(),
        )
    })
}

/// Reads the artifact a function's `store://` source names and checks it is function code.
pub async fn resolve_function_artifact(
    db: &dyn Db,
    project: &str,
    source: &str,
) -> Result<Artifact> {
    let uri: StoreUri = source.parse()?;
    let artifact = db.read_artifact(project, &uri).await?;
    check_role(&artifact, source, CodeType::Function, "Source")?;
    Ok(artifact)
}

impl Project {
    /// Validates a function definition and writes it into `project.yaml`, replacing a function
    /// of the same name. A `store://` source is stored exactly as given.
    pub async fn set_function(
        &mut self,
        db: &dyn Db,
        request: SetFunctionRequest,
    ) -> Result<FunctionEntry> {
        let (name, kind) = self.check_function(db, &request).await?;
        let entry = FunctionEntry {
            name: name.clone(),
            url: Some(request.func),
            kind: Some(kind.as_str().to_string()),
            image: request.image,
            handler: request.handler,
            requirements: request.requirements,
            tag: request.tag,
            load_source_on_run: request.load_source_on_run,
            extra: Default::default(),
        };
        let value = serde_json::to_value(&entry).expect("function entries serialize");
        self.update(|file| super::entries::upsert(&mut file.spec.functions, &name, value))?;
        Ok(entry)
    }

    /// Checks a function definition as `set-function` does, without writing it: the name, the
    /// kind and what it allows, the requirements, the handler a pulled source needs, and the
    /// source itself (a `store://` artifact must exist and be function code; a local file must
    /// exist). Returns the normalised name and the kind.
    pub async fn check_function(
        &self,
        db: &dyn Db,
        request: &SetFunctionRequest,
    ) -> Result<(String, FunctionKind)> {
        let name = normalize_function_name(&request.name);
        if name.is_empty() {
            return Err(Error::invalid("Function name must be specified"));
        }
        let kind: FunctionKind = request.kind.as_deref().unwrap_or("job").parse()?;
        if kind == FunctionKind::Local && request.image.is_some() {
            return Err(Error::invalid(
                "image should only be set with containerized runtimes (job, nuclio, ...); kind `local` runs on this machine",
            ));
        }
        if matches!(kind, FunctionKind::Serving | FunctionKind::Application)
            && request.handler.is_some()
        {
            return Err(Error::invalid(format!(
                "Handler is not supported for {kind} runtime"
            )));
        }
        requirements::validate_all(&request.requirements)?;
        let needs_handler = !matches!(kind, FunctionKind::Serving | FunctionKind::Application);
        match source_kind(&request.func)? {
            SourceKind::Store => {
                if needs_handler {
                    check_module_handler(request.handler.as_deref(), &request.func)?;
                }
                resolve_function_artifact(db, self.name(), &request.func).await?;
            }
            SourceKind::Archive => {
                if needs_handler {
                    check_module_handler(request.handler.as_deref(), &request.func)?;
                }
                self.check_local_source(&request.func)?;
            }
            SourceKind::Git => {
                if needs_handler {
                    check_module_handler(request.handler.as_deref(), &request.func)?;
                }
                crate::datastore::git::GitSource::parse(&request.func)?;
            }
            SourceKind::PythonFile => self.check_local_source(&request.func)?,
        }
        Ok((name, kind))
    }

    /// A local source path (relative to the project folder) must exist; URLs are checked when
    /// the code is fetched.
    fn check_local_source(&self, source: &str) -> Result<()> {
        if is_remote_url(source) {
            return Ok(());
        }
        let path = self.source_path(source);
        if path.is_file() {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "Function source `{source}` does not exist (looked for `{}`)",
                path.display()
            )))
        }
    }

    /// Freezes function `name` for a run: its definition, and where its code is, as a runner
    /// anywhere can find it. A `store://` source is resolved now (it must exist and be function
    /// code) and pinned to that version; a path source becomes an absolute path. The code
    /// itself is not fetched.
    pub async fn snapshot_function(&self, db: &dyn Db, name: &str) -> Result<FunctionSnapshot> {
        let function = if name.starts_with(super::HUB_PREFIX) {
            self.hub_function(name).await?
        } else {
            self.function(name)?
        };
        let source = function.url.clone().unwrap_or_default();
        let (code_location, pinned) = match source_kind(&source)? {
            SourceKind::Store => {
                let artifact = resolve_function_artifact(db, self.name(), &source).await?;
                let digest = artifact.spec.digest.clone().unwrap_or_default();
                let pinned = ResolvedCodeRecord {
                    source: source.clone(),
                    uid: artifact.metadata.uid.clone(),
                    digest,
                };
                (artifact.store_uri().to_string(), Some(pinned))
            }
            // A URL stays a URL: the runner fetches it (a git ref is resolved then, so a branch
            // that moved is picked up by the next run).
            SourceKind::Git => (source.clone(), None),
            SourceKind::Archive if is_remote_url(&source) => (source.clone(), None),
            SourceKind::PythonFile | SourceKind::Archive => (
                self.source_path(&source).to_string_lossy().into_owned(),
                None,
            ),
        };
        Ok(FunctionSnapshot {
            function,
            code_location,
            pinned,
            overrides: Default::default(),
        })
    }

    /// The local file a path source names, relative to the project folder (a `file://` URL is a
    /// path).
    pub fn source_path(&self, source: &str) -> std::path::PathBuf {
        let path = Path::new(source.strip_prefix("file://").unwrap_or(source));
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root().join(path)
        }
    }

    /// The project's function definitions.
    pub fn functions(&self) -> Result<Vec<FunctionEntry>> {
        super::entries::decode(&self.file.spec.functions, "function")
    }

    /// One function definition by name.
    pub fn function(&self, name: &str) -> Result<FunctionEntry> {
        let wanted = normalize_function_name(name);
        super::entries::find(
            self.functions()?,
            |f| &f.name,
            &wanted,
            "Function",
            self.name(),
        )
    }
}

/// A function's build configuration after the artifact's requirements are merged in.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveBuild {
    /// Runtime kind.
    pub kind: String,
    /// Image to build from.
    pub base_image: String,
    /// Merged requirements: the artifact's first, the user's win.
    pub requirements: Vec<String>,
    /// Whether the code is pulled at start-up (no rebuild on a code-only change).
    pub load_source_on_run: bool,
    /// The artifact version behind a `store://` source, as resolved now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_uid: Option<String>,
    /// Its payload digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_digest: Option<String>,
    /// Whether this kind of configuration needs an image build at all (requirements, or code
    /// baked in at build time).
    pub requires_build: bool,
    /// Hash of everything that goes into the image.
    pub config_hash: String,
}

impl EffectiveBuild {
    /// Resolves the effective build of `function`, reading its artifact's current version.
    pub async fn resolve(db: &dyn Db, project: &Project, function: &FunctionEntry) -> Result<Self> {
        let kind = function.kind()?;
        let source = function.url.clone().unwrap_or_default();
        let artifact = if is_store_uri(&source) {
            Some(resolve_function_artifact(db, project.name(), &source).await?)
        } else {
            None
        };
        let artifact_requirements = artifact
            .as_ref()
            .map(|a| a.spec.requirements.clone())
            .unwrap_or_default();
        let requirements = requirements::merge(&artifact_requirements, &function.requirements)?;
        let load_source_on_run = kind.pulls_at_runtime(function.load_source_on_run);
        let requires_build =
            !requirements.is_empty() || (!source.is_empty() && !load_source_on_run);
        let base_image = function
            .image
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_IMAGE.to_string());
        let artifact_digest = artifact.as_ref().and_then(|a| a.spec.digest.clone());
        // Code pulled at start-up is not part of the image, so a code-only change keeps the hash.
        let baked_code =
            (!load_source_on_run).then(|| artifact_digest.clone().unwrap_or(source.clone()));
        let config = serde_json::json!({
            "kind": kind.as_str(),
            "base_image": base_image,
            "requirements": requirements,
            "code": baked_code,
        });
        let config_hash = hex::encode(Sha256::digest(config.to_string().as_bytes()));
        Ok(EffectiveBuild {
            kind: kind.as_str().to_string(),
            base_image,
            requirements,
            load_source_on_run,
            artifact_uid: artifact.as_ref().and_then(|a| a.metadata.uid.clone()),
            artifact_digest,
            requires_build,
            config_hash,
        })
    }

    /// Whether an image build is needed now: the configuration needs one and the last build (if
    /// any) was made from a different configuration.
    pub async fn build_required(&self, db: &dyn Db, project: &str, function: &str) -> Result<bool> {
        if !self.requires_build {
            return Ok(false);
        }
        let last = db.read_build(project, function).await?;
        Ok(last.map(|b| b.config_hash) != Some(self.config_hash.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_need_module_and_function() {
        let h = check_module_handler(Some("pkg.trainer:main"), "s").unwrap();
        assert_eq!(
            (h.module.as_str(), h.function.as_str()),
            ("pkg.trainer", "main")
        );
        for bad in ["main", ":main", "my_func:", "a:b:c", "pkg..x:main"] {
            let err = check_module_handler(Some(bad), "store://p/k").unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&format!("Handler `{bad}`")), "{text}");
            assert!(text.contains("required for source `store://p/k`"), "{text}");
            assert!(err.hint().is_some());
        }
        let err = check_module_handler(None, "store://p/k").unwrap_err();
        assert!(err
            .to_string()
            .contains("A handler is required for source `store://p/k`"));
    }

    #[test]
    fn sources_are_classified() {
        assert_eq!(source_kind("store://p/k").unwrap(), SourceKind::Store);
        assert_eq!(source_kind("./a.py").unwrap(), SourceKind::PythonFile);
        assert_eq!(source_kind("x.TAR.GZ").unwrap(), SourceKind::Archive);
        assert_eq!(source_kind("https://h/x.zip").unwrap(), SourceKind::Archive);
        assert_eq!(source_kind("git://h/r#main").unwrap(), SourceKind::Git);
        assert_eq!(source_kind("git+file:///r").unwrap(), SourceKind::Git);
        assert!(source_kind("ftp://h/r")
            .unwrap_err()
            .to_string()
            .contains("Unsupported function source `ftp://h/r`"));
    }
}
