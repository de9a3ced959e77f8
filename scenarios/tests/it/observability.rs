//! Dashboards and alerts are code, checked against live data.
//!
//! A box office runs in this process on a real PostgreSQL, with Redis behind the chaos fault
//! proxy and Kafka on librdkafka's mock cluster; this test drives traffic through HTTP (holds,
//! bookings, payments, a cancellation, coupon claims, an SSE stream) as a small load runner
//! that exports the runner's `lab_*` metrics, injects one fault (Redis latency), and a real
//! Prometheus (1 s scrapes, `alerts/rules/*.yml` loaded, a real Alertmanager attached) scrapes
//! the jobs `boxoffice`, `scenario`, `chaos` and `prometheus`. Then:
//!
//! - every panel query of `dashboards/grafana/*.json` returns at least one series
//!   (`$__rate_interval` is read as `1m`, `$instance` as `.*`);
//! - every recording rule's expression returns at least one series;
//! - every alert's *underlying selector* returns at least one series. The rule: an alert
//!   expression is evaluated with each comparison against a constant removed (`x > 0` → `x`,
//!   `a > (14.4 * 0.001) and b > (14.4 * 0.001)` → `a and b`), because a healthy system
//!   legitimately makes the alert itself empty, while a typo in a metric or label name would
//!   make the selector empty too — and that is what this test catches;
//! - the families Prometheus scraped from the box office are exactly those of
//!   `system/METRICS.md`;
//! - every dashboard's fault annotation (`lab_fault_active`), evaluated as Grafana does,
//!   draws exactly one band, over the injected fault's window.
//!
//! Separate tests run `promtool check rules`, `promtool test rules`, `amtool check-config` and
//! `amtool config routes test`; each fails (never skips) when the tool is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compose::{LocalAlertmanager, LocalPrometheus, PrometheusOptions, ScrapeTarget};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *.{ext} in {dir}");
    out
}

/// Runs a tool that must be installed (the CI script installs it); panics with how to get it.
fn run_tool(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`{tool}` could not run ({e}): install it with \
                 `apt-get install -y prometheus prometheus-alertmanager`"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
    text
}

fn paths(p: &[PathBuf]) -> Vec<String> {
    p.iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn promtool_accepts_every_rule_file() {
    let rules = paths(&files("alerts/rules", "yml"));
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    let out = run_tool("promtool", &args);
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn promtool_unit_tests_of_the_alerts_pass_and_cover_every_alert() {
    let tests = paths(&files("alerts/tests", "yml"));
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    run_tool("promtool", &args);
    let tested: String = tests
        .iter()
        .map(|t| std::fs::read_to_string(t).unwrap())
        .collect();
    for alert in rule_names("alert") {
        assert!(
            tested.contains(&format!("alertname: {alert}\n")),
            "alert {alert} has no promtool unit test in alerts/tests/"
        );
    }
}

#[test]
fn amtool_accepts_the_alertmanager_config_and_routes_by_severity() {
    run_tool("amtool", &["check-config", "alerts/alertmanager.yml"]);
    for (labels, receiver) in [
        ("severity=critical", "critical"),
        ("severity=warning", "warning"),
        ("severity=info", "default"),
    ] {
        let out = run_tool(
            "amtool",
            &[
                "config",
                "routes",
                "test",
                "--config.file=alerts/alertmanager.yml",
                "alertname=BoxOfficeOversoldSeats",
                labels,
            ],
        );
        assert_eq!(
            out.lines().next().unwrap_or_default().trim(),
            receiver,
            "{labels}"
        );
    }
}

/// Names of the alerts (`kind = "alert"`) or recording rules (`"record"`) in alerts/rules/.
fn rule_names(kind: &str) -> Vec<String> {
    let prefix = format!("- {kind}: ");
    files("alerts/rules", "yml")
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter_map(|l| l.trim().strip_prefix(&prefix).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Removes every comparison against a constant (`> 0`, `== 0`, `> bool 1`,
/// `> (14.4 * 0.001)`) outside label matchers, leaving the selectors the alert is built on.
fn strip_comparisons(expr: &str) -> String {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::new();
    let (mut i, mut braces, mut quote) = (0, 0, None::<char>);
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' => braces += 1,
            '}' => braces -= 1,
            _ => {}
        }
        let next = chars.get(i + 1).copied();
        let op_len = match (c, next) {
            ('=', Some('=')) | ('!', Some('=')) | ('>', Some('=')) | ('<', Some('=')) => 2,
            ('>', _) | ('<', _) => 1,
            _ => 0,
        };
        if braces == 0 && op_len > 0 {
            // Read the right-hand side: optional `bool`, then a constant expression.
            let mut j = i + op_len;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let rest: String = chars[j..].iter().collect();
            if rest.starts_with("bool ") {
                j += 5;
            }
            let (mut depth, start) = (0i32, j);
            while j < chars.len() {
                let d = chars[j];
                let constant = d.is_ascii_digit() || " \t\n.eE+-*/".contains(d);
                if d == '(' {
                    depth += 1;
                } else if d == ')' {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                } else if !constant {
                    break;
                }
                j += 1;
            }
            let rhs: String = chars[start..j].iter().collect();
            if rhs.chars().any(|d| d.is_ascii_digit()) && depth == 0 {
                out.push(' ');
                i = j;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[test]
fn comparisons_against_constants_are_stripped_and_nothing_else() {
    assert_eq!(
        strip_comparisons(r#"up{job="boxoffice"} == 0"#).trim(),
        r#"up{job="boxoffice"}"#
    );
    let s = strip_comparisons(
        "(a > (14.4 * 0.001)\nand\nb > (14.4 * 0.001)) or (c > 6 * 0.001 and d > 0.006)",
    );
    assert_eq!(
        s.split_whitespace().collect::<Vec<_>>().join(" "),
        "(a and b ) or (c and d )"
    );
    assert_eq!(
        strip_comparisons(r#"max(x{a!="1",b=~"x>2"}) > bool 0"#).trim(),
        r#"max(x{a!="1",b=~"x>2"})"#
    );
    assert_eq!(strip_comparisons("a > b").trim(), "a > b");
}

/// The scenario runner's own live metrics (job `scenario`): the real
/// [`scenarios::live::LiveMetrics`], fed by this test's little load runner.
struct LabMetrics {
    live: Arc<scenarios::live::LiveMetrics>,
    counters: Arc<scenarios::history::Counters>,
}

impl LabMetrics {
    fn new() -> Self {
        let counters = Arc::new(scenarios::history::Counters::default());
        let live = Arc::new(scenarios::live::LiveMetrics::new());
        live.attach(Arc::clone(&counters));
        LabMetrics { live, counters }
    }
}

/// A client of the box office that records each call as a load-runner transaction.
struct Runner {
    http: reqwest::Client,
    base: String,
    lab: Arc<LabMetrics>,
}

impl Runner {
    async fn call(
        &self,
        transaction: &str,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let began = Instant::now();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the box office answers");
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let outcome =
            scenarios::history::classify(scenarios::history::OpKind::Hold, Some(status), None);
        self.lab
            .live
            .observe_named(transaction, began.elapsed().as_secs_f64(), outcome);
        (status, body)
    }

    async fn post(&self, tx: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(tx, reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn get(&self, tx: &str, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(tx, reqwest::Method::GET, path, token, None).await
    }

    async fn token(&self, email: &str, password: &str) -> String {
        let (s, b) = self
            .post(
                "login",
                "/v1/auth/token",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["access_token"].as_str().unwrap().to_owned()
    }
}

const ADMIN: (&str, &str) = ("admin@example.com", "admin-password");

/// Drives a little of everything: returns an open SSE response (kept open by the caller).
/// The traffic of the run: returns the open notification stream and the round it sold from.
async fn drive_traffic(r: &Runner) -> (reqwest::Response, i64) {
    let admin = r.token(ADMIN.0, ADMIN.1).await;
    let (s, venue) = r
        .post(
            "admin",
            "/v1/venues",
            Some(&admin),
            json!({"name": "Hall", "sections": [{"name": "A", "rows": [
                {"label": "R0", "seats": 10, "tier": "vip"}, {"label": "R1", "seats": 10, "tier": "std"}]}]}),
        )
        .await;
    assert_eq!(s, 201, "{venue}");
    let (s, event) = r
        .post(
            "admin",
            "/v1/events",
            Some(&admin),
            json!({"title": "Observability Live", "venue_id": venue["id"], "category": "concert"}),
        )
        .await;
    assert_eq!(s, 201, "{event}");
    let (s, round) = r
        .post(
            "admin",
            &format!("/v1/events/{}/rounds", event["id"]),
            Some(&admin),
            json!({"starts_at": "2030-01-01T19:00:00Z", "prices": {"vip": 10000, "std": 5000}}),
        )
        .await;
    assert_eq!(s, 201, "{round}");
    let round = round["id"].as_i64().unwrap();
    let (s, _) = r
        .post(
            "admin",
            "/v1/coupons",
            Some(&admin),
            json!({"code": "LIVE10", "quota": 2, "discount_percent": 10}),
        )
        .await;
    assert_eq!(s, 201);
    let mut tokens = Vec::new();
    for i in 0..3 {
        let email = format!("buyer{i}@example.com");
        let (s, b) = r
            .post(
                "register",
                "/v1/users",
                None,
                json!({"email": email, "password": "password-123", "name": format!("b{i}")}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        tokens.push(r.token(&email, "password-123").await);
    }
    let sse = r
        .http
        .get(format!("{}/v1/me/notifications", r.base))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    for (i, t) in tokens.iter().enumerate() {
        r.lab
            .counters
            .users_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for _ in 0..3 {
            let (s, _) = r
                .get(
                    "availability",
                    &format!("/v1/rounds/{round}/availability"),
                    None,
                )
                .await;
            assert_eq!(s, 200);
        }
        let coupon = r
            .call(
                "coupon",
                reqwest::Method::POST,
                "/v1/coupons/LIVE10/claims",
                Some(t),
                None,
            )
            .await;
        assert!(matches!(coupon.0, 201 | 409), "{coupon:?}");
        let (s, hold) = r
            .post(
                "hold",
                &format!("/v1/rounds/{round}/holds"),
                Some(t),
                json!({"quantity": 2}),
            )
            .await;
        assert_eq!(s, 201, "{hold}");
        let (s, booking) = r
            .post(
                "book",
                "/v1/bookings",
                Some(t),
                json!({"hold_id": hold["id"]}),
            )
            .await;
        assert_eq!(s, 201, "{booking}");
        let id = booking["id"].as_i64().unwrap();
        let (s, paid) = r
            .post(
                "pay",
                &format!("/v1/bookings/{id}/pay"),
                Some(t),
                json!({"amount": booking["amount"]}),
            )
            .await;
        assert_eq!(s, 200, "{paid}");
        if i == 2 {
            let (s, _) = r
                .call(
                    "cancel",
                    reqwest::Method::POST,
                    &format!("/v1/bookings/{id}/cancel"),
                    Some(t),
                    None,
                )
                .await;
            assert_eq!(s, 200);
        }
    }
    // A few client errors: an unknown route and a seat that does not exist.
    r.get("browse", "/v1/nothing-here", None).await;
    r.post(
        "hold",
        &format!("/v1/rounds/{round}/holds"),
        Some(&tokens[1]),
        json!({"seat_ids": [999_999]}),
    )
    .await;
    (sse, round)
}

/// Every `expr` of a dashboard (panels, rows' panels), with its panel title.
fn panel_queries(dashboard: &Value, out: &mut Vec<(String, String)>) {
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((p["title"].as_str().unwrap_or("?").to_owned(), e.to_owned()));
            }
        }
        panel_queries(p, out);
    }
}

fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$instance", ".*")
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The Prometheus annotation of a dashboard that marks the lab's faults (`lab_fault_active`).
fn fault_annotation(dashboard: &Value) -> Option<Value> {
    dashboard["annotations"]["list"]
        .as_array()?
        .iter()
        .find(|a| {
            a["datasource"]["uid"] == "prometheus"
                && a["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("lab_fault_active"))
        })
        .cloned()
}

/// The panels of a dashboard that show latency or errors (their queries read a duration
/// histogram, 5xx responses, or failed/error outcomes), by title.
fn latency_or_error_panels(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    panel_queries(dashboard, &mut queries);
    let mut titles: Vec<String> = queries
        .into_iter()
        .filter(|(_, e)| {
            e.contains("_seconds_bucket")
                || e.contains("5xx")
                || e.contains("result=\"error\"")
                || e.contains("outcome=\"failure\"")
                || e.contains("failed")
        })
        .map(|(t, _)| t)
        .collect();
    titles.dedup();
    titles
}

/// One annotation band: where the annotation's query returned points, back to back at its
/// step, for one label set.
#[derive(Debug)]
struct Band {
    labels: serde_json::Map<String, Value>,
    start: f64,
    end: f64,
}

/// Evaluates a Grafana Prometheus annotation over `[start, end]` as Grafana does: a range query
/// at the annotation's step; points no more than one step apart form one band.
async fn annotation_bands(
    prometheus: &LocalPrometheus,
    annotation: &Value,
    start: f64,
    end: f64,
) -> Vec<Band> {
    let expr = annotation["expr"].as_str().unwrap();
    let step: f64 = annotation["step"]
        .as_str()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse().ok())
        .expect("the annotation has a step in seconds");
    let data = prometheus
        .api(&format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
            compose::prometheus::url_encode(expr)
        ))
        .await
        .unwrap_or_else(|e| panic!("annotation query {expr}: {e:#}"));
    let mut bands = Vec::new();
    for series in data["result"].as_array().into_iter().flatten() {
        let labels = series["metric"].as_object().cloned().unwrap_or_default();
        let mut current: Option<Band> = None;
        for point in series["values"].as_array().into_iter().flatten() {
            let t = point[0].as_f64().unwrap();
            match current.as_mut() {
                Some(band) if t - band.end <= step + 1e-6 => band.end = t,
                _ => {
                    bands.extend(current.take());
                    current = Some(Band {
                        labels: labels.clone(),
                        start: t,
                        end: t,
                    });
                }
            }
        }
        bands.extend(current);
    }
    bands
}

/// Grafana shows the lab's fault windows as bands on every dashboard with a latency or error
/// panel: each carries the `lab_fault_active` annotation query on the provisioned Prometheus,
/// enabled, with tags to tell faults apart. The live test below evaluates it.
#[test]
fn every_dashboard_with_latency_or_error_panels_annotates_the_faults() {
    let mut annotated = 0;
    for file in files("dashboards/grafana", "json") {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let panels = latency_or_error_panels(&dashboard);
        let annotation = fault_annotation(&dashboard);
        if panels.is_empty() {
            continue;
        }
        let annotation = annotation.unwrap_or_else(|| {
            panic!(
                "{} shows latency or errors ({panels:?}) but has no lab_fault_active annotation",
                file.display()
            )
        });
        assert_eq!(annotation["enable"], true, "{}", file.display());
        assert_eq!(annotation["hide"], false, "{}", file.display());
        let tags = annotation["tagKeys"].as_str().unwrap_or_default();
        assert!(
            tags.contains("target") && tags.contains("action"),
            "{}: tagKeys {tags}",
            file.display()
        );
        annotated += 1;
    }
    let chaos: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/grafana/chaos-run.json")).unwrap(),
    )
    .unwrap();
    let panels = latency_or_error_panels(&chaos);
    assert!(
        panels.iter().any(|t| t.contains("p99")) && panels.iter().any(|t| t.contains("5xx")),
        "the chaos-run dashboard must show latency and errors under its fault bands: {panels:?}"
    );
    assert!(fault_annotation(&chaos).is_some());
    assert!(annotated >= 4, "only {annotated} dashboards annotated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_expression_returns_data_from_a_live_run() {
    // Dependencies: PostgreSQL, Redis behind the fault proxy.
    let db = compose::fresh_postgres_database()
        .await
        .expect("PostgreSQL for tests (apt-get install -y postgresql)");
    let redis = compose::shared_redis()
        .await
        .expect("Redis for tests (apt-get install -y redis-server)");
    let (chaos_server, chaos_api) = chaos::ProxyServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let redis_proxy = chaos_server
        .registry()
        .create(chaos::ProxyConfig {
            name: "redis".into(),
            listen: "127.0.0.1:0".into(),
            upstream: format!("127.0.0.1:{}", redis.port()),
            enabled: true,
        })
        .unwrap();
    let proxy_addr = redis_proxy.listen_addr().unwrap();

    // The box office (fenced: locks in Redis, fencing tokens checked by the database).
    let mut cfg = boxoffice::Config::for_tests(db);
    cfg.strategy = boxoffice::Strategy::Fenced;
    cfg.redis_url = Some(format!("redis://{proxy_addr}/"));
    cfg.redis_prefix = compose::fresh_redis_prefix();
    cfg.reaper_interval_ms = 1000;
    cfg.admin_email = Some(ADMIN.0.into());
    cfg.admin_password = Some(ADMIN.1.into());
    // A second instance on the same database with the `atomic` strategy, whose holds go
    // through the group-commit writers (the panels of batches).
    let mut atomic_cfg = cfg.clone();
    atomic_cfg.strategy = boxoffice::Strategy::Atomic;
    let app = boxoffice::Application::build(cfg)
        .await
        .expect("box office");
    let atomic_app = boxoffice::Application::build(atomic_cfg)
        .await
        .expect("the atomic box office");
    let atomic_addr = atomic_app.address().to_string();
    let (stop_atomic, atomic_stopped) = tokio::sync::oneshot::channel::<()>();
    let atomic_server = tokio::spawn(atomic_app.run_until_stopped(async move {
        let _ = atomic_stopped.await;
    }));
    let app_addr = app.address().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    // The runner's metrics, Alertmanager and Prometheus.
    let lab = Arc::new(LabMetrics::new());
    let (lab_addr, _lab_server) = lab
        .live
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .expect("the runner's metrics listen");
    let lab_addr = lab_addr.to_string();
    let alertmanager = LocalAlertmanager::start(&repo().join("alerts/alertmanager.yml"))
        .await
        .expect("Alertmanager (apt-get install -y prometheus-alertmanager)");
    let prometheus = LocalPrometheus::start(&PrometheusOptions {
        targets: vec![
            ScrapeTarget::new("boxoffice", app_addr.clone()).label("instance", "app-1"),
            ScrapeTarget::new("boxoffice", atomic_addr.clone()).label("instance", "app-2"),
            ScrapeTarget::new("scenario", lab_addr),
            ScrapeTarget::new("chaos", chaos_api.to_string()),
        ],
        rule_files: files("alerts/rules", "yml"),
        alertmanagers: vec![alertmanager.address()],
        ..Default::default()
    })
    .await
    .expect("Prometheus (apt-get install -y prometheus)");

    let runner = Runner {
        http: reqwest::Client::new(),
        base: format!("http://{app_addr}"),
        lab: Arc::clone(&lab),
    };
    let (sse, round) = drive_traffic(&runner).await;
    // Every target scraped before the fault, so that its window is sampled from the start.
    prometheus
        .wait_targets_up(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", prometheus.log_tail(20)));
    // One fault: 50 ms of Redis latency for two seconds, while the runner reads.
    use chaos::schedule::FaultTarget as _;
    let fault = chaos::schedule::parse_action("latency=50ms").expect("a toxic");
    let redis_target = scenarios::live::Gauged::new(
        "redis",
        Arc::new(chaos::schedule::ProxyTarget::new(redis_proxy.clone())),
        Arc::clone(&lab.live),
    );
    lab.live.declare_fault("redis", &fault);
    let fault_on = unix_now();
    redis_target.apply(&fault).await.expect("latency on");
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(3) {
        runner.get("browse", "/v1/events", None).await;
    }
    redis_target.revert(&fault).await.expect("latency off");
    let fault_off = unix_now();
    runner.get("browse", "/v1/events", None).await;
    // Two holds on the atomic instance, now that it is scraped: its group commit's batches.
    let atomic_runner = Runner {
        http: reqwest::Client::new(),
        base: format!("http://{atomic_addr}"),
        lab: Arc::clone(&lab),
    };
    for i in 1..3 {
        let token = atomic_runner
            .token(&format!("buyer{i}@example.com"), "password-123")
            .await;
        let (s, hold) = atomic_runner
            .post(
                "hold",
                &format!("/v1/rounds/{round}/holds"),
                Some(&token),
                json!({"quantity": 1}),
            )
            .await;
        assert_eq!(s, 201, "{hold}");
    }

    // Enough scrapes after the traffic for rate() over 1m, and the Kafka pipeline's
    // statistics and consumers to have reported.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let consumed = prometheus
        .query(r#"sum(boxoffice_events_consumed_total{job="boxoffice",result="applied"})"#)
        .await
        .unwrap();
    assert!(
        consumed["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            > 0.0,
        "the Kafka consumers applied nothing: {consumed}"
    );

    let mut failures = Vec::new();
    let mut checked = 0;
    // Dashboards.
    for file in files("dashboards/grafana", "json") {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut queries = Vec::new();
        panel_queries(&dashboard, &mut queries);
        assert!(!queries.is_empty(), "{} has no queries", file.display());
        for (title, expr) in queries {
            checked += 1;
            let promql = grafana_to_promql(&expr);
            match prometheus.query(&promql).await {
                Ok(data) if data["result"].as_array().is_some_and(|r| !r.is_empty()) => {}
                Ok(data) => failures.push(format!(
                    "{} / {title}: no series for {promql} ({})",
                    file.file_name().unwrap().to_string_lossy(),
                    data["result"]
                )),
                Err(e) => failures.push(format!("{} / {title}: {e:#}", file.display())),
            }
        }
    }
    // Rules, as Prometheus loaded them.
    let groups = prometheus.api("/api/v1/rules").await.unwrap();
    let mut loaded = BTreeSet::new();
    for rule in groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
    {
        let name = rule["name"].as_str().unwrap().to_owned();
        let query = rule["query"].as_str().unwrap();
        if rule["health"] != "ok" {
            failures.push(format!(
                "rule {name}: health {} {}",
                rule["health"], rule["lastError"]
            ));
        }
        let expr = if rule["type"] == "alerting" {
            strip_comparisons(query)
        } else {
            query.to_owned()
        };
        checked += 1;
        match prometheus.query(&expr).await {
            Ok(data) if data["result"].as_array().is_some_and(|r| !r.is_empty()) => {}
            Ok(_) => failures.push(format!("rule {name}: no series for {expr}")),
            Err(e) => failures.push(format!("rule {name}: {e:#}")),
        }
        loaded.insert(name);
    }
    let written: BTreeSet<String> = rule_names("alert")
        .into_iter()
        .chain(rule_names("record"))
        .collect();
    assert_eq!(
        loaded, written,
        "rules Prometheus loaded vs rules in alerts/rules/"
    );

    // METRICS.md = what Prometheus scraped from the box office.
    let names = prometheus
        .api(&format!(
            "/api/v1/label/__name__/values?match[]={}",
            compose::prometheus::url_encode(r#"{job="boxoffice"}"#)
        ))
        .await
        .unwrap();
    let scraped: BTreeSet<String> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .filter(|n| n != "up" && !n.starts_with("scrape_"))
        .collect();
    let md = std::fs::read_to_string(repo().join("system/METRICS.md")).unwrap();
    let mut specified = BTreeSet::new();
    for (name, family) in crate::metrics_spec::from_markdown(&md) {
        if family.kind == "histogram" {
            for s in ["_bucket", "_sum", "_count"] {
                specified.insert(format!("{name}{s}"));
            }
        } else {
            specified.insert(name);
        }
    }
    let missing: Vec<_> = specified.difference(&scraped).collect();
    let extra: Vec<_> = scraped.difference(&specified).collect();
    if !missing.is_empty() || !extra.is_empty() {
        failures.push(format!(
            "METRICS.md vs scraped: in METRICS.md only {missing:?}; scraped only {extra:?}"
        ));
    }

    // The fault annotation of every dashboard, evaluated as Grafana does (a range query at the
    // annotation's step; consecutive points make one band), finds the fault's window.
    for file in files("dashboards/grafana", "json") {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let Some(annotation) = fault_annotation(&dashboard) else {
            continue;
        };
        checked += 1;
        let bands = annotation_bands(&prometheus, &annotation, fault_on - 30.0, unix_now()).await;
        let redis: Vec<&Band> = bands
            .iter()
            .filter(|b| b.labels["target"] == "redis" && b.labels["action"] == "latency")
            .collect();
        match redis.as_slice() {
            [band] => {
                // Scrapes are 1 s apart and a band point is the last sample at or before it:
                // the band starts within a scrape and a step of the fault, and ends within one
                // scrape after it.
                let starts = (fault_on - 1.0..=fault_on + 2.5).contains(&band.start);
                let ends = (fault_off - 2.5..=fault_off + 2.0).contains(&band.end);
                if !(starts && ends) {
                    failures.push(format!(
                        "{name}: fault annotation band {:.1}..{:.1} s vs the fault {:.1}..{:.1} s",
                        band.start - fault_on,
                        band.end - fault_on,
                        0.0,
                        fault_off - fault_on
                    ));
                }
            }
            other => failures.push(format!(
                "{name}: fault annotation: expected one band for redis latency, found {other:?} (all: {bands:?})"
            )),
        }
        if bands.len() != redis.len() {
            failures.push(format!(
                "{name}: bands for faults that were never injected: {bands:?}"
            ));
        }
    }

    // Alerts reach Alertmanager's API (none should fire on a healthy run).
    let firing: Vec<Value> = prometheus
        .alerts()
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a["state"] == "firing")
        .collect();
    assert!(
        firing.is_empty(),
        "alerts firing on a healthy run: {firing:#?}"
    );
    alertmanager
        .alerts()
        .await
        .expect("Alertmanager's API answers");

    // The batches' panel shows what the atomic instance did, not only an empty ratio.
    let mean = prometheus
        .query(r#"sum(rate(boxoffice_hold_batch_holds_sum{job="boxoffice",instance="app-2"}[1m])) / sum(rate(boxoffice_hold_batch_holds_count{job="boxoffice",instance="app-2"}[1m]))"#)
        .await
        .unwrap();
    let mean: f64 = mean["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(
        (1.0..=2.0).contains(&mean),
        "holds per group commit on the atomic instance: {mean}"
    );

    drop(sse);
    let _ = stop.send(());
    let _ = server.await;
    let _ = stop_atomic.send(());
    let _ = atomic_server.await;
    chaos_server.shutdown().await;
    assert!(checked > 80, "only {checked} expressions checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} expressions failed against the live run:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
