//! Helpers the benchmarks share: medians, the smoke-test switch, round counts, the real Python.

#![allow(dead_code)] // each bench uses its own subset

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The median of `samples` (the upper one of an even count).
pub fn median<T: Copy + PartialOrd>(mut samples: Vec<T>) -> T {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_by(|a, b| a.partial_cmp(b).expect("samples are comparable"));
    samples[samples.len() / 2]
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `cargo bench` passes `--bench`; without it (`cargo test --all-targets`) one round is a smoke
/// test of the set-up and the checks.
pub fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// How many rounds to run: `$var` when set to a positive number, else `default` when
/// benchmarking and 1 for a smoke test.
pub fn rounds(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(if benchmarking() { default } else { 1 })
}

/// The interpreter baton's runs use: `$BATON_BENCH_PYTHON` when set (to compare interpreters),
/// else the one a `python3` found on PATH really is (a pyenv shim execs another program).
pub fn real_python() -> PathBuf {
    if let Some(python) = std::env::var_os("BATON_BENCH_PYTHON") {
        return PathBuf::from(python);
    }
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 must be on PATH");
    assert!(
        out.status.success(),
        "python3 -c 'print(sys.executable)' failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// An endless stream of pseudo-random (incompressible) bytes, the same on every run (xorshift64).
fn pseudo_random_stream() -> impl Iterator<Item = u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    })
}

/// `len` pseudo-random (incompressible) bytes, the same on every run.
pub fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    pseudo_random_stream().take(len).collect()
}

/// Writes a tar.gz at `path` of `members` incompressible files of `member_bytes` each, named
/// `pkg/data_<i>.bin`, generated as they are written.
pub fn make_archive(path: &std::path::Path, members: usize, member_bytes: usize) {
    let mut bytes = pseudo_random_stream();
    let encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(encoder);
    for i in 0..members {
        let data: Vec<u8> = bytes.by_ref().take(member_bytes).collect();
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("pkg/data_{i}.bin"), data.as_slice())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}
