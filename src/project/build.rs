//! `build`: write a function's image build context and record its configuration hash.
//!
//! baton does not run an image builder; it writes the context one would use (a Dockerfile, the
//! merged `requirements.txt`, and the code when the function pulls it at build time) and records
//! the hash of the configuration it came from. A later change to that configuration, such as new
//! requirements on the artifact, makes the function "build required" again; a code-only change of
//! a function that pulls its code at start-up does not.

use std::path::{Path, PathBuf};

use super::{EffectiveBuild, Project};
use crate::code::copy_tree;
use crate::db::{BuildRecord, Db};
use crate::error::{Error, IoResultExt, Result};
use crate::runner::CodeSources;

/// Where in the image code pulled at build time goes (MLRun's default code folder).
pub const IMAGE_CODE_DIR: &str = "/home/mlrun_code";

/// What a build wrote.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The build context folder.
    pub dir: PathBuf,
    /// The configuration it was made from.
    pub build: EffectiveBuild,
    /// Whether the code was copied into the context (pulled at build time).
    pub code_included: bool,
}

impl Project {
    /// Writes the build context of `function` into `output` (default `.baton/builds/<name>`),
    /// replacing what was there, and records the build.
    pub async fn build_function(
        &self,
        db: &dyn Db,
        function: &str,
        output: Option<&Path>,
    ) -> Result<BuildOutput> {
        let entry = self.function(function)?;
        let build = EffectiveBuild::resolve(db, self, &entry).await?;
        let dir = match output {
            Some(dir) => std::path::absolute(dir)
                .io_context(|| format!("Failed to resolve `{}`", dir.display()))?,
            None => self.state_dir().join("builds").join(&entry.name),
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .io_context(|| format!("Failed to clear `{}`", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .io_context(|| format!("Failed to create `{}`", dir.display()))?;

        let mut dockerfile = format!("FROM {}\n", build.base_image);
        if !build.requirements.is_empty() {
            let text = build.requirements.join("\n") + "\n";
            write(&dir.join("requirements.txt"), &text)?;
            dockerfile.push_str("COPY requirements.txt /tmp/requirements.txt\nRUN python -m pip install --no-cache-dir -r /tmp/requirements.txt\n");
        }
        let source = entry.url.clone().unwrap_or_default();
        let code_included = !build.load_source_on_run && !source.is_empty();
        if code_included {
            let snapshot = self.snapshot_function(db, &entry.name).await?;
            let code = CodeSources::from_env()?
                .resolve(db, self.name(), &snapshot)
                .await?;
            let target = dir.join("code");
            if code.file_stem.is_some() {
                let file = self.source_path(&source);
                std::fs::create_dir_all(&target)
                    .io_context(|| format!("Failed to create `{}`", target.display()))?;
                let name = file
                    .file_name()
                    .ok_or_else(|| Error::invalid(format!("Source `{source}` names no file")))?;
                std::fs::copy(&file, target.join(name))
                    .io_context(|| format!("Failed to copy `{}`", file.display()))?;
            } else {
                copy_tree(&code.dir, &target)?;
            }
            dockerfile.push_str(&format!(
                "COPY code/ {IMAGE_CODE_DIR}/\nENV PYTHONPATH={IMAGE_CODE_DIR}\n"
            ));
        }
        write(&dir.join("Dockerfile"), &dockerfile)?;
        db.store_build(
            self.name(),
            &entry.name,
            &BuildRecord {
                config_hash: build.config_hash.clone(),
                built_at: crate::model::now(),
                output: dir.to_string_lossy().into_owned(),
            },
        )
        .await?;
        Ok(BuildOutput {
            dir,
            build,
            code_included,
        })
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).io_context(|| format!("Failed to write `{}`", path.display()))
}
