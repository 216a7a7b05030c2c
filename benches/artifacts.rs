//! Benchmark: logging a 10 MiB archive as a code artifact, and pulling it cold and warm.
//!
//! Run with `cargo bench --bench artifacts`. Figures are medians of several runs, reported
//! against a baseline measured in the same run: a plain `fs::copy` of the same archive.

#![allow(clippy::print_stdout)] // a benchmark's report is its output

mod support;

use std::time::Instant;

use baton::artifact::{log_code_file, CodeSource, LogCodeRequest};
use baton::code::CodeCache;
use baton::datastore::DataStore;
use baton::project::Project;
use support::{make_archive, median, ms};

const ARCHIVE_BYTES: usize = 10 * 1024 * 1024;
const RUNS: usize = 7;

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = Project::init(&dir.path().join("proj"), Some("bench")).unwrap();
    let db = project.open_db().unwrap();
    let store = DataStore::new();
    let archive = dir.path().join("pkg.tar.gz");
    make_archive(&archive, 20, ARCHIVE_BYTES / 20);
    let size = std::fs::metadata(&archive).unwrap().len();

    let copy = median(
        (0..RUNS)
            .map(|i| {
                let start = Instant::now();
                std::fs::copy(&archive, dir.path().join(format!("copy{i}"))).unwrap();
                start.elapsed()
            })
            .collect(),
    );

    let mut uri = String::new();
    let log = median(
        (0..RUNS)
            .map(|i| {
                let request =
                    LogCodeRequest::new(format!("pkg{i}"), CodeSource::LocalPath(archive.clone()));
                let start = Instant::now();
                let stored = rt
                    .block_on(log_code_file(&project.log_scope(), &db, &store, request))
                    .unwrap();
                let elapsed = start.elapsed();
                uri = stored.artifact.store_uri().to_string();
                elapsed
            })
            .collect(),
    );
    let artifact = rt
        .block_on(baton::db::Db::read_artifact(
            &db,
            "bench",
            &uri.parse().unwrap(),
        ))
        .unwrap();

    let cold = median(
        (0..RUNS)
            .map(|i| {
                let cache = CodeCache::new(dir.path().join(format!("cache{i}")));
                let start = Instant::now();
                let code = rt.block_on(cache.resolve(&artifact, &store)).unwrap();
                assert!(code.fetched);
                start.elapsed()
            })
            .collect(),
    );
    let warm_cache = CodeCache::new(dir.path().join("cache0"));
    let warm = median(
        (0..RUNS * 3)
            .map(|_| {
                let start = Instant::now();
                let code = rt.block_on(warm_cache.resolve(&artifact, &store)).unwrap();
                assert!(!code.fetched);
                start.elapsed()
            })
            .collect(),
    );

    println!(
        "archive: {:.1} MiB tar.gz, 20 members; medians of {RUNS} runs",
        size as f64 / 1048576.0
    );
    println!("{:<34} {:>10} {:>12}", "operation", "ms", "x fs::copy");
    for (name, d) in [
        ("fs::copy of the archive (baseline)", copy),
        ("log-code (hash + upload + record)", log),
        ("pull cold (download+verify+extract)", cold),
        ("pull warm (cache hit)", warm),
    ] {
        println!(
            "{name:<34} {:>10.3} {:>12.2}",
            ms(d),
            d.as_secs_f64() / copy.as_secs_f64()
        );
    }
    println!(
        "warm / cold = 1 / {:.0}",
        cold.as_secs_f64() / warm.as_secs_f64()
    );
}
