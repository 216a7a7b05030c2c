//! `baton set-function` and `baton functions list | get`.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::table::Table;
use super::Context;
use crate::error::Result;
use crate::project::SetFunctionRequest;

/// Arguments of `baton set-function`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    baton set-function --name my_func --func store://artifacts/my-project/my_func_code --handler my_func:main\n  \
    baton set-function --name trainer --func store://artifacts/my-project/my_pkg_code --handler trainer:main\n  \
    baton set-function --name local-fn --func ./src/my_func.py --handler main\n  \
    baton set-function --name from-git --func git+https://github.com/org/repo.git#main --handler my_func:main")]
pub struct SetFunctionArgs {
    /// Function name (normalised: lowercase, `_` becomes `-`)
    #[arg(long)]
    name: String,
    /// Source: a store:// code artifact URI, a .py file, an archive path or URL (file, s3://,
    /// http(s)://, ds://), or a git repository (git://, git+https://, git+ssh://, git+file://)
    /// with #<branch|tag|commit>
    #[arg(long, value_name = "SRC")]
    func: String,
    /// Runtime kind: job, local, nuclio, serving, application
    #[arg(long, default_value = "job")]
    kind: String,
    /// Default handler; `<module>:<function>` for store://, archive and git sources
    #[arg(long)]
    handler: Option<String>,
    /// Container image
    #[arg(long)]
    image: Option<String>,
    /// A pip requirement of the function (wins over the artifact's); repeatable
    #[arg(long = "requirement", value_name = "REQ")]
    requirements: Vec<String>,
    /// Pull the code when the function starts (nuclio/serving default to pulling at build time)
    #[arg(long, overrides_with = "no_load_source_on_run")]
    load_source_on_run: bool,
    /// Pull the code at build time and bake it into the image
    #[arg(long)]
    no_load_source_on_run: bool,
    /// Function tag
    #[arg(long)]
    tag: Option<String>,
}

/// The `functions` command group.
#[derive(Debug, Subcommand)]
pub enum FunctionsCommand {
    /// List the project's functions with their effective build configuration
    List {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one function with its effective build configuration
    Get {
        /// Function name
        name: String,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn set_function(args: SetFunctionArgs, ctx: &Context) -> Result<ExitCode> {
    let mut baton = ctx.baton().await?;
    let load_source_on_run = match (args.load_source_on_run, args.no_load_source_on_run) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let entry = baton
        .set_function(SetFunctionRequest {
            name: args.name,
            func: args.func,
            kind: Some(args.kind),
            handler: args.handler,
            image: args.image,
            requirements: args.requirements,
            load_source_on_run,
            tag: args.tag,
        })
        .await?;
    ctx.printer.info(format!("Set function `{}`", entry.name));
    ctx.printer.data(&entry.name);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(cmd: FunctionsCommand, ctx: &Context) -> Result<ExitCode> {
    let baton = ctx.baton().await?;
    match cmd {
        FunctionsCommand::List { json } => {
            let described = baton.list_functions().await?;
            for problem in described
                .iter()
                .filter_map(|f| Some((f, f.problem.as_ref()?)))
            {
                ctx.printer.warn(format!(
                    "Function `{}`: {}",
                    problem.0.entry.name, problem.1
                ));
            }
            if json {
                ctx.printer.json(&described);
            } else {
                let mut table = Table::new(&["NAME", "KIND", "HANDLER", "BUILD", "SOURCE"]);
                for f in &described {
                    let text = |v: &Option<String>| v.clone().unwrap_or_default();
                    let build = match (&f.problem, f.build_required) {
                        (Some(_), _) => "unknown",
                        (None, Some(true)) => "required",
                        (None, _) => "up to date",
                    };
                    table.row([
                        f.entry.name.clone(),
                        text(&f.entry.kind),
                        text(&f.entry.handler),
                        build.to_string(),
                        text(&f.entry.url),
                    ]);
                }
                ctx.printer.data(table);
            }
        }
        FunctionsCommand::Get { name, json } => {
            let described = baton.describe_function(&name).await?;
            if json {
                ctx.printer.json(&described);
            } else {
                ctx.printer
                    .data(serde_yaml::to_string(&described).expect("values serialize"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
