//! Benchmark: `baton export` of a project with many code artifacts, and `baton import` of the
//! zip, against a plain zip (and unzip) of the same payload files measured in the same run.
//!
//! The project has `BATON_BENCH_ARTIFACTS` (default 200) single-file artifacts of about 4 KiB,
//! each the source of one function, plus one incompressible 16 MiB tar.gz artifact. Export
//! resolves every artifact in the database, fetches its payload through the datastore, checks its
//! digest and writes the zip atomically; the baseline writes the same payloads with the same
//! compression (deflated sources, the archive stored) with the `zip` crate and nothing else.
//! Import unpacks through the safe extractor and runs set time's checks on every function; its
//! baseline is the `zip` crate's own `extract`. Both run in this process (library calls), so the
//! rows compare work, not process start-up.
//!
//! Run with `cargo bench --bench export`; `BATON_BENCH_REPEAT=N` sets the rounds (default 7).

#![allow(clippy::print_stdout)] // a benchmark's report is its output

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use baton::artifact::{log_code_file, CodeSource, LogCodeRequest};
use baton::datastore::DataStore;
use baton::project::{import_project, Project, SetFunctionRequest};
use support::{benchmarking, median, ms, pseudo_random_bytes, rounds};

/// Bytes of incompressible data in the archive artifact.
const ARCHIVE_BYTES: usize = 16 * 1024 * 1024;

/// A Python source of about 4 KiB, different for each `n`.
fn source(n: usize) -> String {
    let mut text = format!("\"\"\"Function {n}.\"\"\"\n\n\ndef main(x={n}):\n    return x\n");
    for line in 0..100 {
        text.push_str(&format!(
            "# padding line {line} of module f{n}: keeps the file realistic\n"
        ));
    }
    text
}

/// A tar.gz of pseudo-random (incompressible) bytes.
fn make_archive(path: &Path, bytes: usize) {
    let data = pseudo_random_bytes(bytes);
    let encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(encoder);
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "trainer.py", data.as_slice())
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

/// The baseline: the same payloads zipped with the same compression, and nothing else.
fn plain_zip(out: &Path, payloads: &[(String, PathBuf, bool)]) {
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    for (name, path, archive) in payloads {
        let method = if *archive {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        zip.start_file(
            name.as_str(),
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut zip).unwrap();
    }
    zip.finish().unwrap().flush().unwrap();
}

fn time(work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}

fn main() {
    let artifacts = if benchmarking() {
        rounds("BATON_BENCH_ARTIFACTS", 200)
    } else {
        10
    };
    let archive_bytes = if benchmarking() {
        ARCHIVE_BYTES
    } else {
        1 << 16
    };
    let repeat = rounds("BATON_BENCH_REPEAT", 7);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut project = Project::init(&dir.path().join("proj"), Some("bench")).unwrap();
    let db = project.open_db().unwrap();
    let store = DataStore::new();

    let mut payloads = Vec::new();
    let mut log = |key: String, file: PathBuf, handler: String, archive: bool| {
        let request = LogCodeRequest::new(key.clone(), CodeSource::LocalPath(file));
        let stored = rt
            .block_on(log_code_file(&project.log_scope(), &db, &store, request))
            .unwrap();
        let target = stored.artifact.spec.target_path.clone().unwrap();
        payloads.push((
            format!("code/{key}/{}", stored.artifact.file_name()),
            PathBuf::from(target),
            archive,
        ));
        (stored.artifact.store_uri().to_string(), handler)
    };
    let sources = dir.path().join("src");
    std::fs::create_dir_all(&sources).unwrap();
    let mut functions = Vec::new();
    for n in 0..artifacts {
        let file = sources.join(format!("f{n}.py"));
        std::fs::write(&file, source(n)).unwrap();
        functions.push(log(format!("f{n}_code"), file, format!("f{n}:main"), false));
    }
    let archive = dir.path().join("trainer.tar.gz");
    make_archive(&archive, archive_bytes);
    functions.push(log(
        "trainer_code".into(),
        archive.clone(),
        "trainer:main".into(),
        true,
    ));
    for (n, (uri, handler)) in functions.into_iter().enumerate() {
        let request = SetFunctionRequest {
            name: format!("f{n}"),
            func: uri,
            handler: Some(handler),
            ..SetFunctionRequest::default()
        };
        rt.block_on(project.set_function(&db, request)).unwrap();
    }
    let payload_bytes: u64 = payloads
        .iter()
        .map(|(_, p, _)| std::fs::metadata(p).unwrap().len())
        .sum();

    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut rows: Vec<(&str, Vec<Duration>)> = vec![
        ("plain zip of the payloads (baseline)", vec![]),
        ("baton export OUT.zip", vec![]),
        ("baton export OUT.yaml", vec![]),
        ("plain unzip (baseline)", vec![]),
        ("baton import OUT.zip", vec![]),
    ];
    // Interleaved rounds: load from other processes falls on every row alike.
    for round in 0..repeat {
        let plain = out.join(format!("plain{round}.zip"));
        rows[0].1.push(time(|| plain_zip(&plain, &payloads)));
        let exported = out.join(format!("export{round}.zip"));
        rows[1].1.push(time(|| {
            let summary = rt.block_on(project.export(&db, &store, &exported)).unwrap();
            assert_eq!(summary.code.len(), artifacts + 1);
        }));
        let yaml = out.join(format!("export{round}.yaml"));
        rows[2].1.push(time(|| {
            rt.block_on(project.export(&db, &store, &yaml)).unwrap();
        }));
        let unzipped = out.join(format!("unzipped{round}"));
        rows[3].1.push(time(|| {
            let file = std::fs::File::open(&exported).unwrap();
            zip::ZipArchive::new(file)
                .unwrap()
                .extract(&unzipped)
                .unwrap();
        }));
        let imported = out.join(format!("imported{round}"));
        rows[4].1.push(time(|| {
            let (_, summary) = rt
                .block_on(import_project(&exported, &imported, None))
                .unwrap();
            assert_eq!(summary.files, artifacts as u64 + 2);
        }));
    }

    println!(
        "{artifacts} single-file artifacts of ~4 KiB + one {:.1} MiB tar.gz, {:.1} MiB of payloads; \
         medians of {repeat} rounds",
        archive_bytes as f64 / 1048576.0,
        payload_bytes as f64 / 1048576.0
    );
    println!("{:<38} {:>10} {:>12}", "operation", "ms", "x baseline");
    let medians: Vec<(&str, Duration)> = rows.into_iter().map(|(n, s)| (n, median(s))).collect();
    for (i, (name, d)) in medians.iter().enumerate() {
        let baseline = if i < 3 { medians[0].1 } else { medians[3].1 };
        println!(
            "{name:<38} {:>10.2} {:>12.2}",
            ms(*d),
            d.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}
