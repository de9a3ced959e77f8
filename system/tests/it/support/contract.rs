//! The API contract as the test suite sees it. Every [`super::TestApp`] router carries
//! [`record_route`], which tags each response with the route template it answered; every
//! response read through `TestApp::send` is then checked against the OpenAPI document: its
//! status must be documented for that operation, and its JSON body must match the schema the
//! document gives for that status (the error body for every 4xx and 5xx).
//!
//! So each status any test of the suite provokes is a status the document promises, and a
//! handler that starts answering a new status fails the suite until the document says so.
//! With `BOXOFFICE_CONTRACT_LOG=<file>` a violation is appended to the file instead of failing
//! the test, which is how the gap of a document is measured in one pass;
//! `BOXOFFICE_CONTRACT_SEEN=<file>` appends every (method, route, status) the suite produced.

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};

/// The route template (`/v1/holds/{id}`) that answered a response, set by [`record_route`].
#[derive(Debug, Clone)]
pub struct Route(pub String);

/// Middleware: copies the matched route template of the request onto its response.
/// Unmatched requests (the router's fallback) carry none: they are no operation's.
pub async fn record_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let mut res = next.run(req).await;
    if let Some(route) = route {
        res.extensions_mut().insert(Route(route));
    }
    res
}

/// The served OpenAPI document, as JSON.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_value(boxoffice::api::openapi()).expect("the document serializes")
    })
}

/// The operation `method route` of the document, if documented.
pub fn operation(method: &Method, route: &str) -> Option<&'static Value> {
    document()["paths"]
        .get(route)?
        .get(method.as_str().to_lowercase())
}

/// Every documented (method, route template) pair, sorted.
pub fn operations() -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, item) in document()["paths"].as_object().expect("paths") {
        for m in item.as_object().expect("path item").keys() {
            if let Ok(method) = Method::from_bytes(m.to_uppercase().as_bytes()) {
                out.push((method, path.clone()));
            }
        }
    }
    out.sort_by(|a, b| (&a.1, a.0.as_str()).cmp(&(&b.1, b.0.as_str())));
    out
}

/// Why a response breaks the contract of `method route`, or None when it keeps it.
pub fn violation(method: &Method, route: &str, status: StatusCode, body: &Value) -> Option<String> {
    let Some(op) = operation(method, route) else {
        // A method the route does not serve: no operation, and the router's JSON 405.
        if status == StatusCode::METHOD_NOT_ALLOWED && body["error"]["code"] == "method_not_allowed"
        {
            return None;
        }
        return Some(format!("{method} {route} answered but is not documented"));
    };
    let Some(response) = op["responses"].get(status.as_str()) else {
        return Some(format!(
            "{method} {route} answered {status}, which it does not document"
        ));
    };
    let schema = response
        .get("content")
        .and_then(|c| c.get("application/json"))
        .and_then(|c| c.get("schema"));
    match schema {
        Some(schema) => {
            let errors = schema_errors(schema, body);
            (!errors.is_empty()).then(|| {
                format!(
                    "{method} {route} {status}: body {body} does not match its schema: {errors:?}"
                )
            })
        }
        None if status.as_u16() >= 400 => Some(format!(
            "{method} {route} documents {status} without the JSON error body"
        )),
        None => None,
    }
}

/// Where `body` breaks `schema` (a schema of the document, `$ref`s into its components).
pub fn schema_errors(schema: &Value, body: &Value) -> Vec<String> {
    let mut root = schema.clone();
    if let Some(obj) = root.as_object_mut() {
        obj.insert("components".into(), document()["components"].clone());
    } else {
        root = json!({"allOf": [schema], "components": document()["components"]});
    }
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"));
    validator.iter_errors(body).map(|e| e.to_string()).collect()
}

/// Checks a response a test received: panics on a violation, or logs it to the file named
/// by `BOXOFFICE_CONTRACT_LOG`.
#[track_caller]
pub fn check(method: &Method, route: &str, status: StatusCode, body: &Value) {
    if let Some(path) = std::env::var_os("BOXOFFICE_CONTRACT_SEEN") {
        append(&path, &format!("{method} {route} {}", status.as_u16()));
    }
    let Some(problem) = violation(method, route, status, body) else {
        return;
    };
    match std::env::var_os("BOXOFFICE_CONTRACT_LOG") {
        Some(path) => append(
            &path,
            &format!("{method} {route} {}\t{problem}", status.as_u16()),
        ),
        None => panic!("API contract broken: {problem}"),
    }
}

fn append(path: &std::ffi::OsStr, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("contract log opens");
    writeln!(f, "{line}").expect("log written");
}
