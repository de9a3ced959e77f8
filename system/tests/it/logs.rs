//! The box office's logs land where the dashboards look: every field the Kibana saved searches
//! (`dashboards/kibana/*.ndjson`) show or query is one the real `boxoffice` binary writes.
//!
//! The test runs the binary as the deployed stack does (JSON logs on stdout, `RUST_LOG=info`,
//! an OTLP/HTTP endpoint, a separate `payment-provider` process), drives a buyer through it
//! (coupon, hold, book, a payment with the wrong amount, a payment, a cancellation, a payment
//! while the provider is down), and captures its JSON lines. The OTLP endpoint is a receiver in
//! this test that decodes the exported protobuf, so the `trace.id` of a log line can be checked
//! against the spans actually exported.

use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;
use serde_json::{json, Map, Value};

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    compose::free_port().expect("a free port")
}

/// A child process killed on drop.
pub(crate) struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_http(url: &str, child: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = reqwest::get(url).await {
            if res.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{url}: the process exited ({status})");
        }
        assert!(Instant::now() < deadline, "{url} did not answer in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A span as received over OTLP/HTTP: trace id (hex), name, kind (OTLP's enum: 2 server,
/// 4 producer, 5 consumer).
#[derive(Debug, Clone)]
pub(crate) struct ReceivedSpan {
    pub trace_id: String,
    pub name: String,
    pub kind: i32,
}

/// The spans received over OTLP/HTTP (`POST /v1/traces`, protobuf).
#[derive(Clone, Default)]
pub(crate) struct Received(Arc<Mutex<Vec<ReceivedSpan>>>);

impl Received {
    /// Every span received so far.
    pub(crate) fn spans(&self) -> Vec<ReceivedSpan> {
        self.0.lock().unwrap().clone()
    }
}

/// An OTLP/HTTP trace receiver on a free port: decodes each export with `opentelemetry-proto`.
pub(crate) async fn otlp_receiver() -> (String, Received) {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    let received = Received::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body)
                    .expect("the box office exports valid OTLP protobuf");
                let mut spans = sink.0.lock().unwrap();
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            spans.push(ReceivedSpan {
                                trace_id: span
                                    .trace_id
                                    .iter()
                                    .map(|b| format!("{b:02x}"))
                                    .collect(),
                                name: span.name,
                                kind: span.kind,
                            });
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

pub(crate) struct Client {
    pub http: reqwest::Client,
    pub base: String,
    /// A W3C `traceparent` sent with every request, when set.
    pub traceparent: Option<String>,
}

impl Client {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(tp) = &self.traceparent {
            req = req.header("traceparent", tp);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the box office answers");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let (s, b) = self
            .post(
                "/v1/auth/token",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["access_token"].as_str().unwrap().to_owned()
    }
}

pub(crate) const ADMIN: (&str, &str) = ("admin@boxoffice.test", "admin-password-for-logs");

/// The real `boxoffice` binary, configured as compose/docker-compose.yml configures an
/// instance (JSON logs on stdout, `RUST_LOG=info`, OTLP/HTTP to `otlp`), on an embedded
/// database in `dir`, with a `payment-provider` process; both killed on drop.
pub(crate) struct BoxOffice {
    pub app: Proc,
    pub payments: Option<Proc>,
    pub base: String,
    pub log_path: PathBuf,
}

impl BoxOffice {
    pub(crate) async fn start(dir: &Path, otlp: &str, extra_env: &[(&str, &str)]) -> BoxOffice {
        let payments_port = free_port();
        let mut payments = Proc(
            Command::new(env!("CARGO_BIN_EXE_payment-provider"))
                .args(["--listen", &format!("127.0.0.1:{payments_port}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("payment-provider starts"),
        );
        let port = free_port();
        let log_path = dir.join("boxoffice.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_boxoffice"));
        for (name, _) in std::env::vars() {
            if name.starts_with("BOXOFFICE_")
                || name.starts_with("OTEL_")
                || ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "RUST_LOG"]
                    .contains(&name.as_str())
            {
                command.env_remove(name);
            }
        }
        command
            .env("BOXOFFICE_LISTEN", format!("127.0.0.1:{port}"))
            .env("BOXOFFICE_DATA_DIR", dir.join("data"))
            .env(
                "BOXOFFICE_PAYMENTS_URL",
                format!("http://127.0.0.1:{payments_port}"),
            )
            .env("BOXOFFICE_PAYMENTS_TIMEOUT_MS", "1000")
            .env("BOXOFFICE_ADMIN_EMAIL", ADMIN.0)
            .env("BOXOFFICE_ADMIN_PASSWORD", ADMIN.1)
            .env(
                "BOXOFFICE_JWT_SECRET",
                "a-secret-for-the-logs-test-of-32-bytes",
            )
            .env("BOXOFFICE_ARGON2_MEMORY_KIB", "1024")
            .env("BOXOFFICE_ARGON2_ITERATIONS", "1")
            .env("BOXOFFICE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_SERVICE_NAME", "boxoffice")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut app = Proc(command.spawn().expect("boxoffice starts"));
        let base = format!("http://127.0.0.1:{port}");
        wait_http(
            &format!("http://127.0.0.1:{payments_port}/health"),
            &mut payments,
        )
        .await;
        wait_http(&format!("{base}/health/ready"), &mut app).await;
        BoxOffice {
            app,
            payments: Some(payments),
            base,
            log_path,
        }
    }

    pub(crate) fn client(&self, traceparent: Option<String>) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.base.clone(),
            traceparent,
        }
    }

    /// SIGTERM, as `docker stop` does: a graceful stop flushes the span exporter.
    pub(crate) async fn stop(&mut self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.app.0.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.app.0.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "boxoffice did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its JSON log lines.
    pub(crate) fn lines(&self) -> Vec<Map<String, Value>> {
        std::io::BufReader::new(std::fs::File::open(&self.log_path).unwrap())
            .lines()
            .map(Result::unwrap)
            .filter(|l| l.starts_with('{'))
            .map(|l| match serde_json::from_str::<Value>(&l) {
                Ok(Value::Object(m)) => m,
                other => panic!("not a JSON object line: {l} ({other:?})"),
            })
            .collect()
    }
}

/// An admin's venue of 10 seats, an event, a round at 5000 a seat: the round's id.
pub(crate) async fn a_round(c: &Client, admin: &str) -> i64 {
    let (s, venue) = c
        .post(
            "/v1/venues",
            Some(admin),
            json!({"name": "Hall", "sections": [{"name": "A", "rows": [{"label": "R0", "seats": 10, "tier": "std"}]}]}),
        )
        .await;
    assert_eq!(s, 201, "{venue}");
    let (s, event) = c
        .post(
            "/v1/events",
            Some(admin),
            json!({"title": "Logs", "venue_id": venue["id"], "category": "concert"}),
        )
        .await;
    assert_eq!(s, 201, "{event}");
    let (s, round) = c
        .post(
            &format!("/v1/events/{}/rounds", event["id"]),
            Some(admin),
            json!({"starts_at": "2030-01-01T19:00:00Z", "prices": {"std": 5000}}),
        )
        .await;
    assert_eq!(s, 201, "{round}");
    round["id"].as_i64().unwrap()
}

/// A buyer's session through the real binary; returns its JSON log lines and the spans the
/// receiver got.
async fn a_logged_session() -> (Vec<Map<String, Value>>, Vec<ReceivedSpan>) {
    let dir = tempfile::tempdir().unwrap();
    let (otlp, received) = otlp_receiver().await;
    let mut boxoffice = BoxOffice::start(dir.path(), &otlp, &[]).await;
    let c = boxoffice.client(None);
    let admin = c.token(ADMIN.0, ADMIN.1).await;
    let round = a_round(&c, &admin).await;
    let (s, _) = c
        .post(
            "/v1/coupons",
            Some(&admin),
            json!({"code": "LOGS10", "quota": 5, "discount_percent": 10}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, b) = c
        .post(
            "/v1/users",
            None,
            json!({"email": "buyer@example.com", "password": "password-123", "name": "b"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let buyer = c.token("buyer@example.com", "password-123").await;
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            "/v1/coupons/LOGS10/claims",
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(s, 201, "{b}");

    let mut bookings = Vec::new();
    for _ in 0..2 {
        let (s, hold) = c
            .post(
                &format!("/v1/rounds/{round}/holds"),
                Some(&buyer),
                json!({"quantity": 2}),
            )
            .await;
        assert_eq!(s, 201, "{hold}");
        let (s, booking) = c
            .post("/v1/bookings", Some(&buyer), json!({"hold_id": hold["id"]}))
            .await;
        assert_eq!(s, 201, "{booking}");
        bookings.push(booking);
    }
    let (id, amount) = (
        bookings[0]["id"].as_i64().unwrap(),
        bookings[0]["amount"].as_i64().unwrap(),
    );
    let pay = format!("/v1/bookings/{id}/pay");
    let (s, b) = c
        .post(&pay, Some(&buyer), json!({"amount": amount + 1}))
        .await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = c.post(&pay, Some(&buyer), json!({"amount": amount})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            &format!("/v1/bookings/{id}/cancel"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // The provider goes away: the next payment is a 503, which the box office logs as an error.
    drop(boxoffice.payments.take());
    let second = &bookings[1];
    let (s, b) = c
        .post(
            &format!("/v1/bookings/{}/pay", second["id"]),
            Some(&buyer),
            json!({"amount": second["amount"]}),
        )
        .await;
    assert_eq!(s, 503, "{b}");

    // Spans leave in batches (every 5 s by default): wait until every trace a log line names
    // has been exported, or 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exported: BTreeSet<String> = received.spans().into_iter().map(|s| s.trace_id).collect();
        let lines = boxoffice.lines();
        let all = lines
            .iter()
            .filter_map(|l| l.get("trace.id")?.as_str())
            .all(|t| exported.contains(t));
        if all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    boxoffice.stop().await;
    (boxoffice.lines(), received.spans())
}

/// A Kibana saved search: its columns, its sort fields and its KQL query.
#[derive(Debug, Clone)]
struct SavedSearch {
    id: String,
    columns: Vec<String>,
    sort: Vec<String>,
    query: String,
}

/// The saved searches and the data views' time fields of an ndjson export.
fn saved_objects(ndjson: &str) -> (Vec<SavedSearch>, Vec<String>) {
    let mut searches = Vec::new();
    let mut time_fields = Vec::new();
    for line in ndjson.lines().filter(|l| !l.trim().is_empty()) {
        let o: Value = serde_json::from_str(line).unwrap();
        let a = &o["attributes"];
        match o["type"].as_str().unwrap() {
            "index-pattern" => time_fields.push(a["timeFieldName"].as_str().unwrap().to_owned()),
            "search" => {
                let source: Value = serde_json::from_str(
                    a["kibanaSavedObjectMeta"]["searchSourceJSON"]
                        .as_str()
                        .unwrap(),
                )
                .unwrap();
                searches.push(SavedSearch {
                    id: o["id"].as_str().unwrap().to_owned(),
                    columns: a["columns"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c.as_str().unwrap().to_owned())
                        .collect(),
                    sort: a["sort"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| s[0].as_str().unwrap().to_owned())
                        .collect(),
                    query: source["query"]["query"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            _ => {}
        }
    }
    (searches, time_fields)
}

/// The one KQL shape the saved searches use: `field : "v"` or `field : ("a" or "b")`.
fn parse_kql(query: &str) -> Option<(String, Vec<String>)> {
    let (field, values) = query.split_once(':')?;
    let values = values.trim().trim_start_matches('(').trim_end_matches(')');
    let values = values
        .split(" or ")
        .map(|v| v.trim().trim_matches('"').to_owned())
        .collect();
    Some((field.trim().to_owned(), values))
}

fn is_set(line: &Map<String, Value>, field: &str) -> bool {
    line.get(field).is_some_and(|v| !v.is_null())
}

/// What is wrong with `searches` against the log `lines`: a query that matches no line, a
/// column or sort field that none of its matching lines carries, a time field missing from a
/// line. Empty when every field a saved search uses is emitted.
fn problems(
    searches: &[SavedSearch],
    time_fields: &[String],
    lines: &[Map<String, Value>],
) -> Vec<String> {
    let mut out = Vec::new();
    for field in time_fields {
        if let Some(l) = lines.iter().find(|l| !is_set(l, field)) {
            out.push(format!("data view time field {field} missing from {l:?}"));
        }
    }
    for s in searches {
        let Some((field, values)) = parse_kql(&s.query) else {
            out.push(format!("{}: cannot read the query `{}`", s.id, s.query));
            continue;
        };
        let matching: Vec<&Map<String, Value>> = lines
            .iter()
            .filter(|l| {
                l.get(&field)
                    .and_then(Value::as_str)
                    .is_some_and(|v| values.iter().any(|x| x == v))
            })
            .collect();
        if matching.is_empty() {
            out.push(format!("{}: no log line has {field} in {values:?}", s.id));
            continue;
        }
        for value in &values {
            // Levels are tracing's, written by the ECS layer (its unit tests pin each name); a
            // clean session logs no WARN, so a level need only be one the layer can write.
            let seen = if field == "log.level" {
                ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&value.as_str())
            } else {
                matching.iter().any(|l| l[&field] == value.as_str())
            };
            if !seen {
                out.push(format!("{}: no log line has {field} = {value}", s.id));
            }
        }
        for column in s.columns.iter().chain(&s.sort) {
            if !matching.iter().any(|l| is_set(l, column)) {
                out.push(format!("{}: no line it matches carries {column}", s.id));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_the_kibana_searches_use_is_in_the_box_offices_logs() {
    let ndjson =
        std::fs::read_to_string(repo().join("dashboards/kibana/boxoffice.ndjson")).unwrap();
    let (searches, time_fields) = saved_objects(&ndjson);
    assert!(searches.len() >= 5, "{searches:?}");
    assert_eq!(time_fields, vec!["@timestamp".to_owned()]);
    let (lines, spans) = a_logged_session().await;
    assert!(lines.len() >= 8, "too few log lines: {lines:?}");
    let found = problems(&searches, &time_fields, &lines);
    let emitted: BTreeSet<&String> = lines.iter().flat_map(|l| l.keys()).collect();
    assert!(
        found.is_empty(),
        "{}\nfields emitted: {emitted:?}",
        found.join("\n")
    );

    // A trace id in a log line is one of the exported traces.
    let traced: BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l.get("trace.id")?.as_str())
        .collect();
    assert!(!traced.is_empty(), "no line carries trace.id");
    let exported: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    let unknown: Vec<&&str> = traced.iter().filter(|t| !exported.contains(**t)).collect();
    assert!(
        unknown.is_empty(),
        "trace ids in the logs that no exported span has: {unknown:?}"
    );

    // The check is real: a renamed column, a value nothing logs, and a missing time field fail.
    let mut wrong = searches.clone();
    wrong[0].columns.push("trace_id".into());
    assert!(!problems(&wrong, &time_fields, &lines).is_empty());
    let mut wrong = searches.clone();
    let last = wrong.len() - 1;
    wrong[last].query = "event.dataset : \"boxoffice.bookings\"".into();
    assert!(!problems(&wrong, &time_fields, &lines).is_empty());
    assert!(!problems(&searches, &["timestamp".to_owned()], &lines).is_empty());
}

#[test]
fn the_kql_of_the_saved_searches_is_read_as_field_and_values() {
    assert_eq!(
        parse_kql("log.level : (\"ERROR\" or \"WARN\")"),
        Some(("log.level".into(), vec!["ERROR".into(), "WARN".into()]))
    );
    assert_eq!(
        parse_kql("event.dataset : \"boxoffice.booking\""),
        Some(("event.dataset".into(), vec!["boxoffice.booking".into()]))
    );
}
