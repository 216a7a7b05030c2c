//! The digest-keyed code cache: resolve a code artifact to a folder on this machine.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tempfile::{NamedTempFile, TempDir};

use super::extract::{detect, extract, ArchiveFormat, ExtractLimits};
use super::manifest::Manifest;
use crate::datastore::{DataStore, Downloaded};
use crate::error::{Error, ErrorKind, IoResultExt, Result};
use crate::model::artifact::Artifact;

/// The environment variable that overrides the cache root.
pub const CACHE_DIR_ENV: &str = "BATON_CACHE_DIR";

/// A code artifact materialised on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCode {
    /// The folder holding the code: the extracted tree of an archive, or the folder holding the
    /// single file. Put it on `sys.path` to import the handler's module.
    pub dir: PathBuf,
    /// The single file of a non-archive payload, named [`Artifact::file_name`]; `None` for an
    /// archive.
    pub file: Option<PathBuf>,
    /// `sha256:<hex>` of the payload bytes.
    pub digest: String,
    /// Whether the payload was an archive (and `dir` its extracted tree).
    pub archive: bool,
    /// Whether this call downloaded the payload; `false` when it was served from the cache.
    pub fetched: bool,
}

/// Resolves code artifacts into a cache folder, fetching and unpacking each payload once.
#[derive(Debug, Clone)]
pub struct CodeCache {
    root: PathBuf,
    limits: ExtractLimits,
}

impl CodeCache {
    /// A cache rooted at `root`; entries live under `<root>/code/`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CodeCache {
            root: root.into(),
            limits: ExtractLimits::default(),
        }
    }

    /// The default cache root: `$BATON_CACHE_DIR`, else `$XDG_CACHE_HOME/baton`, else
    /// `$HOME/.cache/baton`.
    pub fn default_root() -> Result<PathBuf> {
        root_from_env(|name| std::env::var_os(name))
    }

    /// The same cache with other extraction limits.
    pub fn with_limits(mut self, limits: ExtractLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits archives are extracted under.
    pub fn limits(&self) -> ExtractLimits {
        self.limits
    }

    /// The cache root given to [`CodeCache::new`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder holding the entries, `<root>/code`.
    pub fn code_dir(&self) -> PathBuf {
        self.root.join("code")
    }

    /// Materialises the code of `artifact`, downloading its payload through `store` unless the
    /// cache already holds it.
    ///
    /// The payload is the inline body if there is one, else the object at `spec.target_path`.
    /// Its sha256 must equal `spec.digest` when the record has one; a record without a digest
    /// (logged before digests existed) is accepted with a warning. An archive (judged by content)
    /// is extracted through [`super::extract()`]; any other payload is kept as one file named
    /// [`Artifact::file_name`]. Nothing is left in the cache when any step fails.
    pub async fn resolve(&self, artifact: &Artifact, store: &DataStore) -> Result<ResolvedCode> {
        let uri = artifact.store_uri().to_string();
        if let Some(hit) = self.cached(artifact)? {
            tracing::debug!(%uri, digest = %hit.digest, dir = %hit.dir.display(), "code cache hit");
            return Ok(hit);
        }
        let file_name = safe_file_name(artifact, &uri)?;
        let expected = expected_digest(artifact, &uri)?;
        if let Some(body) = &artifact.spec.inline {
            let actual = hex::encode(Sha256::digest(body.as_bytes()));
            tracing::debug!(%uri, digest = %actual, "code cache miss (inline)");
            let entry = self.code_dir().join(file_entry_name(&actual, &file_name));
            let bytes = body.clone().into_bytes();
            let (dir, name) = (self.code_dir(), file_name.clone());
            let entry = blocking(move || {
                ensure_dir(&dir)?;
                let staged = stage(&dir, ".inline-")?;
                let path = staged.path().join(TREE).join(&name);
                std::fs::write(&path, &bytes)
                    .io_context(|| format!("Failed to write `{}`", path.display()))?;
                publish(staged, &entry)?;
                Ok(entry)
            })
            .await?;
            return Ok(file_result(entry, &file_name, &actual, true));
        }

        let target = artifact.spec.target_path.as_deref().ok_or_else(|| {
            Error::invalid(format!(
                "Code artifact `{uri}` has neither inline body nor a target_path"
            ))
        })?;
        if expected.is_none() {
            tracing::warn!(
                %uri,
                "Code artifact `{uri}` has no recorded digest (logged by an older version); \
                 its payload cannot be verified"
            );
        }
        self.fetch(&uri, target, expected.as_deref(), &file_name, store)
            .await
    }

    /// The code of `artifact` if the cache already holds it (checked as
    /// [`CodeCache::resolve`] checks it), without fetching anything; `None` on a miss.
    pub fn cached(&self, artifact: &Artifact) -> Result<Option<ResolvedCode>> {
        let uri = artifact.store_uri().to_string();
        let file_name = safe_file_name(artifact, &uri)?;
        let expected = expected_digest(artifact, &uri)?;
        if let Some(body) = &artifact.spec.inline {
            let actual = hex::encode(Sha256::digest(body.as_bytes()));
            check_digest(&uri, "its inline body", expected.as_deref(), &actual)?;
            let entry = self.code_dir().join(file_entry_name(&actual, &file_name));
            return Ok(verified_entry(&entry, &uri)
                .then(|| file_result(entry, &file_name, &actual, false)));
        }
        Ok(expected.and_then(|hex| self.lookup(&hex, &file_name, &uri)))
    }

    /// Materialises the payload at `url` (an archive or a single file, named after the URL's
    /// last segment) when no digest was recorded for it: a function source given by URL. It is
    /// fetched every time (only its digest can say whether the cache holds it), and cached under
    /// that digest like any payload.
    pub async fn resolve_url(&self, url: &str, store: &DataStore) -> Result<ResolvedCode> {
        let name = url
            .rsplit('/')
            .next()
            .map(|n| n.split(['?', '#']).next().unwrap_or(n))
            .unwrap_or_default();
        if name.is_empty() || name == ".." || name.len() > MAX_FILE_NAME_LEN {
            return Err(Error::invalid(format!(
                "The source `{url}` names no file (its path must end with the file's name)"
            )));
        }
        self.fetch(url, url, None, name, store).await
    }

    /// Fetches the payload at `target` for `uri` (the cache does not hold it: see
    /// [`CodeCache::cached`]), checks it is `expected` when given, and publishes it.
    async fn fetch(
        &self,
        uri: &str,
        target: &str,
        expected: Option<&str>,
        file_name: &str,
        store: &DataStore,
    ) -> Result<ResolvedCode> {
        tracing::debug!(%uri, %target, "code cache miss: downloading");

        let code_dir = self.code_dir();
        ensure_dir(&code_dir)?;
        // The download is hashed as it arrives: the file is not read again for its digest.
        let (download, downloaded) = download_with_retries(store, target, &code_dir).await?;
        let actual = downloaded.sha256_hex;

        let path = download.path().to_path_buf();
        let format = blocking(move || detect(&path)).await?;
        check_digest(uri, &format!("its payload `{target}`"), expected, &actual)?;

        let limits = self.limits;
        let hex = actual.clone();
        let dir = code_dir.clone();
        let name = file_name.to_string();
        let archive = format.is_some();
        let entry =
            blocking(move || place(download, format, &dir, &actual, &name, &limits)).await?;
        tracing::debug!(%uri, digest = %hex, dir = %entry.display(), archive, "code cached");
        Ok(if archive {
            ResolvedCode {
                dir: entry.join(TREE),
                file: None,
                digest: format!("sha256:{hex}"),
                archive: true,
                fetched: true,
            }
        } else {
            file_result(entry, file_name, &hex, true)
        })
    }

    /// The cached entry for a payload of digest `hex`, archive or single file, if it is there
    /// and unchanged since it was published.
    fn lookup(&self, hex: &str, file_name: &str, uri: &str) -> Option<ResolvedCode> {
        let code_dir = self.code_dir();
        let entry = code_dir.join(hex);
        if verified_entry(&entry, uri) {
            return Some(ResolvedCode {
                dir: entry.join(TREE),
                file: None,
                digest: format!("sha256:{hex}"),
                archive: true,
                fetched: false,
            });
        }
        let entry = code_dir.join(file_entry_name(hex, file_name));
        verified_entry(&entry, uri).then(|| file_result(entry, file_name, hex, false))
    }
}

/// The payload digest `artifact` records (its hex), if any.
fn expected_digest(artifact: &Artifact, uri: &str) -> Result<Option<String>> {
    artifact
        .spec
        .digest
        .as_deref()
        .map(|d| parse_digest(d, uri))
        .transpose()
}

/// How often a download that failed on the way (a dropped connection, a truncated body) is
/// tried, and the pauses between tries.
const DOWNLOAD_RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(200), Duration::from_secs(1)];

/// Downloads `target` into a fresh temporary file in `dir`. A try that fails on the way is
/// repeated into a new file; the file of a failed try is deleted at once (dropping it does), so
/// no partial download is ever left in the cache. Errors the caller must fix (a missing object,
/// a payload above the size limit, a malformed URL) are not retried.
async fn download_with_retries(
    store: &DataStore,
    target: &str,
    dir: &Path,
) -> Result<(NamedTempFile, Downloaded)> {
    let mut delays = DOWNLOAD_RETRY_DELAYS.iter();
    loop {
        let download = NamedTempFile::with_prefix_in(".download-", dir)
            .io_context(|| format!("Failed to create a file in `{}`", dir.display()))?;
        let std_file = download
            .as_file()
            .try_clone()
            .io_context(|| format!("Failed to open `{}`", download.path().display()))?;
        let mut file = tokio::fs::File::from_std(std_file);
        let result = store.download(target, &mut file).await;
        drop(file);
        match result {
            Ok(downloaded) => return Ok((download, downloaded)),
            Err(e) if e.kind() == ErrorKind::Runtime => match delays.next() {
                Some(delay) => {
                    tracing::warn!("Downloading `{target}` failed ({e}); trying again");
                    drop(download);
                    tokio::time::sleep(*delay).await;
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

/// The folder inside an entry that holds the code; the entry also holds its [`Manifest`].
pub(super) const TREE: &str = "tree";

/// The manifest file inside an entry.
const MANIFEST: &str = "manifest.json";

/// Whether `entry` is a published entry whose files are as they were published. An entry that
/// was changed (or comes from an older baton, without a manifest) is evicted, so the caller
/// fetches the payload again; the record of the run then claims a digest that was checked.
pub(super) fn verified_entry(entry: &Path, uri: &str) -> bool {
    if !entry.is_dir() {
        return false;
    }
    let problem = match Manifest::read(&entry.join(MANIFEST)) {
        None => "it has no readable manifest (cached by an older baton?)".to_string(),
        Some(manifest) => match manifest.first_change(&entry.join(TREE)) {
            None => return true,
            Some(file) => format!("`{}` changed since it was cached", file.display()),
        },
    };
    tracing::warn!("The cached code of `{uri}` cannot be trusted: {problem}; fetching it again");
    evict(entry);
    false
}

/// Moves `entry` out of the way in one step, then deletes it. Losing a race against another
/// process evicting or republishing the same entry is fine: either way the caller fetches anew.
fn evict(entry: &Path) {
    let Some(dir) = entry.parent() else { return };
    let Ok(trash) = tempfile::Builder::new().prefix(".evict-").tempdir_in(dir) else {
        return;
    };
    let target = trash.path().join("entry");
    if let Err(e) = std::fs::rename(entry, &target) {
        tracing::debug!(entry = %entry.display(), "eviction lost a race: {e}");
    }
    // Dropping `trash` deletes it with whatever was moved into it.
}

/// Unpacks (an archive) or moves (a single file) the verified download into a staging folder and
/// publishes it as the entry for digest `hex`, unless the entry already exists.
fn place(
    download: NamedTempFile,
    format: Option<ArchiveFormat>,
    dir: &Path,
    hex: &str,
    file_name: &str,
    limits: &ExtractLimits,
) -> Result<PathBuf> {
    let entry = match format {
        Some(_) => dir.join(hex),
        None => dir.join(file_entry_name(hex, file_name)),
    };
    if entry.is_dir() {
        return Ok(entry);
    }
    let staged = stage(dir, ".stage-")?;
    let tree = staged.path().join(TREE);
    match format {
        Some(format) => {
            extract(download.path(), format, &tree, limits)?;
        }
        None => {
            let dest = tree.join(file_name);
            download
                .persist(&dest)
                .map_err(|e| Error::io(format!("Failed to move `{}`", dest.display()), e.error))?;
            set_readable(&dest)?;
        }
    }
    publish(staged, &entry)?;
    Ok(entry)
}

/// A single file's entry is named after the digest and the file name, so two artifacts with the
/// same bytes under different names each find their file under its own name.
fn file_entry_name(hex: &str, file_name: &str) -> String {
    format!("{hex}-{file_name}")
}

fn file_result(entry: PathBuf, file_name: &str, hex: &str, fetched: bool) -> ResolvedCode {
    let tree = entry.join(TREE);
    ResolvedCode {
        file: Some(tree.join(file_name)),
        dir: tree,
        digest: format!("sha256:{hex}"),
        archive: false,
        fetched,
    }
}

/// The longest file name a cached single-file payload may have (file systems allow 255 bytes;
/// the cache adds the digest to it in the entry's name).
pub const MAX_FILE_NAME_LEN: usize = 200;

/// The artifact's file name, refused if it could address anything but one file in one folder.
fn safe_file_name(artifact: &Artifact, uri: &str) -> Result<String> {
    let name = artifact.file_name();
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.len() > MAX_FILE_NAME_LEN
    {
        return Err(Error::invalid(format!(
            "Code artifact `{uri}` has an unusable file name `{}`",
            name.escape_debug()
        )));
    }
    Ok(name)
}

/// [`CodeCache::default_root`] over an environment lookup, so tests need not mutate the process
/// environment.
fn root_from_env(get: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    let var = |name: &str| get(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(CACHE_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    // The XDG spec says to ignore a relative XDG_CACHE_HOME.
    if let Some(dir) = var("XDG_CACHE_HOME").filter(|d| Path::new(d).is_absolute()) {
        return Ok(PathBuf::from(dir).join("baton"));
    }
    if let Some(home) = var("HOME") {
        return Ok(PathBuf::from(home).join(".cache").join("baton"));
    }
    Err(Error::invalid_with_hint(
        "Cannot locate the baton cache folder: none of `BATON_CACHE_DIR`, `XDG_CACHE_HOME` and \
         `HOME` is set",
        "set `BATON_CACHE_DIR` to a writable folder",
    ))
}

/// The lowercase hex of a `sha256:<hex>` digest.
fn parse_digest(digest: &str, uri: &str) -> Result<String> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            Error::invalid(format!(
                "Code artifact `{uri}` has a malformed digest `{digest}`: expected \
                 `sha256:<64 hex digits>`"
            ))
        })
}

fn check_digest(uri: &str, what: &str, expected: Option<&str>, actual: &str) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(Error::runtime(format!(
            "Code artifact `{uri}`: {what} has digest `sha256:{actual}` but the artifact recorded \
             `sha256:{expected}`; the payload changed after it was logged (log the code again to \
             record the new version)"
        ))),
        _ => Ok(()),
    }
}

pub(super) fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).io_context(|| format!("Failed to create `{}`", dir.display()))
}

/// A fresh staging folder in `dir`, with the empty tree the payload goes into.
pub(super) fn stage(dir: &Path, prefix: &str) -> Result<TempDir> {
    let staged = TempDir::with_prefix_in(prefix, dir)
        .io_context(|| format!("Failed to create a folder in `{}`", dir.display()))?;
    let tree = staged.path().join(TREE);
    std::fs::create_dir(&tree).io_context(|| format!("Failed to create `{}`", tree.display()))?;
    Ok(staged)
}

/// Writes the staged tree's manifest and renames the staged folder to `entry` in one step, so
/// readers see a whole entry (tree and manifest) or none. If another resolver published the same
/// entry first, its copy is kept and ours discarded.
pub(super) fn publish(staged: TempDir, entry: &Path) -> Result<()> {
    let tree = staged.path().join(TREE);
    set_dir_readable(&tree)?;
    Manifest::seal(&tree)?.write(&staged.path().join(MANIFEST))?;
    set_dir_readable(staged.path())?;
    match std::fs::rename(staged.path(), entry) {
        Ok(()) => {
            // The folder now lives at `entry`; stop TempDir from deleting anything on drop.
            let _ = staged.keep();
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
            ) && entry.is_dir() =>
        {
            tracing::debug!(entry = %entry.display(), "code cache entry published concurrently; using it");
            Ok(())
        }
        Err(e) => Err(Error::io(
            format!(
                "Failed to move `{}` to `{}`",
                staged.path().display(),
                entry.display()
            ),
            e,
        )),
    }
}

/// TempDir creates `0o700` folders; entries are shared read-only code like any install.
#[cfg(unix)]
fn set_dir_readable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .io_context(|| format!("Failed to set the mode of `{}`", dir.display()))
}

#[cfg(not(unix))]
fn set_dir_readable(_dir: &Path) -> Result<()> {
    Ok(())
}

/// NamedTempFile creates `0o600` files; a cached single file is `0o644` like an extracted one.
#[cfg(unix)]
fn set_readable(file: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644))
        .io_context(|| format!("Failed to set the mode of `{}`", file.display()))
}

#[cfg(not(unix))]
fn set_readable(_file: &Path) -> Result<()> {
    Ok(())
}

/// Runs file-system work off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal_from("A code cache task failed", e))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_root_follows_the_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        const ALL: &[(&str, &str)] = &[
            (CACHE_DIR_ENV, "/srv/cache"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(root_from_env(env(ALL)).unwrap(), Path::new("/srv/cache"));
        assert_eq!(
            root_from_env(env(&[
                (CACHE_DIR_ENV, ""),
                ("XDG_CACHE_HOME", "/xdg"),
                ("HOME", "/h")
            ]))
            .unwrap(),
            Path::new("/xdg/baton")
        );
        assert_eq!(
            root_from_env(env(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/home/u")])).unwrap(),
            Path::new("/home/u/.cache/baton")
        );
        let err = root_from_env(env(&[])).unwrap_err();
        assert!(err.to_string().contains("BATON_CACHE_DIR"), "{err}");
    }

    #[test]
    fn publishing_onto_an_entry_another_resolver_made_keeps_theirs() {
        let tmp = TempDir::new().unwrap();
        let entry = tmp.path().join("abc");
        std::fs::create_dir(&entry).unwrap();
        std::fs::write(entry.join("theirs.py"), "x = 1").unwrap();

        let staged = stage(tmp.path(), ".extract-").unwrap();
        std::fs::write(staged.path().join(TREE).join("ours.py"), "x = 1").unwrap();
        let staged_path = staged.path().to_path_buf();
        publish(staged, &entry).unwrap();

        assert!(entry.join("theirs.py").exists());
        assert!(!entry.join(TREE).exists());
        assert!(!staged_path.exists(), "the losing copy was not discarded");
    }

    #[test]
    fn publishing_a_fresh_entry_moves_the_staged_folder() {
        let tmp = TempDir::new().unwrap();
        let entry = tmp.path().join("abc");
        let staged = stage(tmp.path(), ".extract-").unwrap();
        std::fs::write(staged.path().join(TREE).join("ours.py"), "x = 1").unwrap();
        let staged_path = staged.path().to_path_buf();
        publish(staged, &entry).unwrap();
        assert!(entry.join(TREE).join("ours.py").exists());
        assert!(verified_entry(&entry, "store://x"));
        assert!(!staged_path.exists());
    }

    #[test]
    fn digests_are_parsed_and_normalised() {
        let hex = "AB".repeat(32);
        assert_eq!(
            parse_digest(&format!("sha256:{hex}"), "u").unwrap(),
            "ab".repeat(32)
        );
        for bad in [hex.clone(), format!("sha1:{hex}"), "sha256:abc".to_string()] {
            let err = parse_digest(&bad, "store://x").unwrap_err().to_string();
            assert!(err.contains("malformed digest"), "{err}");
        }
    }
}
