//! `baton profiles set | list | get | delete`: datastore profiles, which `ds://<profile>/<path>`
//! URLs name.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Subcommand;

use super::table::Table;
use super::{parse_key_value, Context};
use crate::datastore::profile::{DatastoreProfile, ProfileKind, ProfileSecrets};
use crate::error::{Error, Result};

/// The `profiles` command group.
#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// Create or replace a datastore profile (on the server with --api)
    Set {
        /// The profile's name, as in ds://NAME/path
        name: String,
        /// The kind of storage: s3, file or http
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// The S3 bucket (s3)
        #[arg(long)]
        bucket: Option<String>,
        /// The S3-compatible store's URL (s3), the folder (file) or the base URL (http)
        #[arg(long)]
        endpoint: Option<String>,
        /// A secret, KEY=ENV_VAR: its value is read from the environment variable ENV_VAR, so
        /// it never appears on a command line (s3: access_key_id, secret_key, session_token;
        /// http: token)
        #[arg(long = "secret", value_name = "KEY=ENV_VAR", value_parser = parse_key_value)]
        secrets: Vec<(String, String)>,
    },
    /// List the project's datastore profiles (never their secrets)
    List {
        /// Print the profiles as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one datastore profile (the names of its secrets, never their values)
    Get {
        /// The profile's name
        name: String,
        /// Print the profile as JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a datastore profile
    Delete {
        /// The profile's name
        name: String,
    },
}

pub(crate) async fn run(cmd: ProfilesCommand, ctx: &Context) -> Result<ExitCode> {
    let baton = ctx.baton().await?;
    match cmd {
        ProfilesCommand::Set {
            name,
            kind,
            bucket,
            endpoint,
            secrets,
        } => {
            let secrets = read_secrets(&secrets, |var| std::env::var(var).ok())?;
            let profile = DatastoreProfile {
                name,
                kind: kind.parse::<ProfileKind>()?,
                bucket,
                endpoint,
                secrets: secrets.0.keys().cloned().collect(),
            };
            baton.set_profile(&profile, &secrets).await?;
            ctx.printer.info(format!(
                "Stored datastore profile `{}` ({})",
                profile.name, profile.kind
            ));
        }
        ProfilesCommand::List { json } => {
            let profiles = baton.profiles().await?;
            if json {
                ctx.printer.json(&profiles);
            } else {
                let mut table = Table::new(&["NAME", "TYPE", "BUCKET", "ENDPOINT", "SECRETS"]);
                for p in &profiles {
                    table.row([
                        p.name.clone(),
                        p.kind.to_string(),
                        p.bucket.clone().unwrap_or_default(),
                        p.endpoint.clone().unwrap_or_default(),
                        p.secrets.join(","),
                    ]);
                }
                ctx.printer.data(table);
            }
        }
        ProfilesCommand::Get { name, json } => {
            let profile = baton.profile(&name).await?;
            if json {
                ctx.printer.json(&profile);
            } else {
                ctx.printer
                    .data(serde_yaml::to_string(&profile).expect("profiles serialize"));
            }
        }
        ProfilesCommand::Delete { name } => {
            baton.delete_profile(&name).await?;
            ctx.printer
                .info(format!("Deleted datastore profile `{name}`"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The secret values named by `KEY=ENV_VAR` pairs, read through `env`; an unset or empty
/// variable is an error naming it (and never a value).
fn read_secrets(
    pairs: &[(String, String)],
    env: impl Fn(&str) -> Option<String>,
) -> Result<ProfileSecrets> {
    let mut secrets = BTreeMap::new();
    for (key, var) in pairs {
        let value = env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            Error::invalid_with_hint(
                format!("The secret `{key}` is to be read from the environment variable `{var}`, which is not set"),
                format!("export {var}=... before running the command"),
            )
        })?;
        secrets.insert(key.clone(), value);
    }
    Ok(ProfileSecrets(secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_read_from_the_named_variables() {
        let pairs = vec![("secret_key".to_string(), "MY_SECRET".to_string())];
        let secrets =
            read_secrets(&pairs, |v| (v == "MY_SECRET").then(|| "s3cr3t".into())).unwrap();
        assert_eq!(secrets.get("secret_key"), Some("s3cr3t"));
        let err = read_secrets(&pairs, |_| None).unwrap_err().to_string();
        assert!(err.contains("`MY_SECRET`, which is not set"), "{err}");
    }
}
