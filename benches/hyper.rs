//! The cost of a hyper-parameter iteration: `baton run-function triv -x n=[...]` with N
//! iterations (one after the other, and four at a time), against one plain `run-function` of the
//! same trivial handler measured in the same rounds.
//!
//! Run with `cargo bench --bench hyper` (`BATON_BENCH_RUNS=N` rounds, default 7;
//! `BATON_BENCH_ITERATIONS=N` iterations per hyper run, default 20). See `benches/README.md`.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use common::TestProject;
use support::{median, ms, real_python, rounds};

const WARMUP: usize = 1;

fn main() {
    let runs = rounds("BATON_BENCH_RUNS", 7);
    let iterations: usize = std::env::var("BATON_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(if support::benchmarking() { 20 } else { 3 });
    let p = TestProject::with_trivial_function();
    let python = real_python();
    let values = format!(
        "n=[{}]",
        (1..=iterations)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let parallel = r#"{"parallel_runs": 4}"#;
    let rows: Vec<(&str, Vec<&str>)> = vec![
        ("one run", vec!["run-function", "triv", "--json"]),
        (
            "hyper, sequential",
            vec!["run-function", "triv", "-x", &values, "--json"],
        ),
        (
            "hyper, parallel_runs=4",
            vec![
                "run-function",
                "triv",
                "-x",
                &values,
                "--hyper-param-options",
                parallel,
                "--json",
            ],
        ),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); rows.len()];
    for round in 0..WARMUP + runs {
        for (i, (label, args)) in rows.iter().enumerate() {
            let mut cmd: Command = p.command(args);
            cmd.env("BATON_PYTHON", &python);
            let start = Instant::now();
            let out = cmd.output().unwrap();
            let elapsed = start.elapsed();
            assert!(
                out.status.success(),
                "`{label}` failed\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(run["status"]["state"], "completed", "{label}");
            if i > 0 {
                assert_eq!(
                    run["status"]["iterations"].as_array().unwrap().len(),
                    iterations + 1,
                    "{label}"
                );
            }
            if round >= WARMUP {
                samples[i].push(elapsed);
            }
        }
    }
    let base = ms(median(samples[0].clone()));
    println!(
        "{iterations} iterations of `def main(): return 1`, python {}",
        python.display()
    );
    println!(
        "{:<24} {:>10} {:>14} {:>16}",
        "row", "ms", "x one run", "ms / iteration"
    );
    for (i, (label, _)) in rows.iter().enumerate() {
        let total = ms(median(samples[i].clone()));
        let per = if i == 0 {
            String::from("-")
        } else {
            format!("{:.1}", (total - base) / iterations as f64)
        };
        println!("{label:<24} {total:>10.1} {:>14.2} {per:>16}", total / base);
    }
}
