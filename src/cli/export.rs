//! `baton export`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::error::Result;
use crate::project::ExportFormat;

/// Arguments of `baton export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write: OUT.zip packages every function's and workflow's code under its original
    /// file name; OUT.yaml writes project.yaml with its store:// URIs as they are
    #[arg(value_name = "OUT")]
    out: PathBuf,
    /// Print what was written as JSON
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: ExportArgs, ctx: &Context) -> Result<ExitCode> {
    let baton = ctx.baton().await?;
    let summary = baton.export(&args.out).await?;
    if args.json {
        ctx.printer.json(&summary);
        return Ok(ExitCode::SUCCESS);
    }
    match summary.format {
        ExportFormat::Zip => {
            for code in &summary.code {
                ctx.printer
                    .info(format!("Packaged `{}` as `{}`", code.source, code.path));
            }
            ctx.printer.info(format!(
                "Exported project `{}` with {} code file{}",
                summary.project,
                summary.code.len(),
                if summary.code.len() == 1 { "" } else { "s" }
            ));
        }
        ExportFormat::Yaml => ctx.printer.info(format!(
            "Exported the definition of project `{}` (store:// URIs kept)",
            summary.project
        )),
    }
    ctx.printer.data(summary.path.display());
    Ok(ExitCode::SUCCESS)
}
