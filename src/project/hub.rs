//! `hub://` functions: functions taken from a function hub laid out as MLRun's
//! (`<source>/functions/<channel>/<name>/<tag>/src/function.yaml`, the name with `_` for `-`,
//! channel `master`, tag `latest` unless the URI names one).
//!
//! The hub source is the user's choice, never a default on the internet: `BATON_HUB` (a folder
//! or an `http(s)://` URL), else `hub:` in `project.yaml`'s spec. A `hub://` function is resolved
//! when a run of it is submitted: its `function.yaml` is read, its code (inline as
//! `spec.build.functionSourceCode`, else the `spec.command` file beside it) is written under
//! `.baton/hub/`, and the run's function snapshot points at that file, so the runner needs
//! nothing more. Without a source, the run fails naming the function and both settings.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::Value;

use super::{normalize_function_name, Project, STATE_DIR};
use crate::error::{Error, IoResultExt, Result};
use crate::model::FunctionEntry;

/// The environment variable naming the hub source.
pub const HUB_ENV: &str = "BATON_HUB";

/// The prefix of hub function URIs.
pub const HUB_PREFIX: &str = "hub://";

/// The hub channel functions are read from (MLRun's default).
const CHANNEL: &str = "master";

/// `hub://[<source>/]<name>[:<tag>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HubUri {
    name: String,
    tag: String,
}

impl HubUri {
    fn parse(uri: &str) -> Result<HubUri> {
        let rest = uri.strip_prefix(HUB_PREFIX).unwrap_or(uri);
        let (path, tag) = rest.split_once(':').unwrap_or((rest, "latest"));
        let name = match path.split_once('/') {
            None => path,
            Some(("default", name)) => name,
            Some((source, _)) => {
                return Err(Error::invalid_with_hint(
                    format!("Hub function `{uri}` names the hub source `{source}`"),
                    format!(
                        "baton reads one hub source, `{HUB_ENV}`: write `hub://<name>[:<tag>]`"
                    ),
                ))
            }
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !s.starts_with('.')
        };
        if !valid(name) || !valid(tag) {
            return Err(Error::invalid(format!(
                "Hub function `{uri}` is malformed: write `hub://<name>[:<tag>]`"
            )));
        }
        Ok(HubUri {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl Project {
    /// The hub source: `BATON_HUB`, else the project's `hub` setting.
    fn hub_source(&self) -> Option<String> {
        std::env::var(HUB_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| {
                self.file
                    .spec
                    .extra
                    .get("hub")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
    }

    /// The function a `hub://` URI names, its code written under `.baton/hub/`.
    pub(super) async fn hub_function(&self, uri: &str) -> Result<FunctionEntry> {
        let hub = HubUri::parse(uri)?;
        let Some(source) = self.hub_source() else {
            // All in the message: a step's error is all its reader sees.
            return Err(Error::invalid(format!(
                "Function `{uri}` comes from a function hub, but no hub source is configured: \
                 set `{HUB_ENV}` to a folder or URL in the MLRun hub layout, or `hub:` in the \
                 spec of project.yaml"
            )));
        };
        let dir = format!(
            "{}/functions/{CHANNEL}/{}/{}/src",
            source.trim_end_matches('/'),
            hub.name.replace('-', "_"),
            hub.tag
        );
        let yaml = read(&format!("{dir}/function.yaml"), uri).await?;
        let spec: Value = serde_yaml::from_slice(&yaml).map_err(|e| {
            Error::invalid(format!(
                "The hub's `{dir}/function.yaml` for `{uri}` is not YAML: {e}"
            ))
        })?;
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(&spec, |v, k| v.get(*k))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let command = text(&["spec", "command"]);
        let code = match text(&["spec", "build", "functionSourceCode"]) {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| {
                    Error::invalid(format!(
                        "The inline code of hub function `{uri}` is not base64: {e}"
                    ))
                })?,
            None => match &command {
                Some(file) if is_plain_file(file) => read(&format!("{dir}/{file}"), uri).await?,
                _ => {
                    return Err(Error::invalid(format!(
                        "Hub function `{uri}` has no code: its function.yaml has neither \
                         spec.build.functionSourceCode nor a spec.command file"
                    )))
                }
            },
        };
        let module = command
            .as_deref()
            .filter(|c| is_plain_file(c))
            .and_then(|c| c.strip_suffix(".py"))
            .unwrap_or(&hub.name.replace('-', "_"))
            .to_string();
        let folder = self
            .root()
            .join(STATE_DIR)
            .join("hub")
            .join(&hub.name)
            .join(&hub.tag);
        std::fs::create_dir_all(&folder)
            .io_context(|| format!("Failed to create `{}`", folder.display()))?;
        let file: PathBuf = folder.join(format!("{module}.py"));
        std::fs::write(&file, code)
            .io_context(|| format!("Failed to write `{}`", file.display()))?;
        Ok(FunctionEntry {
            name: normalize_function_name(&hub.name),
            url: Some(file.to_string_lossy().into_owned()),
            kind: text(&["kind"]),
            image: text(&["spec", "image"]),
            handler: text(&["spec", "default_handler"]),
            requirements: Vec::new(),
            tag: Some(hub.tag),
            load_source_on_run: None,
            extra: Default::default(),
        })
    }
}

/// A file name with no folder part (`spec.command` must stay beside `function.yaml`).
fn is_plain_file(name: &str) -> bool {
    !name.contains('/') && !name.contains('\\') && name != ".." && !name.contains(' ')
}

/// Reads a hub file: an `http(s)://` URL, a `file://` URL or a path.
async fn read(location: &str, uri: &str) -> Result<Vec<u8>> {
    let not_found = |why: String| {
        Error::not_found(format!(
            "Hub function `{uri}` not found: cannot read `{location}` ({why})"
        ))
    };
    if location.starts_with("http://") || location.starts_with("https://") {
        let response = reqwest::get(location)
            .await
            .map_err(|e| not_found(e.to_string()))?;
        if !response.status().is_success() {
            return Err(not_found(format!("HTTP {}", response.status())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| not_found(e.to_string()))?;
        return Ok(body.to_vec());
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    std::fs::read(path).map_err(|e| not_found(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_tag_and_the_default_source() {
        let parse = |s| HubUri::parse(s).unwrap();
        assert_eq!(
            parse("hub://describe"),
            HubUri {
                name: "describe".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(parse("hub://default/auto-trainer:1.2.0").tag, "1.2.0");
        assert_eq!(
            parse("hub://default/auto-trainer:1.2.0").name,
            "auto-trainer"
        );
        let err = HubUri::parse("hub://mine/describe").unwrap_err();
        assert!(err.to_string().contains("hub source `mine`"), "{err}");
        for bad in ["hub://", "hub://../x", "hub://a b", "hub://x:"] {
            assert!(HubUri::parse(bad).is_err(), "{bad}");
        }
    }
}
