//! The code cache: resolution of inline, single-file and archive payloads through real files,
//! digest checks, warm hits that skip the download, and concurrent resolvers.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use baton::code::{CodeCache, ResolvedCode};
use baton::datastore::DataStore;
use baton::error::ErrorKind;
use baton::model::artifact::{Artifact, ArtifactMetadata, CodeArtifactSpec};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::ZipWriter;

const TRAINER: &[u8] = b"from utils import helper\n\ndef main(context):\n    return helper()\n";
const UTILS: &[u8] = b"def helper():\n    return 42\n";
const MODELS: &[u8] = b"MODELS = ['a', 'b']\n";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn artifact(key: &str) -> Artifact {
    Artifact {
        kind: "code".to_string(),
        metadata: ArtifactMetadata {
            key: key.to_string(),
            project: "demo".to_string(),
            tree: "tree1".to_string(),
            uid: Some("uid1".to_string()),
            ..Default::default()
        },
        spec: CodeArtifactSpec::default(),
        status: Default::default(),
        extra: Default::default(),
    }
}

/// An artifact whose payload is `bytes`, stored at `path`, with its digest recorded.
fn stored(key: &str, path: &Path, bytes: &[u8]) -> Artifact {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    let mut a = artifact(key);
    a.spec.target_path = Some(path.to_str().unwrap().to_string());
    a.spec.digest = Some(sha256(bytes));
    a
}

fn package_zip() -> Vec<u8> {
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default();
    for (name, data) in [
        ("trainer.py", TRAINER),
        ("utils.py", UTILS),
        ("pkg/__init__.py", b"".as_slice()),
        ("pkg/models.py", MODELS),
    ] {
        zip.start_file(name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The names in `<root>/code`, sorted; temporary work would show up here too.
fn cache_entries(root: &Path) -> Vec<String> {
    let code = root.join("code");
    if !code.exists() {
        return Vec::new();
    }
    let mut names: Vec<_> = fs::read_dir(code)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

struct Scene {
    tmp: TempDir,
    store: DataStore,
}

impl Scene {
    fn new() -> Self {
        Scene {
            tmp: TempDir::new().unwrap(),
            store: DataStore::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn cache_root(&self) -> PathBuf {
        self.path("cache")
    }

    fn cache(&self) -> CodeCache {
        CodeCache::new(self.cache_root())
    }

    async fn resolve(&self, a: &Artifact) -> baton::Result<ResolvedCode> {
        self.cache().resolve(a, &self.store).await
    }
}

#[tokio::test]
async fn an_inline_body_is_written_as_the_keys_module() {
    let scene = Scene::new();
    let body = "def main(context):\n    return 'inline'\n";
    let mut a = artifact("inline-fn");
    a.spec.inline = Some(body.to_string());
    a.spec.digest = Some(sha256(body.as_bytes()));

    let cold = scene.resolve(&a).await.unwrap();
    let hex = sha256(body.as_bytes())
        .trim_start_matches("sha256:")
        .to_string();
    assert_eq!(
        cold.dir,
        scene
            .cache_root()
            .join(format!("code/{hex}-inline-fn.py/tree"))
    );
    assert_eq!(cold.file, Some(cold.dir.join("inline-fn.py")));
    assert_eq!(
        fs::read_to_string(cold.file.as_ref().unwrap()).unwrap(),
        body
    );
    assert_eq!(cold.digest, sha256(body.as_bytes()));
    assert!(!cold.archive);
    assert!(cold.fetched);

    let warm = scene.resolve(&a).await.unwrap();
    assert_eq!(warm.dir, cold.dir);
    assert!(!warm.fetched);

    // A wrong digest is refused.
    a.spec.digest = Some(sha256(b"something else"));
    let err = scene.resolve(&a).await.unwrap_err().to_string();
    assert!(err.contains("changed after it was logged"), "{err}");
}

#[tokio::test]
async fn an_inline_body_is_never_extracted() {
    // A tar of ASCII files is valid UTF-8, so it can be an inline body; it stays one file.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(UTILS.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "utils.py", UTILS).unwrap();
    let body = String::from_utf8(builder.into_inner().unwrap()).unwrap();

    let scene = Scene::new();
    let mut a = artifact("bundle");
    a.spec.inline = Some(body.clone());
    a.spec.src_path = Some("bundle.tar".to_string());
    let resolved = scene.resolve(&a).await.unwrap();
    assert!(!resolved.archive);
    assert_eq!(resolved.file, Some(resolved.dir.join("bundle.tar")));
    assert_eq!(fs::read_to_string(resolved.file.unwrap()).unwrap(), body);
    assert!(!resolved.dir.join("utils.py").exists());
}

#[tokio::test]
async fn a_single_file_is_cached_under_its_digest_and_name() {
    let scene = Scene::new();
    let mut a = stored("trainer", &scene.path("store/v1/trainer.py"), TRAINER);
    a.spec.src_path = Some("./src/trainer.py".to_string());

    let resolved = scene.resolve(&a).await.unwrap();
    let hex = hex::encode(Sha256::digest(TRAINER));
    assert_eq!(
        resolved.dir,
        scene
            .cache_root()
            .join(format!("code/{hex}-trainer.py/tree"))
    );
    assert_eq!(resolved.file, Some(resolved.dir.join("trainer.py")));
    assert_eq!(fs::read(resolved.file.unwrap()).unwrap(), TRAINER);
    assert_eq!(resolved.digest, sha256(TRAINER));
    assert!(!resolved.archive);
    assert!(resolved.fetched);
    assert_eq!(
        cache_entries(&scene.cache_root()),
        [format!("{hex}-trainer.py")]
    );
}

#[tokio::test]
async fn an_archive_is_extracted_under_its_digest() {
    let scene = Scene::new();
    let bytes = package_zip();
    let a = stored("my-pkg", &scene.path("store/my_pkg.zip"), &bytes);

    let resolved = scene.resolve(&a).await.unwrap();
    let hex = hex::encode(Sha256::digest(&bytes));
    assert_eq!(
        resolved.dir,
        scene.cache_root().join("code").join(&hex).join("tree")
    );
    assert_eq!(resolved.file, None);
    assert!(resolved.archive);
    assert!(resolved.fetched);
    assert_eq!(resolved.digest, sha256(&bytes));
    assert_eq!(fs::read(resolved.dir.join("trainer.py")).unwrap(), TRAINER);
    assert_eq!(fs::read(resolved.dir.join("utils.py")).unwrap(), UTILS);
    assert_eq!(
        fs::read(resolved.dir.join("pkg/models.py")).unwrap(),
        MODELS
    );
    // Only the entry: the download and the staging folder are gone.
    assert_eq!(cache_entries(&scene.cache_root()), [hex]);
}

#[tokio::test]
async fn a_warm_resolve_neither_downloads_nor_extracts() {
    for (name, bytes) in [("pkg.zip", package_zip()), ("trainer.py", TRAINER.to_vec())] {
        let scene = Scene::new();
        let payload = scene.path(&format!("store/{name}"));
        let a = stored("code", &payload, &bytes);

        let cold = scene.resolve(&a).await.unwrap();
        assert!(cold.fetched);
        fs::remove_file(&payload).unwrap();

        // The payload is really gone: a cache without the entry cannot resolve it.
        let other = CodeCache::new(scene.path("other-cache"));
        let err = other.resolve(&a, &scene.store).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

        let warm = scene.resolve(&a).await.unwrap();
        assert!(!warm.fetched, "{name}");
        assert_eq!(
            warm,
            ResolvedCode {
                fetched: false,
                ..cold
            }
        );
    }
}

#[tokio::test]
async fn a_changed_payload_is_refused_and_leaves_nothing() {
    for (name, original, changed) in [
        (
            "trainer.py",
            TRAINER.to_vec(),
            b"print('tampered')\n".to_vec(),
        ),
        ("pkg.zip", package_zip(), {
            let mut z = package_zip();
            let last = z.len() - 1;
            z[last] ^= 0xff; // still a zip prefix, different bytes
            z
        }),
    ] {
        let scene = Scene::new();
        let payload = scene.path(&format!("store/{name}"));
        let a = stored("code", &payload, &original);
        fs::write(&payload, &changed).unwrap();

        let err = scene.resolve(&a).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("store://artifacts/demo/code"), "{msg}");
        assert!(msg.contains(payload.to_str().unwrap()), "{msg}");
        assert!(msg.contains(&sha256(&original)), "{msg}");
        assert!(msg.contains(&sha256(&changed)), "{msg}");
        assert!(msg.contains("changed after it was logged"), "{msg}");
        assert!(cache_entries(&scene.cache_root()).is_empty());
    }
}

#[tokio::test]
async fn a_legacy_record_without_digest_is_accepted() {
    let scene = Scene::new();
    let mut a = stored("legacy", &scene.path("store/utils.py"), UTILS);
    a.spec.digest = None;
    let resolved = scene.resolve(&a).await.unwrap();
    assert_eq!(resolved.digest, sha256(UTILS));
    assert_eq!(fs::read(resolved.file.unwrap()).unwrap(), UTILS);
}

#[tokio::test]
async fn a_record_without_payload_or_with_a_bad_digest_is_refused() {
    let scene = Scene::new();
    let a = artifact("empty");
    let err = scene.resolve(&a).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        "Code artifact `store://artifacts/demo/empty#0@tree1^uid1` has neither inline body nor \
         a target_path"
    );

    let mut a = stored("bad", &scene.path("store/x.py"), UTILS);
    a.spec.digest = Some("md5:abc".to_string());
    let err = scene.resolve(&a).await.unwrap_err().to_string();
    assert!(err.contains("malformed digest `md5:abc`"), "{err}");
    assert!(cache_entries(&scene.cache_root()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_resolvers_of_one_digest_all_succeed() {
    for (name, bytes) in [("pkg.zip", package_zip()), ("trainer.py", TRAINER.to_vec())] {
        let scene = Scene::new();
        let a = stored("code", &scene.path(&format!("store/{name}")), &bytes);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                // Separate cache values over one root, as separate processes would have.
                let cache = CodeCache::new(scene.cache_root());
                let (a, store) = (a.clone(), scene.store.clone());
                tokio::spawn(async move { cache.resolve(&a, &store).await })
            })
            .collect();
        let mut dirs = Vec::new();
        for task in tasks {
            let resolved = task.await.unwrap().unwrap();
            match &resolved.file {
                Some(file) => assert_eq!(fs::read(file).unwrap(), bytes),
                None => assert_eq!(fs::read(resolved.dir.join("trainer.py")).unwrap(), TRAINER),
            }
            dirs.push(resolved.dir);
        }
        dirs.dedup();
        assert_eq!(dirs.len(), 1, "resolvers disagree: {dirs:?}");
        // One entry; every loser's download and staging folder was cleaned up.
        assert_eq!(cache_entries(&scene.cache_root()).len(), 1, "{name}");
    }
}

#[test]
fn concurrent_resolvers_in_threads_all_succeed() {
    let scene = Scene::new();
    let bytes = package_zip();
    let a = stored("code", &scene.path("store/pkg.zip"), &bytes);
    // All threads start resolving together, so several miss the cache and race to publish.
    let start = std::sync::Barrier::new(4);
    let dirs: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (a, root, start) = (&a, scene.cache_root(), &start);
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    start.wait();
                    rt.block_on(CodeCache::new(root).resolve(a, &DataStore::new()))
                        .unwrap()
                        .dir
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(dirs.iter().all(|d| *d == dirs[0]), "{dirs:?}");
    assert_eq!(cache_entries(&scene.cache_root()).len(), 1);
}

#[tokio::test]
async fn equal_bytes_under_different_names_each_get_their_file() {
    let scene = Scene::new();
    let a = stored("train", &scene.path("store/a/train.py"), TRAINER);
    let b = stored("model", &scene.path("store/b/model.py"), TRAINER);

    let ra = scene.resolve(&a).await.unwrap();
    let rb = scene.resolve(&b).await.unwrap();
    assert_eq!(ra.digest, rb.digest);
    assert_ne!(ra.dir, rb.dir);
    assert_eq!(ra.file.as_ref().unwrap().file_name().unwrap(), "train.py");
    assert_eq!(rb.file.as_ref().unwrap().file_name().unwrap(), "model.py");
    assert_eq!(fs::read(ra.file.unwrap()).unwrap(), TRAINER);
    assert_eq!(fs::read(rb.file.unwrap()).unwrap(), TRAINER);
    assert!(
        rb.fetched,
        "the second name must not be mistaken for a hit on the first"
    );
}

#[tokio::test]
async fn an_edited_cache_entry_is_fetched_again() {
    for (name, bytes, module) in [
        ("pkg.zip", package_zip(), "utils.py"),
        ("trainer.py", TRAINER.to_vec(), "trainer.py"),
    ] {
        let scene = Scene::new();
        let a = stored("code", &scene.path(&format!("store/{name}")), &bytes);
        let cold = scene.resolve(&a).await.unwrap();
        let edited = cold.dir.join(module);
        fs::write(&edited, "def helper():\n    return 'tampered'\n").unwrap();

        let again = scene.resolve(&a).await.unwrap();
        assert!(again.fetched, "{name}: an edited entry was served as a hit");
        assert_eq!(again.dir, cold.dir);
        let expected = if module == "utils.py" { UTILS } else { TRAINER };
        assert_eq!(fs::read(&edited).unwrap(), expected, "{name}");
        // One entry again; the evicted copy is gone.
        assert_eq!(cache_entries(&scene.cache_root()).len(), 1, "{name}");
        assert!(!scene.resolve(&a).await.unwrap().fetched, "{name}");
    }
}

#[tokio::test]
async fn a_removed_file_or_an_entry_without_manifest_is_fetched_again() {
    let scene = Scene::new();
    let bytes = package_zip();
    let a = stored("pkg", &scene.path("store/pkg.zip"), &bytes);
    let cold = scene.resolve(&a).await.unwrap();
    fs::remove_file(cold.dir.join("pkg/models.py")).unwrap();
    assert!(scene.resolve(&a).await.unwrap().fetched);
    assert_eq!(fs::read(cold.dir.join("pkg/models.py")).unwrap(), MODELS);

    // An entry laid out by an older baton (no manifest) is not trusted either.
    let entry = cold.dir.parent().unwrap();
    fs::remove_file(entry.join("manifest.json")).unwrap();
    assert!(scene.resolve(&a).await.unwrap().fetched);
    assert!(entry.join("manifest.json").is_file());
}

#[tokio::test]
async fn files_a_handler_adds_beside_its_code_keep_the_entry_warm() {
    let scene = Scene::new();
    let a = stored("pkg", &scene.path("store/pkg.zip"), &package_zip());
    let cold = scene.resolve(&a).await.unwrap();
    fs::write(cold.dir.join("output.csv"), "a,b\n").unwrap();
    assert!(!scene.resolve(&a).await.unwrap().fetched);
}
