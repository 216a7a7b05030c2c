//! Who may see the pages and act on runs.
//!
//! - With a token (a `baton server --token`), every page needs it: as `Authorization: Bearer`
//!   (scripts) or as the `baton_token` cookie a browser gets from `/login` (the token in hex;
//!   HttpOnly, SameSite=Strict, so no other site's page sends it).
//! - Every POST from a browser must come from one of these pages: `Sec-Fetch-Site:
//!   same-origin`, or an `Origin` naming this host. A request carrying the right bearer token
//!   is not a browser's and needs no such check; one with neither is refused, so another site
//!   cannot make a visitor's browser terminate a run.
//!
//! The stylesheet, the script and the login page itself are open.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;

use super::pages::shell;

/// The cookie a browser keeps the token in.
const COOKIE: &str = "baton_token";

/// Checks a presented token (in constant time, by the server's own comparison).
pub type TokenCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The access rules of a [`super::router`]: open (same-origin POSTs only), or a token.
#[derive(Clone, Default)]
pub struct Access {
    token: Option<TokenCheck>,
}

impl Access {
    /// No token: anyone who reaches the address sees the pages; POSTs must be same-origin.
    pub fn open() -> Access {
        Access::default()
    }

    /// Pages and actions need the token `check` accepts.
    pub fn with_token(check: TokenCheck) -> Access {
        Access { token: Some(check) }
    }

    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        matches!((&self.token, presented), (Some(check), Some(p)) if check(p.trim()))
    }

    fn cookie_ok(&self, headers: &HeaderMap) -> bool {
        let Some(check) = &self.token else {
            return false;
        };
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE)
            .filter_map(|(_, value)| String::from_utf8(hex::decode(value).ok()?).ok())
            .any(|token| check(&token))
    }
}

/// Whether a browser sent this request from a page of this same host.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        _ => false,
    }
}

/// The middleware applying [`Access`] to every web route.
pub async fn guard(State(access): State<Access>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let open_path = path == "/login" || path.starts_with("/assets/");
    let headers = request.headers();
    let bearer = access.bearer_ok(headers);
    if request.method() == Method::POST && !bearer && !same_origin(headers) {
        return refusal(
            StatusCode::FORBIDDEN,
            "Actions must come from this server's own pages (a same-origin POST), or carry the \
             server's token as `Authorization: Bearer <token>`",
        );
    }
    if access.token.is_none() || open_path || bearer || access.cookie_ok(headers) {
        return next.run(request).await;
    }
    if request.method() == Method::GET {
        return Redirect::to("/login").into_response();
    }
    refusal(
        StatusCode::UNAUTHORIZED,
        "This server requires its token: sign in at /login",
    )
}

fn refusal(status: StatusCode, message: &str) -> Response {
    let body = shell("Refused", html! { p.error { (message) } });
    (status, body).into_response()
}

/// `GET /login` and `POST /login` (the token form), when the server has a token.
pub fn login_routes(access: Access) -> Router {
    Router::new()
        .route("/login", get(login_form).post(login))
        .with_state(access)
}

async fn login_form() -> maud::Markup {
    login_page(None)
}

fn login_page(error: Option<&str>) -> maud::Markup {
    shell(
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(error) = error { p.error { (error) } }
            form method="post" action="/login" {
                label { "Server token " input type="password" name="token" autofocus; }
                " " button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(access): State<Access>, Form(form): Form<LoginForm>) -> Response {
    let Some(check) = &access.token else {
        return Redirect::to("/").into_response();
    };
    if !check(&form.token) {
        let page = login_page(Some("That is not this server's token"));
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    // Hex, so a token with `;` or spaces still makes one cookie value.
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        hex::encode(&form.token)
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn same_origin_needs_fetch_metadata_or_a_matching_origin() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[
            ("sec-fetch-site", "same-site"),
            ("host", "a:1"),
            ("origin", "http://a:1")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://a:1")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://evil:1")
        ])));
        assert!(!same_origin(&headers(&[("host", "a:1")])));
    }

    #[test]
    fn the_cookie_and_the_bearer_must_hold_the_token() {
        let access = Access::with_token(Arc::new(|t| t == "s3cret"));
        // `s3cret` in hex.
        assert!(access.cookie_ok(&headers(&[("cookie", "x=1; baton_token=733363726574")])));
        assert!(!access.cookie_ok(&headers(&[("cookie", "baton_token=s3cret")])));
        assert!(!access.cookie_ok(&headers(&[("cookie", "baton_token=6e6f7065")])));
        assert!(access.bearer_ok(&headers(&[("authorization", "Bearer s3cret")])));
        assert!(!access.bearer_ok(&headers(&[("authorization", "Bearer s3cre")])));
        assert!(!Access::open().cookie_ok(&headers(&[("cookie", "baton_token=x")])));
    }
}
