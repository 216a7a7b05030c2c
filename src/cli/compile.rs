//! `baton compile`: a workflow as a Kubeflow Pipelines v2 pipeline (YAML).

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
    /// Write the pipeline to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
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
    let yaml = to_yaml(&spec);
    match &args.output {
        Some(path) => {
            std::fs::write(path, yaml)
                .map_err(|e| Error::io(format!("Failed to write `{}`", path.display()), e))?;
            ctx.printer.info(format!(
                "Compiled workflow `{}` to `{}`",
                args.name,
                path.display()
            ));
        }
        None => ctx.printer.data(yaml.trim_end()),
    }
    Ok(ExitCode::SUCCESS)
}
