//! `store://` URIs: the address of an artifact version.
//!
//! The grammar is MLRun's: `store://[<prefix>/]<project>/<key>[#<iter>][:<tag>][@<tree>][^<uid>]`,
//! where `<prefix>` is one of the artifact kinds (`artifacts`, `models`, ...) and, when absent,
//! `artifacts` is implied, so `store://p/k` is `store://artifacts/p/k`. `@` selects the producer
//! tree and `^` the uid. Unlike MLRun, a URI that names no artifact (`store://artifacts`) is an
//! [`Error::InvalidArgument`] quoting it, never a crash.

use std::fmt;
use std::str::FromStr;

pub mod names;

use crate::error::{Error, Result};
use names::{validate_key, validate_tag};

/// The scheme every store URI starts with (case-sensitive).
pub const STORE_SCHEME: &str = "store://";

/// Prefixes that name an artifact kind; all of them address the same artifact table.
const ARTIFACT_PREFIXES: &[&str] = &[
    "artifacts",
    "models",
    "datasets",
    "documents",
    "llm-prompts",
];

/// Prefixes MLRun uses for feature-store objects, which are never code.
const FEATURE_STORE_PREFIXES: &[&str] = &["feature-sets", "feature-vectors"];

/// A parsed `store://` artifact URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreUri {
    /// The project; `None` means "the caller's project".
    pub project: Option<String>,
    /// The artifact key (database key).
    pub key: String,
    /// The iteration, if given.
    pub iter: Option<u32>,
    /// The tag, if given (may itself contain `:`).
    pub tag: Option<String>,
    /// The producer tree, if given.
    pub tree: Option<String>,
    /// The version uid, if given.
    pub uid: Option<String>,
}

/// Whether `s` is a store URI (starts with `store://`).
pub fn is_store_uri(s: &str) -> bool {
    s.starts_with(STORE_SCHEME)
}

/// Whether `source` is the URL of a payload in a remote store (anything with a scheme but
/// `file://` and `store://`, which names an artifact rather than a payload).
pub fn is_remote_url(source: &str) -> bool {
    source.contains("://") && !source.starts_with("file://") && !is_store_uri(source)
}

/// Whether `url` is a git source: `git://`, `git+https://`, `git+http://`, `git+ssh://` or
/// `git+file://`, with an optional `#<branch|tag|commit>`.
pub fn is_git_url(url: &str) -> bool {
    [
        "git://",
        "git+https://",
        "git+http://",
        "git+ssh://",
        "git+file://",
    ]
    .iter()
    .any(|p| url.starts_with(p))
}

/// The suffixes of archive sources a function may name by path or URL.
const ARCHIVE_SUFFIXES: [&str; 4] = [".zip", ".tar.gz", ".tgz", ".tar"];

/// The kind of a function source string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A `store://` code artifact.
    Store,
    /// A single Python file.
    PythonFile,
    /// A `.zip`/`.tar.gz`/`.tgz`/`.tar` archive path or URL.
    Archive,
    /// A git repository (`git://`, `git+https://`, `git+ssh://`, `git+file://`) with an
    /// optional `#<branch|tag|commit>`.
    Git,
}

/// Classifies a function source, refusing anything else with the list of accepted forms.
pub fn source_kind(func: &str) -> Result<SourceKind> {
    if is_store_uri(func) {
        Ok(SourceKind::Store)
    } else if is_git_url(func) {
        Ok(SourceKind::Git)
    } else if func.to_ascii_lowercase().ends_with(".py") {
        Ok(SourceKind::PythonFile)
    } else if ARCHIVE_SUFFIXES
        .iter()
        .any(|s| func.to_ascii_lowercase().ends_with(s))
    {
        Ok(SourceKind::Archive)
    } else {
        Err(Error::invalid(format!(
            "Unsupported function source `{func}`: expected a store:// URI, a .py file, an archive (.zip, .tar.gz, .tgz, .tar) by path or URL, or a git repository (git://, git+https://, git+ssh://, git+file:// with #<branch|tag|commit>)"
        )))
    }
}

impl StoreUri {
    /// A URI naming the latest version of `key` in `project`.
    pub fn latest(project: impl Into<String>, key: impl Into<String>) -> Self {
        StoreUri {
            project: Some(project.into()),
            key: key.into(),
            iter: None,
            tag: None,
            tree: None,
            uid: None,
        }
    }

    /// The project this URI names, or `default` when it names none.
    pub fn project_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.project.as_deref().unwrap_or(default)
    }
}

impl FromStr for StoreUri {
    type Err = Error;

    fn from_str(uri: &str) -> Result<Self> {
        parse(uri).map_err(|reason| {
            Error::invalid_with_hint(
                format!("Malformed store URI `{uri}`: {reason}"),
                "store URIs look like `store://artifacts/<project>/<key>[#<iter>][:<tag>][@<tree>][^<uid>]`",
            )
        })
    }
}

fn parse(uri: &str) -> std::result::Result<StoreUri, String> {
    let rest = uri
        .strip_prefix(STORE_SCHEME)
        .ok_or_else(|| format!("it does not start with `{STORE_SCHEME}`"))?;
    let ends_with_slash = rest.ends_with('/');
    let rest = rest.trim_matches('/');
    let body = match rest.split_once('/') {
        Some((prefix, body)) if ARTIFACT_PREFIXES.contains(&prefix) => body,
        Some((prefix, _)) if FEATURE_STORE_PREFIXES.contains(&prefix) => {
            return Err(format!("`{prefix}` objects are not artifacts"));
        }
        _ if ARTIFACT_PREFIXES.contains(&rest) || FEATURE_STORE_PREFIXES.contains(&rest) => {
            return Err("it names no artifact".to_string());
        }
        _ => rest,
    };
    if body.is_empty() {
        return Err("it names no artifact".to_string());
    }

    // The project ends at the last `/` before the first version delimiter.
    let selector_start = body.find(['#', ':', '@', '^']).unwrap_or(body.len());
    let (project, rest) = match body[..selector_start].rfind('/') {
        Some(slash) => (Some(&body[..slash]), &body[slash + 1..]),
        None => (None, body),
    };
    if project == Some("") {
        return Err("the project is empty".to_string());
    }
    // `store://artifacts/p/` names project `p` and no key; a slash after a key is tolerated.
    if ends_with_slash && project.is_none() && selector_start == body.len() {
        return Err(format!(
            "the key is empty (`{body}/` names a project and no key)"
        ));
    }

    // Delimiters come in the order `#`, `:`, `@`, `^`; peel them off from the right.
    let (rest, uid) = split_selector(rest, '^', "uid")?;
    let (rest, tree) = split_selector(rest, '@', "tree")?;
    let (rest, iter) = match rest.find(['#', ':']) {
        Some(i) if rest.as_bytes()[i] == b'#' => {
            let after = &rest[i + 1..];
            let end = after.find(':').unwrap_or(after.len());
            let iter = after[..end]
                .parse::<u32>()
                .map_err(|_| format!("the iteration `{}` is not an integer", &after[..end]))?;
            (format!("{}{}", &rest[..i], &after[end..]), Some(iter))
        }
        _ => (rest.to_string(), None),
    };
    let (key, tag) = match rest.split_once(':') {
        Some((key, tag)) => (key, Some(tag)),
        None => (rest.as_str(), None),
    };
    if key.is_empty() {
        return Err("the key is empty".to_string());
    }
    validate_key("key", key).map_err(|e| e.to_string())?;
    if let Some(tag) = tag {
        validate_tag(tag).map_err(|e| e.to_string())?;
    }
    Ok(StoreUri {
        project: project.map(str::to_string),
        key: key.to_string(),
        iter,
        tag: tag.map(str::to_string),
        tree: tree.map(str::to_string),
        uid: uid.map(str::to_string),
    })
}

/// Splits `s` at the first `delimiter`, refusing an empty or ill-formed selector.
fn split_selector<'a>(
    s: &'a str,
    delimiter: char,
    what: &str,
) -> std::result::Result<(&'a str, Option<&'a str>), String> {
    match s.split_once(delimiter) {
        None => Ok((s, None)),
        Some((_, "")) => Err(format!("the {what} after `{delimiter}` is empty")),
        Some((_, value)) if value.contains(['#', ':', '@', '^', '/']) => Err(format!(
            "the {what} `{value}` contains a delimiter (the order is `#iter`, `:tag`, `@tree`, `^uid`)"
        )),
        Some((head, value)) => Ok((head, Some(value))),
    }
}

impl fmt::Display for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STORE_SCHEME}artifacts/")?;
        if let Some(project) = &self.project {
            write!(f, "{project}/")?;
        }
        f.write_str(&self.key)?;
        if let Some(iter) = self.iter {
            write!(f, "#{iter}")?;
        }
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(tree) = &self.tree {
            write!(f, "@{tree}")?;
        }
        if let Some(uid) = &self.uid {
            write!(f, "^{uid}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> StoreUri {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_full_grammar() {
        let uri = p("store://artifacts/my-project/my_func_code#0:v1@abc^def");
        assert_eq!(uri.project.as_deref(), Some("my-project"));
        assert_eq!(uri.key, "my_func_code");
        assert_eq!(uri.iter, Some(0));
        assert_eq!(uri.tag.as_deref(), Some("v1"));
        assert_eq!(uri.tree.as_deref(), Some("abc"));
        assert_eq!(uri.uid.as_deref(), Some("def"));
    }

    #[test]
    fn short_form_and_kind_prefixes_address_artifacts() {
        assert_eq!(p("store://p/k"), p("store://artifacts/p/k"));
        assert_eq!(p("store://models/p/k"), p("store://artifacts/p/k"));
        assert_eq!(p("store://artifacts/p/k/"), p("store://artifacts/p/k"));
    }

    #[test]
    fn at_selects_the_tree_and_caret_the_uid() {
        let uri = p("store://artifacts/p/k@abc");
        assert_eq!(uri.tree.as_deref(), Some("abc"));
        assert_eq!(uri.uid, None);
    }

    #[test]
    fn a_uri_without_project_keeps_none() {
        let uri = p("store://artifacts/k:v2");
        assert_eq!(uri.project, None);
        assert_eq!(uri.project_or("dflt"), "dflt");
    }

    #[test]
    fn malformed_uris_are_invalid_argument_errors_quoting_the_uri() {
        for (uri, reason) in [
            ("store://artifacts", "names no artifact"),
            ("store://", "names no artifact"),
            ("store://artifacts/", "names no artifact"),
            ("s3://bucket/k", "does not start with `store://`"),
            ("store://artifacts/p/k#x", "iteration `x` is not an integer"),
            ("store://artifacts/p/k^", "uid after `^` is empty"),
            ("store://artifacts/p/:v1", "key is empty"),
            (
                "store://artifacts/p/",
                "the key is empty (`p/` names a project and no key)",
            ),
            (
                "store://p/",
                "the key is empty (`p/` names a project and no key)",
            ),
            ("store://artifacts/p/bad key", "malformed"),
            ("store://artifacts/p/k:-bad", "malformed"),
            ("store://artifacts//k", "project is empty"),
            ("store://feature-sets/p/fs", "not artifacts"),
            ("store://artifacts/p/k^u@t", "contains a delimiter"),
        ] {
            let err = uri.parse::<StoreUri>().unwrap_err();
            assert_eq!(
                err.kind(),
                crate::error::ErrorKind::InvalidArgument,
                "{uri}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("`{uri}`")), "{msg}");
            assert!(msg.contains(reason), "{uri}: {msg}");
        }
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?"
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(
            project in proptest::option::of(name()),
            key in name(),
            iter in proptest::option::of(0u32..1000),
            tag in proptest::option::of(name()),
            tree in proptest::option::of("[a-f0-9]{1,40}"),
            uid in proptest::option::of("[a-f0-9]{1,40}"),
        ) {
            let uri = StoreUri { project, key, iter, tag, tree, uid };
            let text = uri.to_string();
            prop_assert_eq!(text.parse::<StoreUri>().unwrap(), uri.clone());
            prop_assert_eq!(text.parse::<StoreUri>().unwrap().to_string(), text);
        }
    }
}
