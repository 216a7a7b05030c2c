//! `log_code_file`: registering a source file, an archive or an inline body as a code artifact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::names::{validate_file_name, validate_new_key, validate_tag};
use super::requirements;
use super::uid::content_uid;
use crate::datastore::{self, DataStore, PayloadDigest};
use crate::db::{Db, StoredArtifact};
use crate::error::{Error, Result};
use crate::model::artifact::CODE_KIND;
use crate::model::{Artifact, ArtifactMetadata, CodeArtifactSpec, CodeType};

/// The largest inline body kept in a database record.
pub const MAX_INLINE_BODY: usize = 1024 * 1024;

/// Where the code of a new artifact comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeSource {
    /// A local file or archive, uploaded to the target path.
    LocalPath(PathBuf),
    /// An inline body; `path` is the file it was read from, if any (kept as `src_path`).
    Body {
        /// The code.
        text: String,
        /// The file the body was read from.
        path: Option<PathBuf>,
    },
    /// An object that already exists at the target path; registered without copying.
    Existing,
}

/// Everything `log-code` accepts, before validation.
#[derive(Debug, Clone)]
pub struct LogCodeRequest {
    /// The artifact key.
    pub key: String,
    /// Where the code comes from.
    pub source: CodeSource,
    /// Upload destination (or, with [`CodeSource::Existing`], the object to register).
    pub target_path: Option<String>,
    /// `function` or `workflow`; `None` means `function`.
    pub code_type: Option<String>,
    /// Explicit language; derived from the path when `None`.
    pub language: Option<String>,
    /// Pip requirements, each PEP 508.
    pub requirements: Vec<String>,
    /// A tag besides `latest`.
    pub tag: Option<String>,
    /// Labels (not part of the uid).
    pub labels: BTreeMap<String, String>,
    /// Artifact path overriding the project's.
    pub artifact_path: Option<String>,
    /// Database key (defaults to the key).
    pub db_key: Option<String>,
    /// With [`CodeSource::Existing`], the path the client logged the code from (its base name
    /// names the materialised file), as an MLRun client that wrote the payload itself reports.
    pub src_path: Option<String>,
    /// The producer tree of a new version, when the client chose it (MLRun's client pins its
    /// own tree in the URI it hands out); a fresh one otherwise.
    pub tree: Option<String>,
}

impl LogCodeRequest {
    /// A request with only a key and a source; everything else at its default.
    pub fn new(key: impl Into<String>, source: CodeSource) -> Self {
        LogCodeRequest {
            key: key.into(),
            source,
            target_path: None,
            code_type: None,
            language: None,
            requirements: Vec::new(),
            tag: None,
            labels: BTreeMap::new(),
            artifact_path: None,
            db_key: None,
            src_path: None,
            tree: None,
        }
    }
}

/// All the suffixes of a file name joined (`x.tar.gz` gives `.tar.gz`), as pathlib does.
fn suffixes(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    match name.trim_start_matches('.').find('.') {
        Some(i) => name.trim_start_matches('.')[i..].to_string(),
        None => String::new(),
    }
}

/// `.py` and `.ipynb` give `python`, another path gives `""`, no path gives `None`.
fn derive_language(path: Option<&str>) -> Option<String> {
    let path = path?.to_ascii_lowercase();
    Some(if path.ends_with(".py") || path.ends_with(".ipynb") {
        "python".to_string()
    } else {
        String::new()
    })
}

/// Where an artifact is logged: its project, the artifact path a payload without a target goes
/// under, and the lock that keeps an upload and its record together.
pub struct LogScope<'a> {
    /// The project's name.
    pub project: &'a str,
    /// The artifact path to use when the request names none, resolved (an absolute path or a
    /// URL); a request's own `artifact_path` must be resolved by the caller the same way.
    pub artifact_path: String,
    /// Held while a payload is uploaded and its record stored.
    pub lock: &'a dyn UploadLock,
}

/// Serialises uploads with their records, so an upload to an explicit target path and the record
/// that describes it are never interleaved with another writer's: `latest` always describes the
/// bytes at its target. A project folder implements it with a file lock; a server may use a
/// mutex.
pub trait UploadLock: Send + Sync {
    /// Waits for the lock; it is held until the returned guard is dropped.
    fn acquire(&self) -> Result<Box<dyn Send>>;
}

/// Logs a code artifact: validates the request, uploads the payload (unless inline or already
/// in place), records its digest and size, and stores the version.
///
/// Identical content gives the identical uid and adds no version; `latest` and the given tag
/// move to the stored version either way.
pub async fn log_code_file(
    scope: &LogScope<'_>,
    db: &dyn Db,
    store: &DataStore,
    request: LogCodeRequest,
) -> Result<StoredArtifact> {
    validate_new_key("key", &request.key)?;
    if let Some(db_key) = &request.db_key {
        validate_new_key("db_key", db_key)?;
    }
    if let Some(tag) = &request.tag {
        validate_tag(tag)?;
    }
    if let Some(tree) = &request.tree {
        validate_tree(tree)?;
    }
    let code_type: CodeType = match request.code_type.as_deref() {
        None | Some("") => CodeType::Function,
        Some(other) => other.parse()?,
    };
    requirements::validate_all(&request.requirements)?;
    if let Some(target) = &request.target_path {
        if !datastore::is_absolute_target(target) {
            return Err(Error::invalid_with_hint(
                format!("target_path (`{target}`) param cannot be relative"),
                "give an absolute path or a URL such as `file:///data/code/my_func.py`",
            ));
        }
    }

    let mut spec = CodeArtifactSpec {
        code_type: Some(code_type),
        requirements: request.requirements.clone(),
        db_key: request.db_key.clone(),
        ..CodeArtifactSpec::default()
    };
    // What must be uploaded, and where, once the record is known to be valid.
    let mut upload: Option<(String, Upload)> = None;
    let payload: PayloadDigest = match &request.source {
        CodeSource::LocalPath(path) => {
            let shown = path.display().to_string();
            if shown.contains("://") {
                return Err(Error::invalid_with_hint(
                    format!("Cannot upload from remote path `{shown}`"),
                    "to register an object that is already stored, pass it as --target-path alone",
                ));
            }
            if path.is_dir() {
                return Err(Error::invalid_with_hint(
                    format!("`{shown}` is a folder; a code artifact is one file or one archive"),
                    "pack the folder first, e.g. `cd folder && zip -r ../code.zip .`, and log the archive",
                ));
            }
            if !path.is_file() {
                return Err(Error::invalid(format!(
                    "Failed to log an artifact, file does not exist at path `{shown}`"
                )));
            }
            let digest = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || PayloadDigest::of_file(&path))
                    .await
                    .map_err(|e| Error::internal_from("Hashing the payload failed", e))??
            };
            let target = match &request.target_path {
                Some(target) => target.clone(),
                None => default_target(
                    request
                        .artifact_path
                        .as_deref()
                        .unwrap_or(&scope.artifact_path),
                    &request.key,
                    &digest,
                    path,
                ),
            };
            spec.src_path = Some(shown);
            spec.target_path = Some(target.clone());
            upload = Some((target, Upload::File(path.clone())));
            digest
        }
        CodeSource::Body { text, path } => {
            if text.len() > MAX_INLINE_BODY {
                return Err(Error::bad_request(format!(
                    "The body of the artifact is {} bytes, above the {MAX_INLINE_BODY}-byte limit for inline bodies",
                    text.len()
                ))
                .with_hint("log the file with --local-path instead"));
            }
            spec.src_path = path.as_ref().map(|p| p.display().to_string());
            match &request.target_path {
                Some(target) => {
                    spec.target_path = Some(target.clone());
                    upload = Some((target.clone(), Upload::Bytes(Bytes::from(text.clone()))));
                }
                None => spec.inline = Some(text.clone()),
            }
            PayloadDigest::of_bytes(text.as_bytes())
        }
        CodeSource::Existing => {
            let target = request.target_path.clone().ok_or_else(|| {
                Error::invalid_with_hint(
                    "A code artifact must provide a local path, a target path or a body",
                    "pass --local-path FILE, --body TEXT, --body-file FILE or --target-path URL",
                )
            })?;
            let digest = store.digest(&target).await?.ok_or_else(|| {
                Error::not_found(format!(
                    "Target `{target}` does not exist; upload it first or log it with --local-path"
                ))
            })?;
            spec.target_path = Some(target);
            spec.src_path = request.src_path.clone();
            digest
        }
    };
    spec.language = request
        .language
        .clone()
        .or_else(|| derive_language(spec.src_path.as_deref().or(spec.target_path.as_deref())));
    spec.digest = Some(payload.sha256.clone());
    spec.size = Some(payload.size);

    let mut artifact = Artifact {
        kind: CODE_KIND.to_string(),
        metadata: ArtifactMetadata {
            key: request.key.clone(),
            project: scope.project.to_string(),
            iter: 0,
            tree: String::new(),
            tag: None,
            uid: None,
            hash: Some(payload.sha1.clone()),
            labels: request.labels.clone(),
            updated: Some(chrono::Utc::now().to_rfc3339()),
            extra: Default::default(),
        },
        spec,
        status: [("state".to_string(), "created".into())]
            .into_iter()
            .collect(),
        extra: Default::default(),
    };
    validate_file_name(&artifact.file_name())?;
    artifact.metadata.uid = Some(content_uid(&artifact));
    // A new version gets a fresh producer tree (or the client's); an existing one keeps its
    // own (the db does).
    artifact.metadata.tree = request
        .tree
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());

    let _lock = scope.lock.acquire()?;
    if let Some((target, upload)) = upload {
        // Bytes already in place are not rewritten: the payload keeps its file and its mtime.
        if !store.holds(&target, &payload).await? {
            match upload {
                Upload::File(path) => store.put_file(&target, &path, &payload).await?,
                Upload::Bytes(bytes) => store.put(&target, bytes).await?,
            }
        }
    }
    db.store_artifact(artifact, request.tag.as_deref()).await
}

/// A producer tree: 1 to 64 letters, digits, `-` and `_` (a uuid, with or without dashes).
fn validate_tree(tree: &str) -> Result<()> {
    let valid = !tree.is_empty()
        && tree.len() <= 64
        && tree
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "tree `{tree}` is malformed: use 1 to 64 letters, digits, `-` and `_`"
        )))
    }
}

/// A payload waiting to be uploaded.
enum Upload {
    /// A local file, streamed.
    File(PathBuf),
    /// A small body held in memory.
    Bytes(Bytes),
}

/// The default target of a local file: `<artifact_path>/<key>/<sha256 hex>/<file name>`.
///
/// The key keeps different keys apart and the digest keeps the versions of one key apart, so no
/// upload ever replaces a payload another record points to; the file's own name keeps its
/// suffix (an archive's format, a module's name) visible.
fn default_target(artifact_path: &str, key: &str, digest: &PayloadDigest, path: &Path) -> String {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{key}{}", suffixes(path)));
    format!(
        "{}/{key}/{}/{file_name}",
        artifact_path.trim_end_matches('/'),
        digest.sha256_hex()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_join_like_pathlib() {
        assert_eq!(suffixes(Path::new("dir/x.tar.gz")), ".tar.gz");
        assert_eq!(suffixes(Path::new("my_func.py")), ".py");
        assert_eq!(suffixes(Path::new("Makefile")), "");
        assert_eq!(suffixes(Path::new(".hidden")), "");
    }

    #[test]
    fn language_is_derived_from_the_path() {
        assert_eq!(derive_language(Some("a/B.PY")).as_deref(), Some("python"));
        assert_eq!(derive_language(Some("nb.ipynb")).as_deref(), Some("python"));
        assert_eq!(derive_language(Some("pkg.zip")).as_deref(), Some(""));
        assert_eq!(derive_language(None), None);
    }
}
