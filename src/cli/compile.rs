//! `baton compile`: a workflow as a Kubeflow Pipelines v2 pipeline (YAML, or JSON).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::error::{Error, Result};
use crate::kfp::to_yaml;
use crate::runner::parse_params;

/// Arguments of `baton compile`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    baton compile main -o main.yaml\n  \
    baton compile main -a rows=500 --image registry.example.com/baton-runner:0.1")]
pub struct CompileArgs {
    /// The workflow
    name: String,
    /// An argument as key=value, written as its pipeline parameter's default; repeatable
    #[arg(short = 'a', long = "arg", value_name = "K=V", value_parser = super::parse_key_value)]
    args: Vec<(String, String)>,
    /// Write the pipeline to FILE instead of stdout (JSON when FILE ends in `.json`)
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print JSON instead of YAML
    #[arg(long)]
    json: bool,
    /// The image steps run in when their function names none (default: the workflow's image,
    /// else BATON_KFP_IMAGE, else baton/runner:latest)
    #[arg(long, value_name = "IMG")]
    image: Option<String>,
}

pub(crate) async fn run(args: CompileArgs, ctx: &Context) -> Result<ExitCode> {
    let spec = ctx
        .baton()
        .await?
        .compile_workflow(&args.name, &parse_params(args.args)?, args.image)
        .await?;
    let as_json = args.json
        || args
            .output
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "json"));
    let text = if as_json {
        serde_json::to_string_pretty(&spec).expect("specs serialize")
    } else {
        to_yaml(&spec)
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| Error::io(format!("Failed to write `{}`", path.display()), e))?;
            ctx.printer.info(format!(
                "Compiled workflow `{}` to `{}`",
                args.name,
                path.display()
            ));
        }
        None => ctx.printer.data(text.trim_end()),
    }
    Ok(ExitCode::SUCCESS)
}
