//! `baton import`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::error::Result;

/// Arguments of `baton import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A zip written by `baton export` (or MLRun's), or a project.yaml; a relative path is taken
    /// from the folder baton runs in, not from `--context`
    #[arg(value_name = "SRC")]
    source: PathBuf,
    /// Print what was written as JSON
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: ImportArgs, ctx: &Context) -> Result<ExitCode> {
    let summary = crate::service::import_project(&args.source, &ctx.dir, ctx.api_client()?).await?;
    if args.json {
        ctx.printer.json(&summary);
        return Ok(ExitCode::SUCCESS);
    }
    ctx.printer.info(format!(
        "Imported project `{}` ({} file{} from {})",
        summary.project,
        summary.files,
        if summary.files == 1 { "" } else { "s" },
        summary.format
    ));
    ctx.printer.data(summary.dir.display());
    Ok(ExitCode::SUCCESS)
}
