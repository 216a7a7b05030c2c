//! `baton export`: a project as a portable zip, or as its `project.yaml` alone.
//!
//! A **zip export** carries the code. Every `store://` source of the project's functions and
//! workflows is fetched through the datastore (whatever backend serves its `target_path`),
//! checked against the digest its artifact records, and packaged under its original file name
//! at `code/<key>/<file name>`; an archive stays an archive. Local sources are packaged too,
//! a relative one at its own path. The `project.yaml` inside points at those paths, so after
//! import a handler such as `my_func:main` (a file) or `trainer:main` (a file inside an archive)
//! finds its module exactly as before: MLRun's own zip export renames the files it downloads,
//! which breaks such handlers. An artifact's requirements move into its function's own list
//! (the artifact's first, the function's winning, as a build merges them), since a packaged
//! file no longer carries them.
//!
//! Everything is fetched and checked before anything is written, every failure (a missing
//! artifact, an unreachable store, a payload whose digest changed) is reported in one error, and
//! the zip is written to a temporary file renamed into place: a failed export leaves nothing
//! behind, not even a partial zip.
//!
//! A **YAML export** is the definition as it stands, `store://` URIs included: usable where the
//! same artifacts exist (the same database, or a server holding them).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::files::{blocking, commit, replace_file, stage_beside};
use super::problems::Problems;
use super::{resolve_function_artifact, resolve_workflow_artifact, Project, PROJECT_FILE};
use crate::artifact::requirements;
use crate::code::{detect, ArchiveFormat};
use crate::datastore::DataStore;
use crate::db::Db;
use crate::error::{Error, IoResultExt, Result};
use crate::model::Artifact;
use crate::uri::is_store_uri;

/// The folder of an export zip that holds the packaged code.
pub const EXPORT_CODE_DIR: &str = "code";

/// Payloads fetched at once.
const FETCH_CONCURRENCY: usize = 8;

/// What `baton export` writes, chosen by the output's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A zip holding `project.yaml` and the code (`.zip`).
    Zip,
    /// `project.yaml` alone, `store://` URIs kept (`.yaml`, `.yml`).
    Yaml,
}

impl ExportFormat {
    /// The format an output path asks for: `.zip` or `.yaml`/`.yml`.
    pub fn of_path(path: &Path) -> Result<ExportFormat> {
        let name = path.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".zip") {
            Ok(ExportFormat::Zip)
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            Ok(ExportFormat::Yaml)
        } else {
            Err(Error::invalid_with_hint(
                format!(
                    "Cannot tell what to export to `{}`: expected a `.zip` or a `.yaml` file",
                    path.display()
                ),
                "`baton export project.zip` packages the code; `baton export project.yaml` keeps the store:// URIs",
            ))
        }
    }
}

/// One payload packaged into an export zip.
#[derive(Debug, Clone, Serialize)]
pub struct PackagedCode {
    /// Its path inside the zip, which is also its path in an imported project's folder.
    pub path: String,
    /// The functions and workflows that use it (`function prep`, `workflow main`).
    pub used_by: Vec<String>,
    /// The source it replaces in `project.yaml`: a `store://` URI or a local path.
    pub source: String,
    /// `sha256:<hex>` of the payload.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it is an archive (kept whole).
    pub archive: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// The project's name.
    pub project: String,
    /// The file written.
    pub path: PathBuf,
    /// Zip or YAML.
    pub format: ExportFormat,
    /// The code packaged into a zip (empty for YAML).
    pub code: Vec<PackagedCode>,
}

impl Project {
    /// Writes the project to `out`, a zip with its code or its `project.yaml` alone, as
    /// [`ExportFormat::of_path`] says (see the module docs). Artifacts are read through `db` and
    /// payloads fetched through `store`. On any failure nothing is written and the error lists
    /// every problem found.
    pub async fn export(
        &self,
        db: &dyn Db,
        store: &DataStore,
        out: &Path,
    ) -> Result<ExportSummary> {
        let format = ExportFormat::of_path(out)?;
        let code = match format {
            // `baton export project.yaml` in the project folder names the definition itself:
            // it is already written, and rewriting it would drop the user's comments.
            ExportFormat::Yaml if is_same_file(out, &self.root().join(PROJECT_FILE)) => Vec::new(),
            ExportFormat::Yaml => {
                let yaml = serde_yaml::to_string(&self.file).expect("project files serialize");
                let out = out.to_path_buf();
                blocking(move || replace_file(&out, |file| write_all(file, yaml.as_bytes(), &out)))
                    .await?;
                Vec::new()
            }
            ExportFormat::Zip => self.export_zip(db, store, out).await?,
        };
        Ok(ExportSummary {
            project: self.name().to_string(),
            path: out.to_path_buf(),
            format,
            code,
        })
    }

    async fn export_zip(
        &self,
        db: &dyn Db,
        store: &DataStore,
        out: &Path,
    ) -> Result<Vec<PackagedCode>> {
        let summary = format!("Cannot export project `{}`", self.name());
        let mut problems = Problems::default();
        let planned = self.plan_export(db, &mut problems).await?;

        let folder = match out.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Downloads sit beside the output (the same disk the zip goes to), and vanish with it.
        let scratch = tempfile::Builder::new()
            .prefix(".baton-export-")
            .tempdir_in(&folder)
            .io_context(|| format!("Failed to create a folder in `{}`", folder.display()))?;
        let fetched: Vec<Option<Fetched>> = futures::stream::iter(planned.iter().enumerate())
            .map(|(n, p)| fetch(p, store, scratch.path().join(n.to_string())))
            .buffered(FETCH_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .zip(&planned)
            .map(|(result, p)| problems.keep(&p.subject(), result))
            .collect();
        let packaged: Vec<(&Planned, Fetched)> = planned
            .iter()
            .zip(fetched)
            .filter_map(|(p, f)| Some((p, f?)))
            .collect();

        // The zip is staged even when something already failed: writing it is what hashes
        // each payload (the bytes checked are the bytes packaged, read once), so every digest
        // mismatch is reported with the other failures.
        let paths = layout(&packaged);
        let file = self.exported_definition(&packaged, &paths)?;
        let yaml = serde_yaml::to_string(&file).expect("project files serialize");
        let members: Vec<Member> = packaged
            .iter()
            .zip(&paths)
            .map(|((_, f), path)| Member {
                path: path.clone(),
                file: f.file.clone(),
                archive: f.archive.is_some(),
            })
            .collect();
        let zip_path = out.to_path_buf();
        let (staged, written) = blocking(move || write_zip(&zip_path, &yaml, &members)).await?;
        for ((p, _), digest) in packaged.iter().zip(&written) {
            if let Err(e) = p.check_digest(digest) {
                problems.push(p.subject(), e);
            }
        }
        problems.into_result(&summary)?;
        commit(staged, out)?;
        drop(scratch);

        Ok(packaged
            .iter()
            .zip(written)
            .zip(paths)
            .map(|(((p, f), digest), path)| PackagedCode {
                path,
                used_by: p.users.iter().map(|(owner, _)| owner.to_string()).collect(),
                source: p.users[0].1.clone(),
                digest: digest.sha256,
                size: digest.size,
                archive: f.archive.is_some(),
            })
            .collect())
    }

    /// Every source to package, each once however many entries use it; a source that cannot be
    /// resolved is recorded in `problems`. Remote URLs other than `store://` are left as they are.
    async fn plan_export(&self, db: &dyn Db, problems: &mut Problems) -> Result<Vec<Planned>> {
        let mut planned: Vec<Planned> = Vec::new();
        let mut by_origin: BTreeMap<String, usize> = BTreeMap::new();
        let mut add = |origin: Origin, owner: Owner, source: &str| {
            let key = origin.identity();
            match by_origin.get(&key) {
                Some(&n) => planned[n].users.push((owner, source.to_string())),
                None => {
                    by_origin.insert(key, planned.len());
                    planned.push(Planned {
                        origin,
                        users: vec![(owner, source.to_string())],
                    });
                }
            }
        };
        for (owner, source) in self.sources()? {
            if is_store_uri(&source) {
                let resolved = match owner {
                    Owner::Function { .. } => {
                        resolve_function_artifact(db, self.name(), &source).await
                    }
                    Owner::Workflow { .. } => {
                        resolve_workflow_artifact(db, self.name(), &source).await
                    }
                };
                if let Some(artifact) = problems.keep(&owner.to_string(), resolved) {
                    add(Origin::Artifact(Box::new(artifact)), owner, &source);
                }
            } else if let Some(origin) = self.local_origin(&source) {
                add(origin, owner, &source);
            }
        }
        Ok(planned)
    }

    /// The source of every function and workflow that has one, with its owner.
    fn sources(&self) -> Result<Vec<(Owner, String)>> {
        let functions = self.functions()?.into_iter().enumerate().map(|(index, f)| {
            let owner = Owner::Function {
                index,
                name: f.name,
            };
            (owner, f.url)
        });
        let workflows = self.workflows()?.into_iter().enumerate().map(|(index, w)| {
            let owner = Owner::Workflow {
                index,
                name: w.name,
            };
            (owner, w.path)
        });
        Ok(functions
            .chain(workflows)
            .filter_map(|(owner, source)| Some((owner, source.filter(|s| !s.is_empty())?)))
            .collect())
    }

    /// A local file source (a path or `file://` URL), with the path it keeps in the zip when it
    /// is relative and inside the project folder; `None` for a remote URL.
    fn local_origin(&self, source: &str) -> Option<Origin> {
        if source.contains("://") && !source.starts_with("file://") {
            return None;
        }
        let keep = (!source.contains("://"))
            .then(|| inner_relative_path(source))
            .flatten();
        Some(Origin::Local {
            path: self.source_path(source),
            keep,
        })
    }

    /// The project's definition with every packaged source replaced by its path in the zip.
    fn exported_definition(
        &self,
        packaged: &[(&Planned, Fetched)],
        paths: &[String],
    ) -> Result<crate::model::ProjectFile> {
        let mut file = self.file.clone();
        let functions = self.functions()?;
        for ((p, _), path) in packaged.iter().zip(paths) {
            for (owner, _) in &p.users {
                match owner {
                    Owner::Function { index, .. } => {
                        let entry = &mut file.spec.functions[*index];
                        entry["url"] = Value::from(path.as_str());
                        if let Origin::Artifact(artifact) = &p.origin {
                            let merged = requirements::merge(
                                &artifact.spec.requirements,
                                &functions[*index].requirements,
                            )?;
                            if !merged.is_empty() {
                                entry["requirements"] = Value::from(merged);
                            }
                        }
                    }
                    Owner::Workflow { index, .. } => {
                        file.spec.workflows[*index]["path"] = Value::from(path.as_str());
                    }
                }
            }
        }
        Ok(file)
    }
}

/// The entry of `project.yaml` a source belongs to, by position and name.
#[derive(Debug, Clone)]
enum Owner {
    Function { index: usize, name: String },
    Workflow { index: usize, name: String },
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Function { name, .. } => write!(f, "function `{name}`"),
            Owner::Workflow { name, .. } => write!(f, "workflow `{name}`"),
        }
    }
}

/// Where a packaged payload comes from.
#[derive(Debug)]
enum Origin {
    /// A code artifact version: its inline body or the object at its `target_path`.
    Artifact(Box<Artifact>),
    /// A file on this machine; `keep` is its path in the zip when it may keep its own.
    Local { path: PathBuf, keep: Option<String> },
}

impl Origin {
    /// What makes two sources the same payload: the artifact version, or the file.
    fn identity(&self) -> String {
        match self {
            Origin::Artifact(artifact) => format!("artifact {}", artifact.store_uri()),
            Origin::Local { path, .. } => format!("file {}", path.display()),
        }
    }
}

/// One payload to package and the entries that use it (with the source as each wrote it).
#[derive(Debug)]
struct Planned {
    origin: Origin,
    users: Vec<(Owner, String)>,
}

impl Planned {
    /// What a failure to fetch it concerns, as the user reads it.
    fn subject(&self) -> String {
        let users: Vec<String> = self.users.iter().map(|(o, _)| o.to_string()).collect();
        format!("{} (`{}`)", users.join(", "), self.users[0].1)
    }

    /// An artifact's payload must have the digest its record holds (a record without one,
    /// logged before digests existed, is taken as it is).
    fn check_digest(&self, written: &WrittenDigest) -> Result<()> {
        let Origin::Artifact(artifact) = &self.origin else {
            return Ok(());
        };
        match artifact.spec.digest.as_deref() {
            Some(recorded) if recorded != written.sha256 => Err(Error::conflict(format!(
                "its payload has digest `{}`, but the artifact records `{recorded}`",
                written.sha256
            ))
            .with_hint("the object changed behind baton's back: log the code again")),
            _ => Ok(()),
        }
    }
}

/// A payload fetched into a local file (or a local source, in place).
#[derive(Debug)]
struct Fetched {
    file: PathBuf,
    archive: Option<ArchiveFormat>,
}

/// Fetches `planned` (an artifact into `scratch`; a local file is read in place) and tells an
/// archive by its content. Digests are checked as the zip is written.
async fn fetch(planned: &Planned, store: &DataStore, scratch: PathBuf) -> Result<Fetched> {
    let file = match &planned.origin {
        Origin::Local { path, .. } => path.clone(),
        Origin::Artifact(artifact) => {
            match (&artifact.spec.inline, artifact.spec.target_path.as_deref()) {
                (Some(body), _) => {
                    tokio::fs::write(&scratch, body)
                        .await
                        .io_context(|| format!("Failed to write `{}`", scratch.display()))?;
                }
                (None, Some(target)) => {
                    let mut dest = tokio::fs::File::create(&scratch)
                        .await
                        .io_context(|| format!("Failed to create `{}`", scratch.display()))?;
                    store.download(target, &mut dest).await?;
                }
                (None, None) => {
                    return Err(Error::invalid(format!(
                        "Code artifact `{}` has neither inline body nor a target_path",
                        artifact.store_uri()
                    )))
                }
            }
            scratch
        }
    };
    let checked = file.clone();
    let archive = blocking(move || detect(&checked)).await?;
    Ok(Fetched { file, archive })
}

/// Whether `a` and `b` name the same existing file.
fn is_same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `source` as a relative path of plain components (`a/b.py`), or `None` when it is absolute
/// or leaves its folder.
fn inner_relative_path(source: &str) -> Option<String> {
    let path = Path::new(source);
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The path inside the zip of every fetched payload: a local source's own relative path when it
/// has one, else `code/<key>/<file name>` for an artifact and `code/files/<file name>` for a
/// local file, with `-2`, `-3`, ... appended to the folder when that path is taken. An archive
/// whose name has no archive suffix gets one, so its function still reads as an archive source.
fn layout(packaged: &[(&Planned, Fetched)]) -> Vec<String> {
    let mut taken: Vec<String> = vec![PROJECT_FILE.to_string()];
    let mut paths = vec![String::new(); packaged.len()];
    // Kept paths first: they cannot move, the others can.
    for (n, (p, _)) in packaged.iter().enumerate() {
        if let Origin::Local {
            keep: Some(keep), ..
        } = &p.origin
        {
            if is_free(&taken, keep) {
                taken.push(keep.clone());
                paths[n] = keep.clone();
            }
        }
    }
    for (n, (p, f)) in packaged.iter().enumerate() {
        if !paths[n].is_empty() {
            continue;
        }
        let (folder, name) = match &p.origin {
            Origin::Artifact(artifact) => (
                format!("{EXPORT_CODE_DIR}/{}", artifact.db_key()),
                artifact.file_name(),
            ),
            Origin::Local { path, .. } => (
                format!("{EXPORT_CODE_DIR}/files"),
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "source".to_string()),
            ),
        };
        let name = with_archive_suffix(name, f.archive);
        let path = (1..)
            .map(|k| match k {
                1 => format!("{folder}/{name}"),
                k => format!("{folder}-{k}/{name}"),
            })
            .find(|candidate| is_free(&taken, candidate))
            .expect("some numbered folder is free");
        taken.push(path.clone());
        paths[n] = path;
    }
    paths
}

/// Whether `candidate` neither is nor contains nor sits inside a taken path.
fn is_free(taken: &[String], candidate: &str) -> bool {
    taken.iter().all(|t| {
        t != candidate
            && !candidate.starts_with(&format!("{t}/"))
            && !t.starts_with(&format!("{candidate}/"))
    })
}

/// `name`, with the suffix of `archive` appended when it has no archive suffix already.
fn with_archive_suffix(name: String, archive: Option<ArchiveFormat>) -> String {
    let Some(format) = archive else {
        return name;
    };
    let lower = name.to_ascii_lowercase();
    if [".zip", ".tar.gz", ".tgz", ".tar"]
        .iter()
        .any(|s| lower.ends_with(s))
    {
        name
    } else {
        format!("{name}.{}", format.as_str())
    }
}

/// One file of an export zip besides `project.yaml`.
#[derive(Debug)]
struct Member {
    /// Its path in the zip.
    path: String,
    /// The local file holding its bytes.
    file: PathBuf,
    /// Whether it is an archive, stored as it is rather than compressed again.
    archive: bool,
}

/// The digest and size of the bytes written for one member.
#[derive(Debug)]
struct WrittenDigest {
    sha256: String,
    size: u64,
}

/// Writes the zip into a file staged beside `out` (not yet in place): `project.yaml` first,
/// then each member, hashed as it is copied, all with mode `0644` and the zip format's fixed
/// default time, so the same project exports to the same bytes. Returns the staged file and
/// each member's digest.
fn write_zip(
    out: &Path,
    yaml: &str,
    members: &[Member],
) -> Result<(NamedTempFile, Vec<WrittenDigest>)> {
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;

    let zip_error = |e: zip::result::ZipError| {
        Error::runtime_from(format!("Failed to write `{}`", out.display()), e)
    };
    let mut staged = stage_beside(out)?;
    let mut zip = zip::ZipWriter::new(staged.as_file_mut());
    let options = SimpleFileOptions::default()
        .unix_permissions(0o644)
        .compression_method(CompressionMethod::Deflated);
    zip.start_file(PROJECT_FILE, options).map_err(zip_error)?;
    write_all(&mut zip, yaml.as_bytes(), out)?;
    let mut written = Vec::with_capacity(members.len());
    for member in members {
        let read_context = || format!("Failed to read `{}`", member.file.display());
        let input = File::open(&member.file).io_context(read_context)?;
        let size = input.metadata().io_context(read_context)?.len();
        let method = if member.archive {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        let options = options
            .compression_method(method)
            .large_file(size >= u64::from(u32::MAX));
        zip.start_file(member.path.as_str(), options)
            .map_err(zip_error)?;
        let mut hashing = Hashing::new(input);
        std::io::copy(&mut hashing, &mut zip)
            .io_context(|| format!("Failed to write `{}`", out.display()))?;
        written.push(hashing.finish());
    }
    zip.finish().map_err(zip_error)?;
    Ok((staged, written))
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    sha256: Sha256,
    size: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            sha256: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> WrittenDigest {
        WrittenDigest {
            sha256: format!("sha256:{}", hex::encode(self.sha256.finalize())),
            size: self.size,
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

fn write_all(out: &mut impl Write, bytes: &[u8], path: &Path) -> Result<()> {
    out.write_all(bytes)
        .io_context(|| format!("Failed to write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_suffix_picks_the_format() {
        for (path, format) in [
            ("out.zip", ExportFormat::Zip),
            ("dir/P.ZIP", ExportFormat::Zip),
            ("project.yaml", ExportFormat::Yaml),
            ("p.yml", ExportFormat::Yaml),
        ] {
            assert_eq!(ExportFormat::of_path(Path::new(path)).unwrap(), format);
        }
        let err = ExportFormat::of_path(Path::new("out.tar")).unwrap_err();
        assert!(err.to_string().contains("`out.tar`"), "{err}");
        assert!(err.hint().is_some());
    }

    #[test]
    fn only_relative_paths_inside_the_folder_keep_their_place() {
        assert_eq!(
            inner_relative_path("src/prep.py").as_deref(),
            Some("src/prep.py")
        );
        assert_eq!(inner_relative_path("./a/./b.py").as_deref(), Some("a/b.py"));
        assert_eq!(inner_relative_path("../x.py"), None);
        assert_eq!(inner_relative_path("a/../../x.py"), None);
        assert_eq!(inner_relative_path("/abs/x.py"), None);
    }

    #[test]
    fn taken_paths_block_themselves_their_folders_and_their_contents() {
        let taken = vec!["project.yaml".to_string(), "code/k/f.py".to_string()];
        assert!(!is_free(&taken, "project.yaml"));
        assert!(!is_free(&taken, "code/k/f.py"));
        assert!(!is_free(&taken, "code/k"));
        assert!(!is_free(&taken, "code/k/f.py/x"));
        assert!(is_free(&taken, "code/k-2/f.py"));
        assert!(is_free(&taken, "code/kk/f.py"));
    }

    #[test]
    fn archives_keep_or_gain_an_archive_suffix() {
        let zip = Some(ArchiveFormat::Zip);
        assert_eq!(with_archive_suffix("pkg.zip".into(), zip), "pkg.zip");
        assert_eq!(with_archive_suffix("pkg".into(), zip), "pkg.zip");
        assert_eq!(
            with_archive_suffix("pkg.TGZ".into(), Some(ArchiveFormat::TarGz)),
            "pkg.TGZ"
        );
        assert_eq!(
            with_archive_suffix("pkg".into(), Some(ArchiveFormat::TarGz)),
            "pkg.tar.gz"
        );
        assert_eq!(with_archive_suffix("f.py".into(), None), "f.py");
    }
}
