//! Benchmark: pulling a 100 MiB code archive from S3 (moto's server, `tests/s3/venv.sh`, on a
//! loopback port), cold (download, verify, extract) and warm (cache hit), against the baseline of
//! a plain `object_store` get of the same object streamed to a file, as `aws s3 cp` would; and
//! the peak memory each adds to the process.
//!
//! Run with `cargo bench --bench s3_pull`. Rows are medians of several runs (`BATON_BENCH_RUNS`,
//! default 5; warm pulls three times as many), measured in the same run. Peak memory is the
//! process's resident high-water mark (`VmHWM`), reset before each measured operation through
//! `/proc/self/clear_refs`, minus the resident memory it started with: what that operation held
//! at most (the largest of its runs). Without `--bench`
//! (`cargo test --all-targets`) it is a smoke test with an 8 MiB archive and one round.

#![allow(clippy::print_stdout)] // a benchmark's report is its output

#[allow(dead_code)] // the tests' helper; the bench uses part of it
#[path = "../tests/common/moto.rs"]
mod moto;
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use baton::code::CodeCache;
use baton::datastore::{DataStore, PayloadDigest};
use baton::model::{Artifact, ArtifactMetadata, CodeArtifactSpec};
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use support::{benchmarking, make_archive, median, ms, rounds};

const BUCKET: &str = "bench";
const KEY: &str = "code/pkg.tar.gz";

/// Resets the resident high-water mark; false when the kernel does not allow it.
fn reset_peak() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"))
        .is_ok()
}

/// A memory figure of this process from `/proc/self/status` (`VmHWM`, `VmRSS`), in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// Times `f`, and how far above the resident memory it started with it went at most.
fn measure(f: impl FnOnce()) -> (Duration, f64) {
    reset_peak();
    let before = status_mib("VmRSS:");
    let start = Instant::now();
    f();
    let elapsed = start.elapsed();
    (elapsed, status_mib("VmHWM:") - before)
}

fn main() {
    let bytes: usize = if benchmarking() { 100 } else { 8 } * 1024 * 1024;
    let runs = rounds("BATON_BENCH_RUNS", 5);
    let server = moto::Moto::start();
    server.create_bucket(BUCKET);
    // Set before any thread starts: the datastore and the baseline read them.
    std::env::set_var("AWS_ENDPOINT_URL", &server.endpoint);
    std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ALLOW_HTTP", "true");

    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("pkg.tar.gz");
    make_archive(&archive, bytes.div_ceil(4 << 20), 4 << 20);
    let digest = PayloadDigest::of_file(&archive).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = DataStore::from_env().unwrap();
    let url = format!("s3://{BUCKET}/{KEY}");
    rt.block_on(store.put_file(&url, &archive, &digest))
        .unwrap();
    let artifact = Artifact {
        kind: "code".into(),
        metadata: ArtifactMetadata {
            key: "pkg".into(),
            project: "bench".into(),
            ..ArtifactMetadata::default()
        },
        spec: CodeArtifactSpec {
            target_path: Some(url.clone()),
            digest: Some(digest.sha256.clone()),
            size: Some(digest.size),
            ..CodeArtifactSpec::default()
        },
        status: Default::default(),
        extra: Default::default(),
    };
    let plain = AmazonS3Builder::from_env()
        .with_bucket_name(BUCKET)
        .build()
        .unwrap();

    let mut baseline = Vec::new();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    // Interleaved, so load from other processes falls on every row alike.
    for i in 0..runs {
        let out = dir.path().join(format!("plain{i}"));
        baseline.push(measure(|| {
            rt.block_on(async {
                let mut file = tokio::fs::File::create(&out).await.unwrap();
                let mut stream = plain
                    .get(&ObjectPath::from(KEY))
                    .await
                    .unwrap()
                    .into_stream();
                while let Some(chunk) = stream.next().await {
                    tokio::io::AsyncWriteExt::write_all(&mut file, &chunk.unwrap())
                        .await
                        .unwrap();
                }
            })
        }));
        std::fs::remove_file(&out).unwrap();
        let cache = CodeCache::new(dir.path().join(format!("cache{i}")));
        cold.push(measure(|| {
            let code = rt.block_on(cache.resolve(&artifact, &store)).unwrap();
            assert!(code.fetched && code.archive);
        }));
        for _ in 0..3 {
            warm.push(measure(|| {
                let code = rt.block_on(cache.resolve(&artifact, &store)).unwrap();
                assert!(!code.fetched);
            }));
        }
        if i > 0 {
            std::fs::remove_dir_all(dir.path().join(format!("cache{}", i - 1))).unwrap();
        }
    }
    let time = |s: &[(Duration, f64)]| median(s.iter().map(|(d, _)| *d).collect());
    let peak = |s: &[(Duration, f64)]| s.iter().map(|(_, p)| *p).fold(0.0, f64::max);
    let base = time(&baseline);
    println!(
        "archive: {:.1} MiB tar.gz from moto {}; medians of {runs} runs (warm: {}); peak RSS reset per operation: {}",
        digest.size as f64 / 1048576.0,
        server.endpoint,
        warm.len(),
        if reset_peak() { "yes" } else { "no (process peak)" }
    );
    println!(
        "{:<48} {:>10} {:>10} {:>16}",
        "operation", "ms", "x get", "peak +RSS MiB"
    );
    for (name, samples) in [
        ("object_store get streamed to a file (baseline)", &baseline),
        ("pull cold (download + sha256 + extract)", &cold),
        ("pull warm (cache hit, manifest check)", &warm),
    ] {
        let d = time(samples);
        println!(
            "{name:<48} {:>10.1} {:>10.2} {:>16.1}",
            ms(d),
            d.as_secs_f64() / base.as_secs_f64(),
            peak(samples)
        );
    }
}
