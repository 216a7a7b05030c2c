//! `baton schedules list | get | delete | pause | resume | trigger | backfill`, and storing a
//! schedule for `baton run NAME --schedule CRON`. Schedules live on a `baton server`, so every
//! command needs `--api`.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use reqwest::Method;

use super::table::Table;
use super::Context;
use crate::db::{segment, ApiClient};
use crate::error::{Error, Result};
use crate::server::schedules::routes::{BackfillBody, PauseBody, ScheduleBody, ScheduleDetail};
use crate::server::schedules::store::{Fire, ScheduleRecord};

/// How `baton run --schedule` schedules a workflow.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Store a schedule on the server (`--api`) instead of running now: a 5-field cron
    /// expression or an `@hourly`-style macro
    #[arg(long, value_name = "CRON")]
    pub schedule: Option<String>,
    /// The IANA time zone the schedule is read in [default: UTC]
    #[arg(long, value_name = "TZ", requires = "schedule")]
    pub timezone: Option<String>,
    /// What a fire does while an earlier run is going: skip, buffer-one, allow-all,
    /// cancel-other, terminate-other [default: skip]
    #[arg(long, value_name = "POLICY", requires = "schedule")]
    pub overlap: Option<String>,
    /// What happens to fires missed while the server was down: skip, latest, all
    /// [default: latest]
    #[arg(long, value_name = "POLICY", requires = "schedule")]
    pub catchup: Option<String>,
}

/// The `schedules` command group.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List the project's schedules with their next fire, last fire and its state
    List {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one schedule and its newest fires
    Get {
        /// The schedule
        name: String,
        /// How many of its newest fires to show
        #[arg(long, value_name = "N", default_value_t = 20)]
        fires: usize,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a schedule (runs it started go on)
    Delete {
        /// The schedule
        name: String,
    },
    /// Hold a schedule's fires
    Pause {
        /// The schedule
        name: String,
        /// Why, shown by `list` and `get`
        #[arg(long)]
        note: Option<String>,
    },
    /// Fire a paused schedule again, from now on
    Resume {
        /// The schedule
        name: String,
    },
    /// Fire a schedule now
    Trigger {
        /// The schedule
        name: String,
    },
    /// Fire a schedule once for each of its times in a past range that has not fired yet
    Backfill {
        /// The schedule
        name: String,
        /// The start of the range (RFC 3339, e.g. 2026-01-01T00:00:00Z)
        #[arg(long, value_name = "TIME")]
        from: DateTime<Utc>,
        /// The end of the range (RFC 3339), not in the future
        #[arg(long, value_name = "TIME")]
        to: DateTime<Utc>,
    },
}

/// The server's client; schedules need one.
fn client(ctx: &Context) -> Result<ApiClient> {
    ctx.api_client()?.ok_or_else(|| {
        Error::invalid_with_hint(
            "Schedules live on a baton server, and none is given",
            "start one with `baton server` and pass `--api http://127.0.0.1:8080` (or set BATON_API)",
        )
    })
}

/// The URL of the project's schedules, or of one of them with `tail` (`/pause`, ...).
fn url(api: &ApiClient, project: &str, name: Option<&str>, tail: &str) -> Result<String> {
    let mut path = format!(
        "/api/baton/v1/projects/{}/schedules",
        segment("project", project)?
    );
    if let Some(name) = name {
        path.push('/');
        path.push_str(&segment("schedule", name)?);
    }
    path.push_str(tail);
    Ok(api.url(&path))
}

/// Stores schedule `body` on the server for `baton run --schedule`, with the project's
/// definition (so the server runs the workflows and functions defined here).
pub(crate) async fn store(mut body: ScheduleBody, json: bool, ctx: &Context) -> Result<ExitCode> {
    let api = client(ctx)?;
    let project = ctx.project()?;
    let mut file = project.file.clone();
    file.spec.artifact_path = Some(project.resolve_artifact_path(None));
    body.project = Some(file);
    let record: ScheduleRecord = api
        .send(
            Method::POST,
            &url(&api, project.name(), None, "")?,
            &[],
            &body,
        )
        .await?;
    if json {
        ctx.printer.json(&record);
        return Ok(ExitCode::SUCCESS);
    }
    ctx.printer.info(format!(
        "Scheduled workflow `{}` on the server at {}: `{}` ({}), next fire {}",
        record.spec.workflow,
        api.base_url(),
        record.spec.schedule,
        record.spec.timezone,
        record.next_fire.as_deref().unwrap_or("never")
    ));
    ctx.printer.data(&record.name);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(cmd: SchedulesCommand, ctx: &Context) -> Result<ExitCode> {
    let api = client(ctx)?;
    let project = ctx.project()?;
    let project = project.name();
    match cmd {
        SchedulesCommand::List { json } => {
            let schedules: Vec<ScheduleRecord> =
                api.get(&url(&api, project, None, "")?, &[]).await?;
            if json {
                ctx.printer.json(&schedules);
            } else {
                ctx.printer.data(table(&schedules));
            }
        }
        SchedulesCommand::Get { name, fires, json } => {
            let query = [("fires", fires.to_string())];
            let detail: ScheduleDetail = api
                .get(&url(&api, project, Some(&name), "")?, &query)
                .await?;
            if json {
                ctx.printer.json(&detail);
            } else {
                ctx.printer
                    .data(serde_yaml::to_string(&detail).expect("records serialize"));
            }
        }
        SchedulesCommand::Delete { name } => {
            api.call(
                Method::DELETE,
                &url(&api, project, Some(&name), "")?,
                &[],
                None,
            )
            .await?;
            ctx.printer.info(format!("Deleted schedule `{name}`"));
        }
        SchedulesCommand::Pause { name, note } => {
            let _: ScheduleRecord = api
                .send(
                    Method::POST,
                    &url(&api, project, Some(&name), "/pause")?,
                    &[],
                    &PauseBody { note },
                )
                .await?;
            ctx.printer.info(format!("Paused schedule `{name}`"));
        }
        SchedulesCommand::Resume { name } => {
            let record: ScheduleRecord = api
                .send(
                    Method::POST,
                    &url(&api, project, Some(&name), "/resume")?,
                    &[],
                    &serde_json::json!({}),
                )
                .await?;
            ctx.printer.info(format!(
                "Resumed schedule `{name}`; next fire {}",
                record.next_fire.as_deref().unwrap_or("never")
            ));
        }
        SchedulesCommand::Trigger { name } => {
            let fire: Fire = api
                .send(
                    Method::POST,
                    &url(&api, project, Some(&name), "/trigger")?,
                    &[],
                    &serde_json::json!({}),
                )
                .await?;
            ctx.printer
                .info(format!("Fired schedule `{name}` ({})", fire.scheduled));
            ctx.printer.data(&fire.scheduled);
        }
        SchedulesCommand::Backfill { name, from, to } => {
            let fires: Vec<Fire> = api
                .send(
                    Method::POST,
                    &url(&api, project, Some(&name), "/backfill")?,
                    &[],
                    &BackfillBody { from, to },
                )
                .await?;
            ctx.printer.info(format!(
                "Backfilled schedule `{name}`: {} fire(s) from {from} to {to}",
                fires.len()
            ));
            for fire in fires {
                ctx.printer.data(&fire.scheduled);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `list` table: next fire, last fire and its state.
fn table(schedules: &[ScheduleRecord]) -> Table {
    let mut table = Table::new(&[
        "NAME",
        "WORKFLOW",
        "SCHEDULE",
        "TIMEZONE",
        "NEXT FIRE",
        "LAST FIRE",
        "LAST STATE",
        "PAUSED",
    ]);
    for s in schedules {
        let last = s.last_fire.as_ref();
        let state = last.map(|f| {
            let state = f.state.word().to_string();
            match &f.detail {
                Some(detail) => format!("{state}: {detail}"),
                None => state,
            }
        });
        table.row([
            s.name.clone(),
            s.spec.workflow.clone(),
            s.spec.schedule.clone(),
            s.spec.timezone.clone(),
            s.next_fire.clone().unwrap_or_else(|| "-".into()),
            last.map_or_else(|| "-".into(), |f| f.scheduled.clone()),
            state.unwrap_or_else(|| "-".into()),
            match (&s.paused, &s.note) {
                (true, Some(note)) => format!("yes: {note}"),
                (true, None) => "yes".into(),
                (false, _) => "no".into(),
            },
        ]);
    }
    table
}
