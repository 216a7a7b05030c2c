//! The safe extractor against hostile archives built here byte by byte, and against good ones.
//!
//! Every hostile archive must be refused with an error naming the offending member, must write
//! nothing outside the target folder (a sentinel folder beside it stays empty), and, resolved
//! through the code cache, must leave nothing in the cache.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use baton::code::{detect, extract, ArchiveFormat, CodeCache, ExtractLimits};
use baton::datastore::DataStore;
use baton::error::ErrorKind;
use baton::model::artifact::{Artifact, ArtifactMetadata, CodeArtifactSpec};
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use tar::EntryType;
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

// ---------------------------------------------------------------------------------------------
// Archive builders. Tar headers are written raw: the tar crate's setters refuse `..` and
// absolute names, which is exactly what these tests need to produce.

struct TarMember {
    name: String,
    kind: EntryType,
    data: Vec<u8>,
    link: Option<String>,
    mode: u32,
}

fn file(name: &str, data: &[u8]) -> TarMember {
    TarMember {
        name: name.to_string(),
        kind: EntryType::Regular,
        data: data.to_vec(),
        link: None,
        mode: 0o644,
    }
}

fn dir(name: &str) -> TarMember {
    TarMember {
        name: name.to_string(),
        kind: EntryType::Directory,
        data: Vec::new(),
        link: None,
        mode: 0o755,
    }
}

fn link(kind: EntryType, name: &str, target: &str) -> TarMember {
    TarMember {
        name: name.to_string(),
        kind,
        data: Vec::new(),
        link: Some(target.to_string()),
        mode: 0o777,
    }
}

fn special(kind: EntryType, name: &str) -> TarMember {
    TarMember {
        name: name.to_string(),
        kind,
        data: Vec::new(),
        link: None,
        mode: 0o644,
    }
}

fn tar_bytes(members: &[TarMember]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut header = tar::Header::new_ustar();
        {
            let old = header.as_old_mut();
            assert!(m.name.len() <= old.name.len(), "name too long: {}", m.name);
            old.name[..m.name.len()].copy_from_slice(m.name.as_bytes());
            if let Some(target) = &m.link {
                old.linkname[..target.len()].copy_from_slice(target.as_bytes());
            }
        }
        header.set_entry_type(m.kind);
        header.set_mode(m.mode);
        header.set_size(m.data.len() as u64);
        header.set_mtime(1_700_000_000);
        header.set_uid(1000);
        header.set_gid(1000);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&m.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

enum ZipMember<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

fn zip_bytes(members: &[ZipMember]) -> Vec<u8> {
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for m in members {
        match m {
            ZipMember::File(name, data) => {
                zip.start_file(*name, options).unwrap();
                zip.write_all(data).unwrap();
            }
            ZipMember::Symlink(name, target) => zip.add_symlink(*name, *target, options).unwrap(),
        }
    }
    zip.finish().unwrap().into_inner()
}

// ---------------------------------------------------------------------------------------------
// The scene: `<tmp>/box/target` is where archives go, `<tmp>/box/sentinel` must stay empty.

struct Scene {
    tmp: TempDir,
}

impl Scene {
    fn new() -> Self {
        let tmp = TempDir::new().unwrap();
        fs::create_dir_all(tmp.path().join("box/target")).unwrap();
        fs::create_dir_all(tmp.path().join("box/sentinel")).unwrap();
        Scene { tmp }
    }

    fn target(&self) -> PathBuf {
        self.tmp.path().join("box/target")
    }

    fn sentinel(&self) -> PathBuf {
        self.tmp.path().join("box/sentinel")
    }

    fn cache_root(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn payload(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.tmp.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Nothing escaped: the box holds only the target and the still-empty sentinel.
    fn assert_contained(&self) {
        let mut names: Vec<_> = fs::read_dir(self.tmp.path().join("box"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["sentinel", "target"],
            "something was written beside the target"
        );
        assert_eq!(
            fs::read_dir(self.sentinel()).unwrap().count(),
            0,
            "something was written into the sentinel folder"
        );
    }

    /// Nothing was left in the cache: no entry, no temporary file or folder.
    fn assert_cache_empty(&self) {
        let code = self.cache_root().join("code");
        if code.exists() {
            let left: Vec<_> = fs::read_dir(&code)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(left.is_empty(), "left in the cache: {left:?}");
        }
    }
}

fn artifact_for(payload: &Path) -> Artifact {
    let bytes = fs::read(payload).unwrap();
    Artifact {
        kind: "code".to_string(),
        metadata: ArtifactMetadata {
            key: "my-code".to_string(),
            project: "demo".to_string(),
            tree: "tree1".to_string(),
            uid: Some("uid1".to_string()),
            ..Default::default()
        },
        spec: CodeArtifactSpec {
            target_path: Some(payload.to_str().unwrap().to_string()),
            digest: Some(format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))),
            ..Default::default()
        },
        status: Default::default(),
        extra: Default::default(),
    }
}

/// `bytes` is refused both by `extract` and through the cache, naming `member` and `why`.
async fn assert_refused(bytes: &[u8], format: ArchiveFormat, member: &str, why: &str) {
    assert_refused_with(bytes, format, member, why, ExtractLimits::default()).await
}

async fn assert_refused_with(
    bytes: &[u8],
    format: ArchiveFormat,
    member: &str,
    why: &str,
    limits: ExtractLimits,
) {
    let scene = Scene::new();
    let payload = scene.payload("payload", bytes);
    assert_eq!(detect(&payload).unwrap(), Some(format));

    let err = extract(&payload, format, &scene.target(), &limits).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{msg}");
    assert!(
        msg.contains(&format!("Refusing to extract archive member `{member}`")),
        "error does not name `{member}`: {msg}"
    );
    assert!(msg.contains(why), "error does not say `{why}`: {msg}");
    scene.assert_contained();

    let cache = CodeCache::new(scene.cache_root()).with_limits(limits);
    let err = cache
        .resolve(&artifact_for(&payload), &DataStore::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(member), "{err}");
    scene.assert_cache_empty();
    scene.assert_contained();
}

// ---------------------------------------------------------------------------------------------
// Hostile archives.

#[tokio::test]
async fn tar_parent_traversal_is_refused() {
    let bytes = tar_bytes(&[
        file("ok.py", b"x = 1\n"),
        file("../sentinel/evil.py", b"pwn"),
    ]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "../sentinel/evil.py",
        "its path leaves the target folder",
    )
    .await;
    // Hidden in the middle of a path too.
    let bytes = tar_bytes(&[file("a/../../sentinel/evil.py", b"pwn")]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "a/../../sentinel/evil.py",
        "leaves the target folder",
    )
    .await;
}

#[tokio::test]
async fn zip_parent_traversal_is_refused() {
    let bytes = zip_bytes(&[ZipMember::File("../sentinel/evil.py", b"pwn")]);
    assert_refused(
        &bytes,
        ArchiveFormat::Zip,
        "../sentinel/evil.py",
        "its path leaves the target folder",
    )
    .await;
    let bytes = zip_bytes(&[ZipMember::File("..\\sentinel\\evil.py", b"pwn")]);
    assert_refused(
        &bytes,
        ArchiveFormat::Zip,
        "..\\\\sentinel\\\\evil.py",
        "leaves the target folder",
    )
    .await;
}

#[tokio::test]
async fn tar_absolute_path_is_refused() {
    let scene = Scene::new();
    let abs = scene.sentinel().join("abs.py");
    let abs = abs.to_str().unwrap();
    let bytes = tar_bytes(&[file(abs, b"pwn")]);
    assert_refused(&bytes, ArchiveFormat::Tar, abs, "its path is absolute").await;
    scene.assert_contained();
}

#[tokio::test]
async fn zip_absolute_paths_are_refused() {
    let scene = Scene::new();
    let abs = scene.sentinel().join("abs.py");
    let abs = abs.to_str().unwrap();
    let bytes = zip_bytes(&[ZipMember::File(abs, b"pwn")]);
    assert_refused(&bytes, ArchiveFormat::Zip, abs, "its path is absolute").await;
    scene.assert_contained();
    let bytes = zip_bytes(&[ZipMember::File("C:\\Windows\\evil.py", b"pwn")]);
    assert_refused(
        &bytes,
        ArchiveFormat::Zip,
        "C:\\\\Windows\\\\evil.py",
        "its path is absolute",
    )
    .await;
}

#[tokio::test]
async fn symlinks_leaving_the_root_are_refused() {
    let bytes = tar_bytes(&[link(EntryType::Symlink, "esc", "../sentinel")]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "esc",
        "which leaves the target folder",
    )
    .await;

    let bytes = tar_bytes(&[
        dir("pkg/"),
        link(EntryType::Symlink, "pkg/esc", "../../sentinel/x.py"),
    ]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "pkg/esc",
        "which leaves the target folder",
    )
    .await;

    let bytes = tar_bytes(&[link(EntryType::Symlink, "abs", "/etc/passwd")]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "abs",
        "absolute path `/etc/passwd`",
    )
    .await;

    let bytes = zip_bytes(&[ZipMember::Symlink("esc", "../sentinel")]);
    assert_refused(
        &bytes,
        ArchiveFormat::Zip,
        "esc",
        "which leaves the target folder",
    )
    .await;

    let bytes = zip_bytes(&[ZipMember::Symlink("abs", "/etc")]);
    assert_refused(&bytes, ArchiveFormat::Zip, "abs", "absolute path `/etc`").await;
}

#[tokio::test]
async fn symlink_chains_leaving_the_root_are_refused() {
    // Each link stays inside lexically, but `t` walks `..` out of the root through `d/up`.
    let bytes = tar_bytes(&[
        dir("d/"),
        link(EntryType::Symlink, "d/up", ".."),
        link(EntryType::Symlink, "t", "d/up/../sentinel"),
    ]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "t",
        "resolves outside the target folder",
    )
    .await;

    // The same walk to a name that does not exist: no kernel answer, the archive's links judge.
    let bytes = tar_bytes(&[
        dir("d/"),
        link(EntryType::Symlink, "d/up", ".."),
        link(EntryType::Symlink, "t", "d/up/../sentinel/not-yet.py"),
    ]);
    assert_refused(&bytes, ArchiveFormat::Tar, "t", "through another symlink").await;
}

#[tokio::test]
async fn files_written_through_symlinks_are_refused() {
    // A link pointing outside, then a file through it: refused at the link already.
    let bytes = tar_bytes(&[
        link(EntryType::Symlink, "esc", "../sentinel"),
        file("esc/evil.py", b"pwn"),
    ]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "esc",
        "leaves the target folder",
    )
    .await;

    // A link pointing inside, then a file through it: still refused.
    let bytes = tar_bytes(&[
        dir("sub/"),
        link(EntryType::Symlink, "in", "sub"),
        file("in/evil.py", b"pwn"),
    ]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "in/evil.py",
        "passes through the symlink `in`",
    )
    .await;

    // A link, then a file of the same name: writing it would follow the link.
    let bytes = tar_bytes(&[
        file("real.py", b"x = 1\n"),
        link(EntryType::Symlink, "alias.py", "real.py"),
        file("alias.py", b"pwn"),
    ]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "alias.py",
        "written through the symlink `alias.py`",
    )
    .await;

    let bytes = zip_bytes(&[
        ZipMember::Symlink("in", "."),
        ZipMember::File("in/evil.py", b"pwn"),
    ]);
    assert_refused(
        &bytes,
        ArchiveFormat::Zip,
        "in/evil.py",
        "passes through the symlink `in`",
    )
    .await;
}

#[tokio::test]
async fn hard_links_are_refused() {
    let bytes = tar_bytes(&[
        file("real.py", b"x = 1\n"),
        link(EntryType::Link, "hard.py", "real.py"),
    ]);
    assert_refused(
        &bytes,
        ArchiveFormat::Tar,
        "hard.py",
        "hard links are never extracted",
    )
    .await;
    let bytes = tar_bytes(&[link(EntryType::Link, "hard", "/etc/shadow")]);
    assert_refused(&bytes, ArchiveFormat::Tar, "hard", "it is a hard link").await;
}

#[tokio::test]
async fn device_and_fifo_entries_are_refused() {
    for (kind, why) in [
        (EntryType::Char, "it is a character device"),
        (EntryType::Block, "it is a block device"),
        (EntryType::Fifo, "it is a FIFO"),
    ] {
        let bytes = tar_bytes(&[file("ok.py", b"x = 1\n"), special(kind, "dev")]);
        assert_refused(&bytes, ArchiveFormat::Tar, "dev", why).await;
    }
}

#[tokio::test]
async fn a_zip_bomb_over_the_ratio_is_refused() {
    let zeros = vec![0u8; 2 << 20];
    let bytes = zip_bytes(&[ZipMember::File("zeros.bin", &zeros)]);
    assert!(bytes.len() < 20_000, "not a bomb: {} bytes", bytes.len());
    // The default ratio (100) already stops it.
    assert_refused(&bytes, ArchiveFormat::Zip, "zeros.bin", "max_ratio = 100").await;
}

#[tokio::test]
async fn a_tar_gz_bomb_over_the_ratio_is_refused() {
    let zeros = vec![0u8; 2 << 20];
    let bytes = gzip(&tar_bytes(&[file("zeros.bin", &zeros)]));
    let limits = ExtractLimits {
        max_ratio: 20,
        ..Default::default()
    };
    assert_refused_with(
        &bytes,
        ArchiveFormat::TarGz,
        "zeros.bin",
        "max_ratio = 20",
        limits,
    )
    .await;
}

#[tokio::test]
async fn too_many_entries_are_refused() {
    let members: Vec<_> = (0..10)
        .map(|i| file(&format!("f{i}.py"), b"x = 1\n"))
        .collect();
    let limits = ExtractLimits {
        max_entries: 5,
        ..Default::default()
    };
    let msg = "the archive has more than 5 entries (max_entries = 5)";
    assert_refused_with(
        &tar_bytes(&members),
        ArchiveFormat::Tar,
        "f5.py",
        msg,
        limits,
    )
    .await;

    let names: Vec<String> = (0..10).map(|i| format!("f{i}.py")).collect();
    let zmembers: Vec<_> = names
        .iter()
        .map(|n| ZipMember::File(n, b"x = 1\n"))
        .collect();
    assert_refused_with(
        &zip_bytes(&zmembers),
        ArchiveFormat::Zip,
        "f5.py",
        msg,
        limits,
    )
    .await;
}

#[tokio::test]
async fn too_many_bytes_are_refused() {
    let limits = ExtractLimits {
        max_total_bytes: 10_000,
        ..Default::default()
    };
    // Two files that each fit but together do not; tar does not compress, so the ratio is ~1.
    let bytes = tar_bytes(&[file("a.bin", &[7u8; 6000]), file("b.bin", &[8u8; 6000])]);
    let msg = "more than 10000 bytes (max_total_bytes = 10000)";
    assert_refused_with(&bytes, ArchiveFormat::Tar, "b.bin", msg, limits).await;
}

#[tokio::test]
async fn a_zip_lying_about_its_size_is_still_counted() {
    // Both headers claim 100 bytes; the limits count the 2 MiB really inflated.
    let zeros = vec![0u8; 2 << 20];
    let mut bytes = zip_bytes(&[ZipMember::File("zeros.bin", &zeros)]);
    bytes[22..26].copy_from_slice(&100u32.to_le_bytes());
    let central = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bytes[central + 24..central + 28].copy_from_slice(&100u32.to_le_bytes());
    assert_refused(&bytes, ArchiveFormat::Zip, "zeros.bin", "max_ratio = 100").await;
}

// ---------------------------------------------------------------------------------------------
// Good archives.

const TRAINER: &[u8] = b"from utils import helper\n\ndef main(context):\n    return helper()\n";
const UTILS: &[u8] = b"def helper():\n    return 42\n";
const INIT: &[u8] = b"";
const MODELS: &[u8] = b"MODELS = ['a', 'b']\n";

fn good_tar() -> Vec<u8> {
    tar_bytes(&[
        file("trainer.py", TRAINER),
        file("utils.py", UTILS),
        dir("pkg/"),
        file("pkg/__init__.py", INIT),
        file("pkg/models.py", MODELS),
    ])
}

fn good_zip() -> Vec<u8> {
    zip_bytes(&[
        ZipMember::File("trainer.py", TRAINER),
        ZipMember::File("utils.py", UTILS),
        ZipMember::File("pkg/__init__.py", INIT),
        ZipMember::File("pkg/models.py", MODELS),
    ])
}

fn assert_good_tree(root: &Path) {
    assert_eq!(fs::read(root.join("trainer.py")).unwrap(), TRAINER);
    assert_eq!(fs::read(root.join("utils.py")).unwrap(), UTILS);
    assert_eq!(fs::read(root.join("pkg/__init__.py")).unwrap(), INIT);
    assert_eq!(fs::read(root.join("pkg/models.py")).unwrap(), MODELS);
    assert!(root.join("pkg").is_dir());
}

#[test]
fn good_archives_extract_in_every_format() {
    for (format, bytes) in [
        (ArchiveFormat::Zip, good_zip()),
        (ArchiveFormat::Tar, good_tar()),
        (ArchiveFormat::TarGz, gzip(&good_tar())),
    ] {
        let scene = Scene::new();
        let payload = scene.payload("payload", &bytes);
        assert_eq!(detect(&payload).unwrap(), Some(format));
        let stats = extract(&payload, format, &scene.target(), &ExtractLimits::default()).unwrap();
        assert_good_tree(&scene.target());
        assert_eq!(stats.files, 4, "{format}");
        let expected = (TRAINER.len() + UTILS.len() + INIT.len() + MODELS.len()) as u64;
        assert_eq!(stats.bytes, expected);
        scene.assert_contained();
    }
}

#[test]
fn links_that_stay_inside_are_extracted() {
    let scene = Scene::new();
    let bytes = tar_bytes(&[
        file("utils.py", UTILS),
        link(EntryType::Symlink, "alias.py", "utils.py"),
        dir("pkg/"),
        link(EntryType::Symlink, "pkg/up.py", "../utils.py"),
    ]);
    let payload = scene.payload("payload", &bytes);
    let stats = extract(
        &payload,
        ArchiveFormat::Tar,
        &scene.target(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(stats.symlinks, 2);
    let alias = scene.target().join("alias.py");
    assert!(fs::symlink_metadata(&alias)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&alias).unwrap(), UTILS);
    assert_eq!(fs::read(scene.target().join("pkg/up.py")).unwrap(), UTILS);
}

#[cfg(unix)]
#[test]
fn setuid_setgid_and_sticky_bits_are_dropped() {
    use std::os::unix::fs::PermissionsExt;
    let scene = Scene::new();
    let mut suid = file("run.sh", b"#!/bin/sh\n");
    suid.mode = 0o4755;
    let mut sgid = file("group.sh", b"#!/bin/sh\n");
    sgid.mode = 0o2777;
    let mut sticky = dir("tmp/");
    sticky.mode = 0o1777;
    let payload = scene.payload("payload", &tar_bytes(&[suid, sgid, sticky]));
    extract(
        &payload,
        ArchiveFormat::Tar,
        &scene.target(),
        &Default::default(),
    )
    .unwrap();
    let mode = |p: &str| {
        fs::metadata(scene.target().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("run.sh"), 0o755);
    assert_eq!(mode("group.sh"), 0o755);
    assert_eq!(mode("tmp"), 0o755);
}

#[test]
fn a_git_archive_pax_global_header_is_skipped() {
    let scene = Scene::new();
    let record = b"52 comment=0123456789abcdef0123456789abcdef01234567\n";
    let mut global = special(EntryType::XGlobalHeader, "pax_global_header");
    global.data = record.to_vec();
    let bytes = tar_bytes(&[global, file("trainer.py", TRAINER)]);
    let payload = scene.payload("payload", &bytes);
    extract(
        &payload,
        ArchiveFormat::Tar,
        &scene.target(),
        &Default::default(),
    )
    .unwrap();
    let names: Vec<_> = fs::read_dir(scene.target())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["trainer.py"]);
}

#[tokio::test]
async fn detection_ignores_file_names() {
    let scene = Scene::new();
    let store = DataStore::new();
    let cache = CodeCache::new(scene.cache_root());

    // A zip named `.txt` is an archive and is extracted.
    let zip_txt = scene.payload("code.txt", &good_zip());
    assert_eq!(detect(&zip_txt).unwrap(), Some(ArchiveFormat::Zip));
    let resolved = cache
        .resolve(&artifact_for(&zip_txt), &store)
        .await
        .unwrap();
    assert!(resolved.archive);
    assert_good_tree(&resolved.dir);

    // A tar.gz named `.zip` is a tar.gz.
    let tgz_zip = scene.payload("code.zip", &gzip(&good_tar()));
    assert_eq!(detect(&tgz_zip).unwrap(), Some(ArchiveFormat::TarGz));

    // A text file named `.zip` is kept as a file.
    let text_zip = scene.payload("notes.zip", b"print('not a zip')\n");
    assert_eq!(detect(&text_zip).unwrap(), None);
    let resolved = cache
        .resolve(&artifact_for(&text_zip), &store)
        .await
        .unwrap();
    assert!(!resolved.archive);
    let kept = resolved.file.unwrap();
    assert_eq!(kept.file_name().unwrap(), "notes.zip");
    assert_eq!(fs::read(kept).unwrap(), b"print('not a zip')\n");

    // Gzip data that is not a tar is a plain file too.
    let gz = scene.payload("data.tar.gz", &gzip(b"just some text, no tar header"));
    assert_eq!(detect(&gz).unwrap(), None);
}
