//! `baton artifacts list | get | pull`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::table::Table;
use super::Context;
use crate::db::ArtifactFilter;
use crate::error::Result;
use crate::service::PulledCode;

/// The `artifacts` command group.
#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// List artifact versions, newest first
    List {
        /// Only this key
        #[arg(long)]
        key: Option<String>,
        /// Only versions carrying this tag
        #[arg(long)]
        tag: Option<String>,
        /// Print the records as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one artifact version
    Get {
        /// A store URI (store://artifacts/<project>/<key>[:tag][^uid]); the project defaults to the current one
        uri: String,
        /// Print the whole record as JSON
        #[arg(long)]
        json: bool,
    },
    /// Resolve, fetch, verify and extract an artifact as a runner does, and print where it is
    Pull {
        /// A store URI; the project defaults to the current one
        uri: String,
        /// Copy the code into DIR (default: print the folder in the machine's code cache)
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
}

pub(crate) async fn run(cmd: ArtifactsCommand, ctx: &Context) -> Result<ExitCode> {
    let baton = ctx.baton().await?;
    match cmd {
        ArtifactsCommand::List { key, tag, json } => {
            let versions = baton
                .artifact_versions(&ArtifactFilter { key, tag })
                .await?;
            if json {
                let records: Vec<_> = versions
                    .iter()
                    .map(|v| serde_json::json!({"artifact": v.artifact, "tags": v.tags}))
                    .collect();
                ctx.printer.json(&records);
            } else {
                let mut table =
                    Table::new(&["KEY", "UID", "CODE_TYPE", "SIZE", "TAGS", "URI"]).align_right(3);
                for v in &versions {
                    let a = &v.artifact;
                    let uid = a.metadata.uid.as_deref().unwrap_or("");
                    table.row([
                        a.db_key().to_string(),
                        uid[..uid.len().min(12)].to_string(),
                        a.code_type().as_str().to_string(),
                        a.spec.size.map(|s| s.to_string()).unwrap_or_default(),
                        v.tags.join(","),
                        a.store_uri().to_string(),
                    ]);
                }
                ctx.printer.data(table);
            }
        }
        ArtifactsCommand::Get { uri, json } => {
            let artifact = baton.artifact(&uri).await?;
            if json {
                ctx.printer.json(&artifact);
            } else {
                ctx.printer
                    .data(serde_yaml::to_string(&artifact).expect("records serialize"));
            }
        }
        ArtifactsCommand::Pull { uri, to } => {
            let PulledCode {
                artifact,
                code,
                dir,
            } = baton.pull(&uri, to.as_deref()).await?;
            ctx.printer.info(format!(
                "{} `{}` ({}, {})",
                if code.fetched {
                    "Fetched"
                } else {
                    "Using cached"
                },
                artifact.store_uri(),
                if code.archive {
                    "archive"
                } else {
                    "single file"
                },
                code.digest
            ));
            ctx.printer.data(dir.display());
            if let Some(file) = &code.file {
                ctx.printer
                    .data(dir.join(file.file_name().unwrap_or_default()).display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
