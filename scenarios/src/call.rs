//! One request of a virtual user: sent through Goose (so Goose's own metrics see it), timed,
//! classified ok / rejected / error / unknown, and turned into a history [`Op`].
//!
//! In an open-model run every request of an arrival's journey carries an intended start:
//! when it would have been sent had the arrival begun when it was due. An arrival that began
//! late (every user was busy, or the service stalled them all) shifts its whole journey, so
//! the book and pay after a late hold are corrected by the same delay as the hold
//! (coordinated omission, as wrk2 corrects each request by its schedule's lag).

use std::sync::atomic::Ordering;

use goose::prelude::*;
use serde_json::Value;

use crate::history::{classify, Op, OpKind, Outcome, Recorder};

/// What the lab keeps per virtual user (Goose's session data).
#[derive(Debug, Clone, Copy, Default)]
pub struct Session {
    /// Whether the user has sent a request yet (counted once in `users_active`).
    pub active: bool,
    /// The current open-model arrival's lag: how long after it was due it began, ms.
    /// `None` in a closed-model run.
    pub lag_ms: Option<f64>,
}

/// Notes that `user`'s current arrival, due at `due_ms`, began at `began_ms` (history ms):
/// its requests are corrected by the lag.
pub fn begin_arrival(user: &mut GooseUser, due_ms: f64, began_ms: f64) {
    let lag_ms = Some((began_ms - due_ms).max(0.0));
    match user.get_session_data_mut::<Session>() {
        Some(s) => s.lag_ms = lag_ms,
        None => user.set_session_data(Session {
            active: false,
            lag_ms,
        }),
    }
}

/// What to send.
#[derive(Debug)]
pub struct Request<'a> {
    /// Operation (also the Goose request name).
    pub op: OpKind,
    /// Method.
    pub method: GooseMethod,
    /// Path under the base URL.
    pub path: &'a str,
    /// Bearer token.
    pub token: Option<&'a str>,
    /// JSON body.
    pub body: Option<Value>,
    /// `Idempotency-Key` header.
    pub key: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// A `GET`.
    pub fn get(op: OpKind, path: &'a str, token: Option<&'a str>) -> Self {
        Self {
            op,
            method: GooseMethod::Get,
            path,
            token,
            body: None,
            key: None,
        }
    }

    /// A `POST` with a JSON body.
    pub fn post(op: OpKind, path: &'a str, token: &'a str, body: Value) -> Self {
        Self {
            op,
            method: GooseMethod::Post,
            path,
            token: Some(token),
            body: Some(body),
            key: None,
        }
    }
}

/// What came back.
#[derive(Debug)]
pub struct Response {
    /// Classified outcome.
    pub outcome: Outcome,
    /// HTTP status.
    pub status: Option<u16>,
    /// JSON body (`Null` if none or not JSON).
    pub body: Value,
    /// `error.code`, or the transport error kind.
    pub error: Option<String>,
    /// The `Retry-After` header in seconds, when the answer had one.
    pub retry_after_s: Option<u64>,
    invoke_ms: f64,
    complete_ms: f64,
    intended_ms: Option<f64>,
    op: OpKind,
}

impl Response {
    /// Whether the operation definitely happened.
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// Whether the box office did not start the request (refused past capacity, or its
    /// database unreachable): sending it again is safe.
    pub fn not_started(&self) -> bool {
        crate::history::not_started(self.status, self.error.as_deref())
    }

    /// An integer field of the body.
    pub fn i64(&self, field: &str) -> Option<i64> {
        self.body.get(field).and_then(Value::as_i64)
    }

    /// An array-of-integers field of the body.
    pub fn ids(&self, field: &str) -> Vec<i64> {
        self.body
            .get(field)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default()
    }

    /// The history record of this call for `user`; the caller adds the ids.
    pub fn op(&self, user: i64) -> Op {
        let mut op = Op::new(self.op, user, self.outcome);
        op.invoke_ms = self.invoke_ms;
        op.complete_ms = self.complete_ms;
        op.intended_ms = self.intended_ms;
        op.status = self.status;
        op.error.clone_from(&self.error);
        op
    }
}

/// The `Retry-After` header in seconds, when there is one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// How long to wait before sending a refused request again: its `Retry-After` (1 s when
/// absent, at most 10 s), jittered by ±50 % so that a crowd does not come back in one wave.
pub fn refusal_delay(retry_after_s: Option<u64>, rng: &mut impl rand::Rng) -> std::time::Duration {
    let after = retry_after_s.unwrap_or(1).clamp(1, 10) as f64;
    std::time::Duration::from_secs_f64(after * rng.gen_range(0.5..1.5))
}

fn transport_error(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    }
}

/// Sends `req` as Goose user `user`, timing it on the history clock.
pub async fn send(
    user: &mut GooseUser,
    recorder: &Recorder,
    req: Request<'_>,
) -> Result<Response, Box<TransactionError>> {
    let mut builder = user.get_request_builder(&req.method, req.path)?;
    if let Some(t) = req.token {
        builder = builder.bearer_auth(t);
    }
    if let Some(k) = req.key {
        builder = builder.header("Idempotency-Key", k);
    }
    if let Some(b) = &req.body {
        builder = builder.json(b);
    }
    let goose_request = GooseRequest::builder()
        .method(req.method)
        .path(req.path)
        .name(req.op.as_str())
        .set_request_builder(builder)
        .build();
    let session = *user
        .get_session_data::<Session>()
        .unwrap_or(&Session::default());
    if !session.active {
        recorder
            .counters()
            .users_active
            .fetch_add(1, Ordering::Relaxed);
        user.set_session_data(Session {
            active: true,
            ..session
        });
    }
    let invoke_ms = recorder.now_ms();
    let intended_ms = session.lag_ms.map(|lag| invoke_ms - lag);
    // Held until the body is read; waiting for it counts in the latency.
    let _connection = recorder.connection().await;
    let goose = user.request(goose_request).await?;
    let mut retry_after_s = None;
    let (status, body, error) = match goose.response {
        Ok(res) => {
            let status = res.status().as_u16();
            retry_after_s = retry_after(res.headers());
            match res.bytes().await {
                Ok(bytes) => {
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let code = body
                        .pointer("/error/code")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    (Some(status), body, code)
                }
                // Headers arrived, the body did not: the effect is unknown whatever the status said.
                Err(e) => (None, Value::Null, Some(transport_error(&e).to_owned())),
            }
        }
        Err(e) => (None, Value::Null, Some(transport_error(&e).to_owned())),
    };
    let complete_ms = recorder.now_ms();
    Ok(Response {
        outcome: classify(req.op, status, error.as_deref()),
        status,
        error: error.or_else(|| status.filter(|s| *s >= 400).map(|s| s.to_string())),
        body,
        retry_after_s,
        invoke_ms,
        complete_ms,
        intended_ms,
        op: req.op,
    })
}
