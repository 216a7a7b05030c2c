//! Functions: define them, describe their effective build, write their build context.

use std::path::Path;

use serde::Serialize;

use super::Baton;
use crate::error::Result;
use crate::model::FunctionEntry;
use crate::project::{BuildOutput, EffectiveBuild, SetFunctionRequest};

/// A function with its effective build (the artifact's requirements merged in) and whether its
/// build configuration changed since it was last built. Serialises as `functions get --json`
/// prints it: the function's own fields, then `effective_build` and `build_required`.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionDescription {
    /// The function as defined.
    #[serde(flatten)]
    pub entry: FunctionEntry,
    /// Its build, when it could be resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_build: Option<EffectiveBuild>,
    /// Whether it needs `baton build` (unknown when `problem` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_required: Option<bool>,
    /// Why the build could not be resolved (its code artifact is gone, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Baton {
    /// Validates a function definition and writes it into the project, replacing a function of
    /// the same name.
    pub async fn set_function(&mut self, request: SetFunctionRequest) -> Result<FunctionEntry> {
        let db = self.db.clone();
        self.project.set_function(db.as_ref(), request).await
    }

    /// Describes function `name`; a problem resolving its build is an error.
    pub async fn describe_function(&self, name: &str) -> Result<FunctionDescription> {
        let entry = self.project.function(name)?;
        self.describe(entry).await
    }

    /// Describes every function. One whose build cannot be resolved (its artifact is gone) is
    /// listed with the problem instead of failing the list.
    pub async fn list_functions(&self) -> Result<Vec<FunctionDescription>> {
        let mut described = Vec::new();
        for entry in self.project.functions()? {
            described.push(match self.describe(entry.clone()).await {
                Ok(description) => description,
                Err(err) => FunctionDescription {
                    entry,
                    effective_build: None,
                    build_required: None,
                    problem: Some(err.to_string()),
                },
            });
        }
        Ok(described)
    }

    /// Whether function `name` needs a build before it runs as configured.
    pub async fn build_required(&self, name: &str) -> Result<bool> {
        Ok(self
            .describe_function(name)
            .await?
            .build_required
            .unwrap_or(true))
    }

    /// Writes function `name`'s build context (to `output`, else `.baton/builds/<name>`) and
    /// records its build configuration.
    pub async fn build_function(&self, name: &str, output: Option<&Path>) -> Result<BuildOutput> {
        self.project
            .build_function(self.db.as_ref(), name, output)
            .await
    }

    async fn describe(&self, entry: FunctionEntry) -> Result<FunctionDescription> {
        let db = self.db.as_ref();
        let build = EffectiveBuild::resolve(db, &self.project, &entry).await?;
        let build_required = build
            .build_required(db, self.project.name(), &entry.name)
            .await?;
        Ok(FunctionDescription {
            entry,
            effective_build: Some(build),
            build_required: Some(build_required),
            problem: None,
        })
    }
}
