//! `baton log-code`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::artifact::{CodeSource, LogCodeRequest};
use crate::error::{Error, Result};

/// Arguments of `baton log-code`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    baton log-code my_func_code --local-path ./my_func.py\n  \
    baton log-code my_pkg_code --local-path ./my_pkg.zip\n  \
    baton log-code my_func_code --body 'def main():\\n    return \"ok\"'\n  \
    baton log-code my_workflow_code --local-path ./wf.py --code-type workflow --requirement 'pandas>=2.0'")]
pub struct LogCodeArgs {
    /// The artifact key
    key: String,
    /// A local file or archive (.zip, .tar.gz, .tgz, .tar) to upload
    #[arg(long, value_name = "PATH", conflicts_with_all = ["body", "body_file"])]
    local_path: Option<PathBuf>,
    /// Absolute path or URL to upload to; alone, registers an existing object without copying it
    #[arg(long, value_name = "URL")]
    target_path: Option<String>,
    /// Inline body kept in the database record (small files only, at most 1 MiB)
    #[arg(long, value_name = "TEXT", conflicts_with = "body_file")]
    body: Option<String>,
    /// Read the inline body from a file
    #[arg(long, value_name = "PATH")]
    body_file: Option<PathBuf>,
    /// What the code is for
    #[arg(long, value_name = "TYPE", default_value = "function")]
    code_type: String,
    /// Language (default: python for .py/.ipynb paths)
    #[arg(long, value_name = "LANG")]
    language: Option<String>,
    /// A pip requirement of the code (PEP 508); repeatable
    #[arg(long = "requirement", value_name = "REQ")]
    requirements: Vec<String>,
    /// A tag besides `latest`
    #[arg(long)]
    tag: Option<String>,
    /// A label as key=value; repeatable
    #[arg(long = "label", value_name = "K=V", value_parser = super::parse_key_value)]
    labels: Vec<(String, String)>,
    /// Artifact path overriding the project's
    #[arg(long, value_name = "URL")]
    artifact_path: Option<String>,
    /// Database key (default: the key)
    #[arg(long, value_name = "KEY")]
    db_key: Option<String>,
    /// Print the whole record as JSON instead of its URI
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: LogCodeArgs, ctx: &Context) -> Result<ExitCode> {
    let baton = ctx.baton().await?;
    let source = if let Some(path) = args.local_path {
        CodeSource::LocalPath(path)
    } else if let Some(text) = args.body {
        CodeSource::Body { text, path: None }
    } else if let Some(path) = args.body_file {
        let text = std::fs::read(&path)
            .map_err(|e| Error::io(format!("Failed to read `{}`", path.display()), e))?;
        let text = String::from_utf8(text).map_err(|_| {
            Error::invalid_with_hint(
                format!(
                    "`{}` is not UTF-8 text and cannot be an inline body",
                    path.display()
                ),
                "log binary files and archives with --local-path",
            )
        })?;
        CodeSource::Body {
            text,
            path: Some(path),
        }
    } else {
        CodeSource::Existing
    };
    let request = LogCodeRequest {
        target_path: args.target_path,
        code_type: Some(args.code_type),
        language: args.language,
        requirements: args.requirements,
        tag: args.tag,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        artifact_path: args.artifact_path,
        db_key: args.db_key,
        ..LogCodeRequest::new(args.key, source)
    };
    let stored = baton.log_code(request).await?;
    if args.json {
        ctx.printer.json(&stored.artifact);
    } else {
        ctx.printer.data(stored.artifact.store_uri());
    }
    if !stored.created {
        ctx.printer
            .info("Identical content was already logged; no new version was added");
    }
    Ok(ExitCode::SUCCESS)
}
