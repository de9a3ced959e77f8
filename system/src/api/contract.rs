//! The error responses every operation shares, added to the OpenAPI document from the shape
//! of each operation, so that the document lists every status the server can answer.
//!
//! A handler's `#[utoipa::path]` documents what its own logic answers (404, 409, 402…). What
//! the extractors and the shared infrastructure answer follows from the operation's shape and
//! is written down once, here: a JSON body can be malformed (400), too large (413), of the
//! wrong content type (415) or of the wrong shape (422); a bearer token can be missing or bad
//! (401); a path or query parameter can be unreadable or out of range (400); a write can lose
//! to a busy database (409 `contention`); and every `/v1` operation but the event stream reads
//! the database, which can be unreachable (503), and new work can be refused past capacity
//! (503 `overloaded`, see [`super::admission`]). Each is the JSON
//! [`ErrorBody`](crate::error::ErrorBody).

use axum::http::Method;
use utoipa::openapi::path::{Operation, ParameterIn};

use super::admission;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Adds the shared error responses to every operation of `doc`.
pub fn complete(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::OPTIONS, &mut item.options),
            (Method::HEAD, &mut item.head),
            (Method::PATCH, &mut item.patch),
            (Method::TRACE, &mut item.trace),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            for (status, why) in shared_errors(path, method, op) {
                add_error(op, status, why);
            }
            for (status, response) in op.responses.responses.iter_mut() {
                if let RefOr::T(response) = response {
                    if response.description.is_empty() {
                        response.description = default_description(status).to_owned();
                    }
                }
            }
        }
    }
}

/// Operations that never touch the database: the event stream checks its token (a JWT,
/// verified in memory) and then only listens; the token route reads but never writes.
const NO_DATABASE: [&str; 1] = ["/v1/me/notifications"];
const READ_ONLY: [&str; 1] = ["/v1/auth/token"];

/// The statuses the extractors and the infrastructure can answer for `op` at `path`
/// with `method`.
fn shared_errors(path: &str, method: Method, op: &Operation) -> Vec<(&'static str, &'static str)> {
    let writes = !matches!(
        method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    let mut out = Vec::new();
    if op.request_body.is_some() {
        out.push(("400", "`malformed_json`: the body is not JSON"));
        out.push((
            "413",
            "`body_too_large`: the body is larger than the service accepts",
        ));
        out.push((
            "415",
            "`unsupported_media_type`: the body is not sent as `Content-Type: application/json`",
        ));
        out.push((
            "422",
            "`invalid_body`: a field is missing, unknown or of the wrong type",
        ));
    }
    let params = op.parameters.as_deref().unwrap_or_default();
    if params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path))
    {
        out.push(("400", "`invalid_path`: a path parameter is malformed"));
    }
    if params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query))
    {
        out.push((
            "400",
            "`invalid_query`: an unknown or malformed query parameter",
        ));
    }
    let bearer = op
        .security
        .iter()
        .flatten()
        .any(|s| serde_json::to_value(s).is_ok_and(|v| v.get("bearer").is_some()));
    if bearer {
        out.push((
            "401",
            "`unauthorized`: no bearer token, or a malformed, invalid or expired one",
        ));
    }
    if path.starts_with("/v1/") && writes && !READ_ONLY.contains(&path) {
        out.push((
            "409",
            "`contention`: the database was too busy to commit; retry the request",
        ));
    }
    if path.starts_with("/v1/") && !NO_DATABASE.contains(&path) {
        out.push((
            "503",
            "`database_unavailable`: the database cannot be reached; the request was not started and changed nothing; retry after `Retry-After` seconds",
        ));
        out.push((
            "503",
            "`database_interrupted`: the database failed while the request ran; a write may or may not have taken effect, so read before sending it again",
        ));
    }
    // New work, which admission may refuse past capacity (a purchase's next step waits).
    if admission::classify(&method, path) == admission::Class::Entry {
        out.push((
            "503",
            "`overloaded`: the box office is at capacity and did not start the request; retry after `Retry-After` seconds",
        ));
    }
    out
}

/// Documents `status` on `op` with the error body, or adds `why` to the response that is
/// already there.
fn add_error(op: &mut Operation, status: &str, why: &str) {
    let responses = &mut op.responses.responses;
    match responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            if !response.description.contains(why) {
                response.description = if response.description.is_empty() {
                    why.to_owned()
                } else {
                    format!("{}; {why}", response.description)
                };
            }
            if response.content.is_empty() {
                response
                    .content
                    .insert("application/json".to_owned(), error_content());
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            responses.insert(
                status.to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(why)
                        .content("application/json", error_content())
                        .build(),
                ),
            );
        }
    }
}

/// What a status means when a handler documents it without saying.
fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "204" => "No content",
        "400" => "The request could not be read",
        "401" => "`unauthorized`: no valid bearer token",
        "402" => "`payment_declined`: the payment provider declined the charge",
        "403" => "`forbidden`: the route needs the admin role",
        "404" => "`not_found`: no such resource, or not the caller's",
        "409" => "The request conflicts with the current state",
        "413" => "`body_too_large`",
        "415" => "`unsupported_media_type`",
        "422" => "A value is out of its allowed range or format (`invalid_…`)",
        "503" => "A dependency is unavailable; retry later",
        _ => "See the error code",
    }
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build()
}
