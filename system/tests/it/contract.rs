//! The OpenAPI document is the box office's exact contract. Every response of the suite is
//! held to it as it is received (`support::contract`); these tests add the error paths of
//! every operation, walked from the document itself (no token, a bad token, a malformed or
//! wrongly typed body, a wrong content type, an oversized body, an unreadable path parameter,
//! an unknown id, a user on an admin route), and the documented bounds of every query
//! parameter, tried on both sides of each bound.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{json, Value};

use crate::support::contract::{self, operations};
use crate::support::{Res, TestApp};

/// One request of a probe: the token, the content type and the body to send.
struct Probe<'a> {
    token: Option<&'a str>,
    content_type: Option<&'a str>,
    body: Option<String>,
}

async fn send(app: &TestApp, method: &Method, uri: &str, probe: Probe<'_>) -> Res {
    let mut req = Request::builder().method(method.clone()).uri(uri);
    if let Some(t) = probe.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(c) = probe.content_type {
        req = req.header("content-type", c);
    }
    let req = req
        .body(probe.body.map_or_else(Body::empty, Body::from))
        .unwrap();
    app.send(req).await
}

/// A body each operation accepts, so that the unknown-id probe reaches the handler's lookup.
fn valid_body(route: &str) -> Value {
    match route {
        "/v1/events/{id}/rounds" => {
            json!({"starts_at": "2030-01-01T19:00:00Z", "prices": {"vip": 100}})
        }
        "/v1/rounds/{id}/holds" => json!({"quantity": 1}),
        "/v1/bookings/{id}/pay" => json!({"amount": 100}),
        _ => json!({}),
    }
}

fn params_in<'a>(op: &'a Value, place: &str) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .map(|ps| ps.iter().filter(|p| p["in"] == place).collect())
        .unwrap_or_default()
}

/// `route` with each path parameter replaced by `value(parameter)`.
fn fill(route: &str, op: &Value, value: impl Fn(&Value) -> String) -> String {
    let mut uri = route.to_owned();
    for p in params_in(op, "path") {
        let name = p["name"].as_str().unwrap();
        uri = uri.replace(&format!("{{{name}}}"), &value(p));
    }
    uri
}

#[tokio::test]
async fn every_operation_answers_its_error_paths_with_documented_statuses() {
    let app = TestApp::sqlite().await;
    let (_, user) = app.user("probe").await;
    let admin = app.admin.clone();
    let too_large = format!(
        "{{\"x\": \"{}\"}}",
        "a".repeat(app.state.config.max_body_bytes + 1)
    );
    // Every (operation, status) the probes produced; `send` already checked each is
    // documented with a body that matches its schema.
    let mut seen = BTreeSet::new();
    let mut record = |method: &Method, route: &str, res: &Res, want: u16, probe: &str| {
        assert_eq!(
            res.status.as_u16(),
            want,
            "{method} {route}, {probe}: {:?}",
            res.body
        );
        seen.insert((route.to_owned(), method.to_string(), want));
    };
    let mut probed = 0;
    for (method, route) in operations() {
        let op = contract::operation(&method, &route).unwrap();
        if !route.starts_with("/v1/") || (route == "/v1/me/notifications" && method == Method::GET)
        {
            // Health, metrics and the document take no input; the event stream is probed
            // for its token below (a 200 there never ends).
            continue;
        }
        probed += 1;
        let secured = op.get("security").is_some();
        let admin_only = op["responses"].get("403").is_some();
        let token = if admin_only { &admin } else { &user };
        let has_body = op.get("requestBody").is_some();
        let body_type = |body: Option<String>| Probe {
            token: Some(token),
            content_type: Some("application/json"),
            body,
        };
        let unknown = fill(&route, op, |p| {
            if p["schema"]["type"] == "integer" {
                "999999".into()
            } else {
                "NO-SUCH-CODE".into()
            }
        });
        if secured {
            let res = send(
                &app,
                &method,
                &unknown,
                Probe {
                    token: None,
                    ..body_type(None)
                },
            )
            .await;
            record(&method, &route, &res, 401, "no token");
            let res = send(
                &app,
                &method,
                &unknown,
                Probe {
                    token: Some("not.a.jwt"),
                    ..body_type(None)
                },
            )
            .await;
            record(&method, &route, &res, 401, "bad token");
        }
        if admin_only {
            let res = send(
                &app,
                &method,
                &unknown,
                Probe {
                    token: Some(&user),
                    ..body_type(Some(valid_body(&route).to_string()))
                },
            )
            .await;
            record(&method, &route, &res, 403, "a user on an admin route");
        }
        if has_body {
            let res = send(&app, &method, &unknown, body_type(Some("{,}".into()))).await;
            record(&method, &route, &res, 400, "malformed JSON");
            let res = send(
                &app,
                &method,
                &unknown,
                Probe {
                    content_type: Some("text/plain"),
                    ..body_type(Some(valid_body(&route).to_string()))
                },
            )
            .await;
            record(&method, &route, &res, 415, "text/plain body");
            let res = send(
                &app,
                &method,
                &unknown,
                Probe {
                    content_type: None,
                    ..body_type(Some(valid_body(&route).to_string()))
                },
            )
            .await;
            record(&method, &route, &res, 415, "no content type");
            let res = send(
                &app,
                &method,
                &unknown,
                body_type(Some(json!({"no_such_field": 1}).to_string())),
            )
            .await;
            record(&method, &route, &res, 422, "unknown field");
            let res = send(&app, &method, &unknown, body_type(Some(too_large.clone()))).await;
            record(&method, &route, &res, 413, "body over the limit");
        }
        let body = has_body.then(|| valid_body(&route).to_string());
        if !params_in(op, "path").is_empty() {
            let bad = fill(&route, op, |_| "not%20an%20id!".into());
            let res = send(&app, &method, &bad, body_type(body.clone())).await;
            record(&method, &route, &res, 400, "unreadable path parameter");
            let res = send(&app, &method, &unknown, body_type(body.clone())).await;
            record(&method, &route, &res, 404, "unknown id");
        }
        if !params_in(op, "query").is_empty() {
            let res = send(
                &app,
                &method,
                &format!("{route}?no_such_parameter=1"),
                body_type(body.clone()),
            )
            .await;
            record(&method, &route, &res, 400, "unknown query parameter");
        }
    }
    let stream = "/v1/me/notifications";
    let res = send(
        &app,
        &Method::GET,
        stream,
        Probe {
            token: None,
            content_type: None,
            body: None,
        },
    )
    .await;
    record(&Method::GET, stream, &res, 401, "no token");
    assert!(probed >= 20, "only {probed} operations probed");
    // Each probe family reached the operations it applies to.
    for (status, at_least) in [
        (400, 10),
        (401, 15),
        (403, 8),
        (404, 10),
        (413, 8),
        (415, 8),
        (422, 8),
    ] {
        let n = seen.iter().filter(|(_, _, s)| *s == status).count();
        assert!(
            n >= at_least,
            "{status} produced by only {n} operations: {seen:?}"
        );
    }
}

/// For every integer query parameter with a documented minimum and maximum, the values on
/// both sides of each bound (and a few that are no number at all), and for every string
/// parameter with a documented maximum length, texts on both sides of it: the server
/// accepts exactly what the document allows and rejects the rest with a documented 400.
#[tokio::test]
async fn query_parameters_are_accepted_exactly_within_their_documented_bounds() {
    let app = TestApp::sqlite().await;
    let mut tried = 0;
    for (method, route) in operations() {
        let op = contract::operation(&method, &route).unwrap();
        for p in params_in(op, "query") {
            let name = p["name"].as_str().unwrap();
            let schema = &p["schema"];
            let mut cases: Vec<(String, bool)> = Vec::new();
            let bound = |key: &str| schema[key].as_f64().map(|v| v as i64);
            if let (Some(min), Some(max)) = (bound("minimum"), bound("maximum")) {
                for v in [
                    min - 1,
                    min,
                    min + 1,
                    max - 1,
                    max,
                    max + 1,
                    i64::MIN,
                    i64::MAX,
                ] {
                    cases.push((v.to_string(), (min..=max).contains(&v)));
                }
                for junk in ["", "abc", "1.5", "1e2", "99999999999999999999999"] {
                    cases.push((junk.to_owned(), false));
                }
            } else if let Some(max) = schema["maxLength"].as_u64() {
                let max = max as usize;
                for n in [0, 1, max - 1, max, max + 1, 5 * max] {
                    // Multi-byte characters: the bound counts characters, not bytes.
                    cases.push(("é".repeat(n), n <= max));
                }
            } else {
                panic!("{method} {route}: query parameter {name} documents no bounds: {schema}");
            }
            for (value, allowed) in cases {
                tried += 1;
                let encoded: String = url_encode(&value);
                let res = app
                    .call(
                        method.clone(),
                        &format!("{route}?{name}={encoded}"),
                        None,
                        None,
                    )
                    .await;
                if allowed {
                    assert_eq!(res.status.as_u16(), 200, "{name}={value:?}: {:?}", res.body);
                } else {
                    assert_eq!(
                        res.status.as_u16(),
                        400,
                        "{name}={value:?} accepted: {:?}",
                        res.body
                    );
                }
            }
        }
    }
    assert!(
        tried >= 30,
        "only {tried} parameter values tried: {}",
        contract::document()["paths"]["/v1/events"]
    );
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every error response the document names carries the one JSON error body.
#[test]
fn every_documented_error_response_is_the_json_error_body() {
    let mut errors = 0;
    for (method, route) in operations() {
        let op = contract::operation(&method, &route).unwrap();
        for (status, response) in op["responses"].as_object().unwrap() {
            if status.as_str() < "400" || route == "/health/ready" {
                continue;
            }
            errors += 1;
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {route} {status}"
            );
            assert!(
                !response["description"].as_str().unwrap_or("").is_empty(),
                "{method} {route} {status} has no description"
            );
        }
    }
    let sample = json!({"error": {"code": "not_found", "message": "round not found"}});
    assert!(
        contract::schema_errors(&json!({"$ref": "#/components/schemas/ErrorBody"}), &sample)
            .is_empty()
    );
    assert!(!contract::schema_errors(
        &json!({"$ref": "#/components/schemas/ErrorBody"}),
        &json!({"error": "x"})
    )
    .is_empty());
    assert!(errors > 100, "only {errors} error responses documented");
}
