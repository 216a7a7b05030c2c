//! `baton set-function` and `baton functions list | get`.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::table::Table;
use super::Context;
use crate::error::Result;
use crate::project::{EffectiveBuild, SetFunctionRequest};

/// Arguments of `baton set-function`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    baton set-function --name my_func --func store://artifacts/my-project/my_func_code --handler my_func:main\n  \
    baton set-function --name trainer --func store://artifacts/my-project/my_pkg_code --handler trainer:main\n  \
    baton set-function --name local-fn --func ./src/my_func.py --handler main")]
pub struct SetFunctionArgs {
    /// Function name (normalised: lowercase, `_` becomes `-`)
    #[arg(long)]
    name: String,
    /// Source: a store:// code artifact URI, a .py file, or an archive path or URL
    #[arg(long, value_name = "SRC")]
    func: String,
    /// Runtime kind: job, local, nuclio, serving, application
    #[arg(long, default_value = "job")]
    kind: String,
    /// Default handler; `<module>:<function>` for store:// and archive sources
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
    let mut project = ctx.project()?;
    let db = project.open_db()?;
    let load_source_on_run = match (args.load_source_on_run, args.no_load_source_on_run) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let entry = project
        .set_function(
            &db,
            SetFunctionRequest {
                name: args.name,
                func: args.func,
                kind: Some(args.kind),
                handler: args.handler,
                image: args.image,
                requirements: args.requirements,
                load_source_on_run,
                tag: args.tag,
            },
        )
        .await?;
    ctx.printer.info(format!("Set function `{}`", entry.name));
    ctx.printer.data(&entry.name);
    Ok(ExitCode::SUCCESS)
}

/// A function with its effective build, as `functions get --json` prints it.
async fn describe(
    project: &crate::project::Project,
    db: &crate::db::SqliteDb,
    entry: &crate::model::FunctionEntry,
) -> Result<serde_json::Value> {
    let build = EffectiveBuild::resolve(db, project, entry).await?;
    let build_required = build
        .build_required(db, project.name(), &entry.name)
        .await?;
    let mut value = serde_json::to_value(entry).expect("function entries serialize");
    value["effective_build"] = serde_json::to_value(&build).expect("builds serialize");
    value["build_required"] = build_required.into();
    Ok(value)
}

pub(crate) async fn run(cmd: FunctionsCommand, ctx: &Context) -> Result<ExitCode> {
    let project = ctx.project()?;
    let db = project.open_db()?;
    match cmd {
        FunctionsCommand::List { json } => {
            let mut described = Vec::new();
            for entry in project.functions()? {
                // One broken function (its artifact gone, say) must not hide the others: it is
                // listed with its problem.
                described.push(match describe(&project, &db, &entry).await {
                    Ok(value) => value,
                    Err(err) => {
                        ctx.printer
                            .warn(format!("Function `{}`: {err}", entry.name));
                        let mut value =
                            serde_json::to_value(&entry).expect("function entries serialize");
                        value["problem"] = err.to_string().into();
                        value
                    }
                });
            }
            if json {
                ctx.printer.json(&described);
            } else {
                let mut table = Table::new(&["NAME", "KIND", "HANDLER", "BUILD", "SOURCE"]);
                for f in &described {
                    let text = |k: &str| f[k].as_str().unwrap_or("").to_string();
                    let build = if f.get("problem").is_some() {
                        "unknown"
                    } else if f["build_required"] == true {
                        "required"
                    } else {
                        "up to date"
                    };
                    table.row([
                        text("name"),
                        text("kind"),
                        text("handler"),
                        build.to_string(),
                        text("url"),
                    ]);
                }
                ctx.printer.data(table);
            }
        }
        FunctionsCommand::Get { name, json } => {
            let entry = project.function(&name)?;
            let described = describe(&project, &db, &entry).await?;
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
