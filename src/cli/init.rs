//! `baton init`.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::error::Result;
use crate::project::Project;

/// Arguments of `baton init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Project name (default: the folder's name, lowercased)
    #[arg(long)]
    name: Option<String>,
}

pub(crate) fn run(args: InitArgs, ctx: &Context) -> Result<ExitCode> {
    let project = Project::init(&ctx.dir, args.name.as_deref())?;
    ctx.printer.info(format!(
        "Created project `{}` in `{}`",
        project.name(),
        project.root().display()
    ));
    Ok(ExitCode::SUCCESS)
}
