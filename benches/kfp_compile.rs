//! KFP compilation cost per step on a 10,000-step graph, against building the `Dag` itself.
//!
//! Run with `cargo bench --bench kfp_compile`. Each step reads a pipeline parameter and the
//! output of an earlier step chosen at random, declares an output, every tenth has a `when` on
//! an earlier output and every seventh retries. Prints the best of a few runs in microseconds per
//! step for `Dag::build`, `kfp::compile` and `kfp::to_yaml`, and the spec's size per step (JSON
//! and YAML). Without `--bench` (as `cargo test --benches` runs it) it does one tiny round.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use baton::kfp::{compile, to_yaml, CompileOptions};
use baton::model::FunctionEntry;
use baton::workflow::{Dag, DagCheck, Step, WorkflowGraph};
use serde_json::json;

/// A tiny deterministic PRNG (xorshift64), so the graph is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn graph(steps: usize) -> WorkflowGraph {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let steps: Vec<Step> = (0..steps)
        .map(|i| {
            let mut step = json!({
                "name": format!("s{i}"),
                "function": "work",
                "params": {"n": "{{args.n}}", "mode": "fast"},
                "outputs": ["o"],
            });
            if i > 0 {
                let j = rng.below(i);
                step["params"]["x"] = json!(format!("{{{{steps.s{j}.outputs.o}}}}"));
                if i % 10 == 0 {
                    let k = rng.below(i);
                    step["when"] = json!(format!("{{{{steps.s{k}.outputs.o}}}} > 5"));
                }
            }
            if i % 7 == 0 {
                step["retries"] = json!({"limit": 2, "backoff": "5s"});
            }
            serde_json::from_value(step).expect("a valid step")
        })
        .collect();
    serde_json::from_value(json!({
        "name": "bench",
        "params": [{"name": "n", "type": "int", "default": 3}],
        "steps": steps,
    }))
    .expect("a valid graph")
}

fn best(repeat: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..repeat).map(|_| f()).min().expect("at least one run")
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (steps, repeat) = if bench { (10_000, 5) } else { (50, 1) };
    let graph = graph(steps);
    let mut options = CompileOptions::new("bench", "baton/runner:bench");
    let function: FunctionEntry = serde_json::from_value(
        json!({"name": "work", "kind": "job", "url": "store://artifacts/bench/work_code"}),
    )
    .expect("a function");
    options.functions.insert("work".to_owned(), function);

    let build = best(repeat, || {
        let graph = graph.clone();
        let start = Instant::now();
        let dag = Dag::build(graph, &DagCheck::default()).expect("a valid DAG");
        let elapsed = start.elapsed();
        drop(dag);
        elapsed
    });
    let dag = Dag::build(graph.clone(), &DagCheck::default()).expect("a valid DAG");
    let mut spec = json!(null);
    let compiled = best(repeat, || {
        let start = Instant::now();
        spec = compile(&dag, &options).expect("compiles");
        start.elapsed()
    });
    let mut yaml = String::new();
    let yamled = best(repeat, || {
        let start = Instant::now();
        yaml = to_yaml(&spec);
        start.elapsed()
    });
    let json_len = serde_json::to_string(&spec).expect("JSON").len();
    let per_step = |d: Duration| d.as_secs_f64() * 1e6 / steps as f64;

    println!("kfp compile, {steps} steps (a when every 10th, retries every 7th), best of {repeat}");
    println!();
    println!("{:<24} {:>12} {:>10}", "phase", "us/step", "vs build");
    for (name, d) in [
        ("Dag::build", build),
        ("kfp::compile", compiled),
        ("kfp::to_yaml", yamled),
    ] {
        println!(
            "{name:<24} {:>12.2} {:>9.2}x",
            per_step(d),
            d.as_secs_f64() / build.as_secs_f64()
        );
    }
    println!();
    println!(
        "spec size per step: {} bytes JSON, {} bytes YAML ({:.1} MB YAML in all)",
        json_len / steps,
        yaml.len() / steps,
        yaml.len() as f64 / 1e6
    );
}
