//! `baton ui`: the web pages of the project, over its embedded database, on loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::Context;
use crate::error::{Error, Result};
use crate::launcher;
use crate::web::{Access, EmbeddedSource};

/// Arguments of `baton ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Port to listen on, on 127.0.0.1 only (0 picks a free one; the address is printed on
    /// stdout)
    #[arg(long, default_value_t = 8090)]
    port: u16,

    /// Open the page in the browser (`$BROWSER`, else `xdg-open`)
    #[arg(long)]
    open: bool,
}

pub(crate) async fn run(args: UiArgs, ctx: &Context) -> Result<ExitCode> {
    if let Some(api) = &ctx.api {
        return Err(Error::invalid_with_hint(
            "`baton ui` shows the project's embedded database, and a server is given (--api or \
             BATON_API)",
            format!(
                "open the server's own page, {}/",
                api.url.trim_end_matches('/')
            ),
        ));
    }
    let shutdown = launcher::shutdown_signal();
    let source = Arc::new(EmbeddedSource::open(ctx.project()?)?);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::io(format!("Cannot listen on {addr}"), e)
            .with_hint("pick another port with --port, or 0 for any free one")
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("Cannot read the listening address", e))?;
    let url = format!("http://{bound}/");
    ctx.printer.data(format!("listening on {url}"));
    if args.open {
        open_browser(&url, ctx);
    }
    // Loopback only, so no token: the pages' actions still need a same-origin POST.
    let app = crate::web::router(source.clone(), Access::open());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io("The page server stopped", e))?;
    source.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Starts the user's browser on `url`; the opener is waited for in the background (it hands
/// the page to a browser and exits), and a failure is a warning, the page being served anyway.
fn open_browser(url: &str, ctx: &Context) {
    let opener = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "xdg-open".into());
    match tokio::process::Command::new(&opener)
        .arg(url)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(e) => ctx
            .printer
            .warn(format!("Cannot start `{opener}` to open {url}: {e}")),
    }
}
