//! `baton build`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::error::Result;

/// Arguments of `baton build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The function to build
    name: String,
    /// Where to write the build context (default: .baton/builds/<name>)
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
}

pub(crate) async fn run(args: BuildArgs, ctx: &Context) -> Result<ExitCode> {
    let out = ctx
        .baton()
        .await?
        .build_function(&args.name, args.output.as_deref())
        .await?;
    ctx.printer.info(format!(
        "Wrote the build context of `{}` ({}; config {})",
        args.name,
        if out.code_included {
            "code pulled at build time"
        } else {
            "code pulled at start-up"
        },
        &out.build.config_hash[..12]
    ));
    ctx.printer.data(out.dir.display());
    Ok(ExitCode::SUCCESS)
}
