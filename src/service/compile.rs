//! Compile a workflow for Kubeflow Pipelines.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Baton;
use crate::error::{Error, Result};
use crate::kfp::{compile, configured_image, CompileOptions};
use crate::workflow::{merge_args, ArgSchemaEntry, Dag, DagCheck};

impl Baton {
    /// Workflow `name` compiled to a KFP v2 `PipelineSpec`: its source resolved now, the
    /// workflow's default arguments and then `args` written over the pipeline parameters'
    /// defaults (each coerced to its parameter's type; an undeclared one is an error), and every
    /// step's function definition from the project. Steps run in `image`, else the workflow's
    /// image, else the configured default (`BATON_KFP_IMAGE`), unless their function names one.
    pub async fn compile_workflow(
        &self,
        name: &str,
        args: &Map<String, Value>,
        image: Option<String>,
    ) -> Result<Value> {
        let spec = self.project.workflow(name)?;
        let dag = self.workflow_dag(name).await?;
        let schema = crate::project::args_schema(&spec)?;
        let mut given = spec.args.clone();
        given.extend(args.clone());
        let dag = with_defaults(dag, &schema, &given)?;

        let image = image.or(spec.image).filter(|i| !i.trim().is_empty());
        let options = self.compile_options(&dag, image)?;
        compile(&dag, &options)
    }

    /// How this project's workflows compile: every step's function definition from the
    /// project, steps in `image` (else the configured default) unless their function names
    /// one, and `BATON_API` in every step's environment when a server is known (the one this
    /// service works against, else `BATON_API`/`MLRUN_DBPATH` here).
    pub fn compile_options(&self, dag: &Dag, image: Option<String>) -> Result<CompileOptions> {
        let mut functions = BTreeMap::new();
        for step in dag.steps() {
            if !functions.contains_key(&step.function) {
                functions.insert(
                    step.function.clone(),
                    self.project.function(&step.function)?,
                );
            }
        }
        let mut env = BTreeMap::new();
        if let Some(url) = self.pod_api_url() {
            env.insert("BATON_API".to_string(), url);
        }
        Ok(CompileOptions {
            project: self.project.name().to_owned(),
            functions,
            default_image: image.unwrap_or_else(configured_image),
            labels: BTreeMap::new(),
            env,
        })
    }

    /// The server a compiled step records its run on: the one this service works against,
    /// else `BATON_API`, else `MLRUN_DBPATH`.
    pub fn pod_api_url(&self) -> Option<String> {
        if let Some(api) = &self.server {
            return Some(api.base_url().to_string());
        }
        ["BATON_API", "MLRUN_DBPATH"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }
}

/// `dag` with the `given` arguments as its parameters' defaults, each coerced to its type.
fn with_defaults(dag: Dag, schema: &[ArgSchemaEntry], given: &Map<String, Value>) -> Result<Dag> {
    if given.is_empty() {
        return Ok(dag);
    }
    let mut graph = dag.workflow().clone();
    for (key, value) in given {
        let Some(param) = graph.params.iter_mut().find(|p| &p.name == key) else {
            let declared: Vec<&str> = graph.params.iter().map(|p| p.name.as_str()).collect();
            return Err(Error::invalid(format!(
                "workflow `{}` has no parameter `{key}`; its parameters: {}",
                graph.name,
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            )));
        };
        let one: Map<String, Value> = [(key.clone(), value.clone())].into_iter().collect();
        let entries: Vec<ArgSchemaEntry> =
            schema.iter().filter(|e| &e.name == key).cloned().collect();
        let merged = merge_args(std::slice::from_ref(param), &entries, &one, false)?;
        param.default = merged.get(key).cloned();
    }
    Dag::build(graph, &DagCheck::default())
}
