//! Dispatcher overhead per step, with an in-process no-op executor, on 10,000-step graphs.
//!
//! Run with `cargo bench --bench dispatcher`. Prints one row per graph and parallelism: the best
//! of a few runs in microseconds per step, and its ratio to the baseline measured in the same
//! run: spawning and awaiting the same number of no-op tokio tasks (the floor, since the
//! dispatcher spawns one task per attempt).
#![allow(clippy::print_stdout)]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use baton::engine::{RunOptions, WorkflowEngineExt, WorkflowRunRequest, WorkflowState};
use baton::engine::{StepExecutor, StepInvocation, StepOutcome};
use baton::engines::local::LocalEngine;
use baton::workflow::{Dag, DagCheck, Step, WorkflowGraph};
use serde_json::{json, Map};

const STEPS: usize = 10_000;
const REPEAT: usize = 5;

struct NoOp;

#[async_trait]
impl StepExecutor for NoOp {
    async fn execute(&self, _: StepInvocation) -> StepOutcome {
        StepOutcome::succeeded(Map::new())
    }
}

/// A tiny deterministic PRNG (xorshift64), so the random DAG is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn step(i: usize, after: &[usize]) -> Step {
    let after: Vec<String> = after.iter().map(|j| format!("s{j}")).collect();
    serde_json::from_value(json!({"name": format!("s{i}"), "function": "noop", "after": after}))
        .expect("a valid step")
}

fn graph(name: &str, steps: Vec<Step>) -> WorkflowGraph {
    WorkflowGraph {
        name: name.to_owned(),
        params: vec![],
        steps,
    }
}

fn chain() -> WorkflowGraph {
    let steps = (0..STEPS)
        .map(|i| {
            if i == 0 {
                step(0, &[])
            } else {
                step(i, &[i - 1])
            }
        })
        .collect();
    graph("chain", steps)
}

fn fan() -> WorkflowGraph {
    let last = STEPS - 1;
    let mut steps = vec![step(0, &[])];
    steps.extend((1..last).map(|i| step(i, &[0])));
    steps.push(step(last, &(1..last).collect::<Vec<_>>()));
    graph("fan-out/fan-in", steps)
}

fn random() -> WorkflowGraph {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let steps = (0..STEPS)
        .map(|i| {
            let deps: Vec<usize> = if i == 0 {
                vec![]
            } else {
                (0..rng.below(4)).map(|_| rng.below(i)).collect()
            };
            let mut deps = deps;
            deps.sort_unstable();
            deps.dedup();
            step(i, &deps)
        })
        .collect();
    graph("random (<=3 deps)", steps)
}

fn best(mut run: impl FnMut() -> Duration) -> Duration {
    (0..REPEAT).map(|_| run()).min().expect("REPEAT > 0")
}

fn per_step_us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / STEPS as f64
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);

    let baseline = best(|| {
        runtime.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..STEPS)
                .map(|_| tokio::spawn(async { StepOutcome::succeeded(Map::new()) }))
                .collect();
            for handle in handles {
                handle.await.expect("no-op task");
            }
            start.elapsed()
        })
    });
    let base_us = per_step_us(baseline);

    println!("dispatcher overhead, {STEPS} steps, no-op executor, best of {REPEAT}, {cpus} CPUs");
    println!();
    println!(
        "{:<20} {:>11} {:>9} {:>13} {:>12} {:>9}",
        "graph", "parallelism", "edges", "build us/step", "run us/step", "vs spawn"
    );
    println!(
        "{:<20} {:>11} {:>9} {:>13} {:>12.3} {:>8.2}x",
        "baseline: spawn+await", "-", "-", "-", base_us, 1.0
    );
    for make in [chain, fan, random] {
        let workflow = make();
        let name = workflow.name.clone();
        let mut dag = None;
        let build = best(|| {
            let start = Instant::now();
            dag = Some(Dag::build(workflow.clone(), &DagCheck::default()).expect("a valid DAG"));
            start.elapsed()
        });
        let dag = dag.expect("built");
        let edges = dag.graph().edge_count();
        for parallelism in [cpus, STEPS] {
            let engine = LocalEngine::new(Arc::new(NoOp));
            let options = RunOptions {
                parallelism: Some(NonZeroUsize::new(parallelism).expect("non-zero")),
                ..RunOptions::default()
            };
            let elapsed = best(|| {
                let request = WorkflowRunRequest {
                    project: "bench".into(),
                    dag: dag.clone(),
                    args: Map::new(),
                };
                runtime.block_on(async {
                    let start = Instant::now();
                    let status = engine
                        .run_and_wait(request, options.clone())
                        .await
                        .expect("a run");
                    let elapsed = start.elapsed();
                    assert_eq!(status.state, WorkflowState::Succeeded);
                    elapsed
                })
            });
            let run_us = per_step_us(elapsed);
            println!(
                "{:<20} {:>11} {:>9} {:>13.3} {:>12.3} {:>8.2}x",
                name,
                parallelism,
                edges,
                per_step_us(build),
                run_us,
                run_us / base_us
            );
        }
    }
}
