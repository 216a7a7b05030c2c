//! `baton server`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::TypedValueParser as _;
use clap::Args;

use super::Context;
use crate::error::{Error, Result};
use crate::launcher;
use crate::model::Driver;
use crate::runner::Isolation;
use crate::server::{Server, ServerConfig, Token, DEFAULT_BODY_LIMIT};

/// Arguments of `baton server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,

    /// Port to listen on (0 picks a free one; the address is printed on stdout)
    #[arg(long, default_value_t = 8080)]
    port: u16,

    /// Where projects, their databases and logs, and the default artifact path live
    /// [default: $XDG_DATA_HOME/baton/server, else ~/.local/share/baton/server]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// How many function runs execute at once; the rest wait, recorded as `created`
    /// [default: the number of CPUs]
    #[arg(long, value_name = "N")]
    max_workers: Option<usize>,

    /// This server's address as KFP pods reach it, given to every compiled step as BATON_API
    /// [default: http://<the address it listens on>]
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,

    /// How workflow steps are isolated: `fork` (a child of a warm Python worker the server
    /// keeps) or `process` (a `baton runner` and a fresh Python per step)
    #[arg(long, default_value = "fork", value_name = "HOW",
          value_parser = clap::builder::PossibleValuesParser::new(["fork", "process"])
              .map(|s| s.parse::<Isolation>().expect("a listed value")))]
    isolation: Isolation,

    /// Refuse schedules whose cron fires more often than this (MLRun's minimum interval; 0
    /// allows any)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_interval)]
    schedule_min_interval: std::time::Duration,

    /// The largest request body accepted, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
}

/// A duration such as `10m` or `1h`; `0` alone is zero (no minimum).
fn parse_interval(text: &str) -> std::result::Result<std::time::Duration, String> {
    if text.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration such as 10m: {e}"))
}

/// One worker per CPU.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The default data folder.
fn default_data_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").ok_or_else(|| {
                Error::invalid("Neither XDG_DATA_HOME nor HOME is set; pass --data-dir")
            })?;
            PathBuf::from(home).join(".local/share")
        }
    };
    Ok(base.join("baton/server"))
}

pub(crate) async fn run(args: ServerArgs, ctx: &Context) -> Result<ExitCode> {
    // Caught from here on, so a signal during start-up still stops the server cleanly.
    let shutdown = launcher::shutdown_signal();
    Driver::set_program("baton server");
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    // `--token` is global: every request but GET /healthz must carry it as a bearer token
    // (MLRun's client sends it when MLRUN_HTTPDB__TOKEN is set).
    let token = ctx.token.clone().map(Token::new).transpose()?;
    let server = Server::bind(ServerConfig {
        addr: SocketAddr::new(args.host, args.port),
        data_dir: data_dir.clone(),
        token,
        max_workers: args.max_workers.unwrap_or_else(default_workers),
        body_limit: args.body_limit,
        step_executor: None,
        isolation: args.isolation,
        kfp: ctx.kfp_client()?,
        public_url: args.public_url,
        schedule_min_interval: args.schedule_min_interval,
    })
    .await?;
    let addr = server.local_addr()?;
    ctx.printer
        .info(format!("Serving data folder `{}`", data_dir.display()));
    ctx.printer.data(format!("listening on http://{addr}"));
    server.run(shutdown).await?;
    ctx.printer.info("Server stopped");
    Ok(ExitCode::SUCCESS)
}
