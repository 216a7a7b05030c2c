//! git sources: `git://`, `git+https://`, `git+ssh://` and `git+file://` URLs with an optional
//! `#<branch>`, `#<tag>` or `#<commit>` ref, fetched with the `git` program.
//!
//! A source is resolved in two steps, so the code cache can key it by commit: [`GitSource::
//! resolve_commit`] asks the remote what the ref names now (a branch that moved gives its new
//! commit; a full commit id is taken as is, never asked), and [`GitSource::archive`] fetches that
//! one commit and writes its tree as a tar file, which the caller unpacks through the one safe
//! extractor. git verifies the objects it fetches against their ids, so a commit id pins the
//! code exactly.
//!
//! The `git` program is used rather than a library: it speaks every transport and credential
//! helper the user has configured, and a missing one is a clear error naming it. It never
//! prompts (`GIT_TERMINAL_PROMPT=0`), runs with a deadline, and is killed when its caller gives
//! up on it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{Error, Result};
use crate::uri::is_git_url;

/// The longest one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// A parsed git source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// The URL as given (what errors and records show).
    pub url: String,
    /// The URL git clones from (`git+` removed).
    pub remote: String,
    /// The ref after `#`, if any; the remote's `HEAD` otherwise.
    pub reference: Option<String>,
}

/// Whether `s` is a full commit id (40 hex digits, or 64 for a SHA-256 repository).
fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl GitSource {
    /// Parses a git source URL; anything else is [`Error::InvalidArgument`].
    pub fn parse(url: &str) -> Result<GitSource> {
        if !is_git_url(url) {
            return Err(Error::invalid(format!(
                "`{url}` is not a git source: expected `git://`, `git+https://`, `git+ssh://` or `git+file://`"
            )));
        }
        let (base, reference) = match url.split_once('#') {
            Some((base, reference)) => (base, Some(reference)),
            None => (url, None),
        };
        if let Some(reference) = reference {
            // A ref reaches git's command line: refuse what could read as an option or a range.
            let bad = reference.is_empty()
                || reference.starts_with('-')
                || reference.contains("..")
                || reference
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b"~^:?*[\\".contains(&b));
            if bad {
                return Err(Error::invalid(format!(
                    "Malformed git ref `{reference}` in `{url}`: expected a branch, a tag or a commit id"
                )));
            }
        }
        Ok(GitSource {
            url: url.to_string(),
            remote: base.strip_prefix("git+").unwrap_or(base).to_string(),
            reference: reference.map(str::to_string),
        })
    }

    /// The commit the ref names now: a full commit id as given (lowercased), else what the
    /// remote answers for `refs/heads/<ref>`, `refs/tags/<ref>` (an annotated tag's commit) or
    /// the ref as a full name, else its `HEAD`.
    pub async fn resolve_commit(&self) -> Result<String> {
        if let Some(id) = self.reference.as_deref().filter(|r| is_commit_id(r)) {
            return Ok(id.to_ascii_lowercase());
        }
        let wanted = self.reference.as_deref().unwrap_or("HEAD");
        let output = git(
            None,
            &["ls-remote", "--", &self.remote, wanted],
            &format!("list the refs of `{}`", self.url),
        )
        .await?;
        let refs: Vec<(&str, &str)> = output
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .collect();
        let candidates = [
            format!("refs/tags/{wanted}^{{}}"),
            format!("refs/tags/{wanted}"),
            format!("refs/heads/{wanted}"),
            format!("{wanted}^{{}}"),
            wanted.to_string(),
        ];
        candidates
            .iter()
            .find_map(|name| {
                refs.iter()
                    .find(|(_, r)| r == name)
                    .map(|(id, _)| id.to_string())
            })
            .ok_or_else(|| {
                Error::not_found(format!(
                    "The git source `{}` has no branch, tag or ref `{wanted}`",
                    self.url
                ))
                .with_hint("name a branch, a tag or a full commit id after `#`")
            })
    }

    /// Fetches `commit` into the scratch repository `scratch` (created) and writes its tree as a
    /// tar archive at `tar`.
    pub async fn archive(&self, commit: &str, scratch: &Path, tar: &Path) -> Result<()> {
        let dir = Some(scratch);
        let what = |action: &str| format!("{action} `{}` at `{commit}`", self.url);
        std::fs::create_dir_all(scratch)
            .map_err(|e| Error::io(format!("Failed to create `{}`", scratch.display()), e))?;
        git(dir, &["init", "-q", "--bare"], &what("prepare a fetch of")).await?;
        // Servers let a client fetch a commit by id when it is a ref's tip, or when they allow
        // any; otherwise fall back to fetching every branch and tag, which contains it.
        let shallow = git(
            dir,
            &["fetch", "-q", "--depth", "1", "--", &self.remote, commit],
            &what("fetch"),
        )
        .await;
        if let Err(e) = shallow {
            tracing::debug!("shallow fetch of {commit} failed ({e}); fetching all refs");
            git(
                dir,
                &[
                    "fetch",
                    "-q",
                    "--tags",
                    "--",
                    &self.remote,
                    "+refs/heads/*:refs/remotes/origin/*",
                ],
                &what("fetch"),
            )
            .await?;
        }
        let object = format!("{commit}^{{commit}}");
        git(dir, &["cat-file", "-e", &object], &what("find"))
            .await
            .map_err(|_| {
                Error::not_found(format!(
                    "The git source `{}` has no commit `{commit}`",
                    self.url
                ))
            })?;
        let tar = tar.to_string_lossy();
        git(
            dir,
            &["archive", "--format=tar", "-o", &tar, commit],
            &what("export"),
        )
        .await?;
        Ok(())
    }
}

/// Runs `git args` (in `dir` if given) and returns its standard output; a failure names `what`
/// and carries git's own message.
async fn git(dir: Option<&Path>, args: &[&str], what: &str) -> Result<String> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("--git-dir").arg(dir);
    }
    command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::runtime(format!(
                "Cannot {what}: git sources need the `git` program, and it is not on PATH"
            ))
            .with_hint("install git (e.g. `apt-get install git`) on the machine that runs the code")
        } else {
            Error::io(format!("Failed to start `git` to {what}"), e)
        }
    })?;
    let output = tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            Error::runtime(format!(
                "Cannot {what}: git did not finish in {GIT_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| Error::io(format!("Failed to run `git` to {what}"), e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::runtime(format!(
            "Cannot {what}: git failed: {}",
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_split_into_remote_and_ref() {
        let s = GitSource::parse("git+https://github.com/org/repo.git#main").unwrap();
        assert_eq!(s.remote, "https://github.com/org/repo.git");
        assert_eq!(s.reference.as_deref(), Some("main"));
        let s = GitSource::parse("git://host/repo").unwrap();
        assert_eq!((s.remote.as_str(), s.reference), ("git://host/repo", None));
        for bad in [
            "https://host/repo",
            "git+https://h/r#",
            "git+https://h/r#--upload-pack=x",
            "git+https://h/r#a..b",
            "git+https://h/r#a b",
        ] {
            assert!(GitSource::parse(bad).is_err(), "{bad}");
        }
    }
}
