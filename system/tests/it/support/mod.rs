//! Test support: the real application (real router, real database) driven without a socket
//! through `oneshot`, on a fresh SQLite file or a fresh PostgreSQL database per test, with a
//! manual clock.

#![allow(dead_code)]

pub mod contract;
pub mod metrics_spec;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use boxoffice::{AppState, Clock, Config, ManualClock, Strategy};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, with the in-process cache, locks and fan-out.
    Sqlite,
    /// PostgreSQL, with the in-process cache, locks and fan-out.
    Postgres,
    /// PostgreSQL and a real Redis (a fresh key prefix on a server shared by the test binary).
    PostgresRedis,
}

/// The Redis server shared by this test binary; fails (never skips) when it cannot start.
pub async fn redis_url() -> String {
    compose::shared_redis()
        .await
        .unwrap_or_else(|e| panic!("Redis for tests: {e:#}"))
        .url()
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub clock: ManualClock,
    pub admin: String,
    _dir: Option<tempfile::TempDir>,
}

/// A response: status and JSON body (Null when empty).
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub body: Value,
}

impl Res {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn id(&self) -> i64 {
        self.body["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no id in {:?}", self))
    }
    /// Asserts the status and, for errors, the JSON error shape.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected response: {:?}",
            self.body
        );
        if status >= 400 {
            assert!(
                self.body["error"]["code"].is_string(),
                "error without code: {:?}",
                self.body
            );
            assert!(
                self.body["error"]["message"].is_string(),
                "error without message: {:?}",
                self.body
            );
        }
        self
    }
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Self {
        let res = self.expect(status);
        assert_eq!(res.code(), code, "wrong error code: {:?}", res.body);
        res
    }
}

impl TestApp {
    pub async fn new(backend: Backend, strategy: Strategy) -> TestApp {
        Self::with_config(backend, |c| c.strategy = strategy).await
    }

    pub async fn sqlite() -> TestApp {
        Self::new(Backend::Sqlite, Strategy::Atomic).await
    }

    pub async fn with_config(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                (
                    format!("sqlite://{}/test.db", dir.path().display()),
                    Some(dir),
                )
            }
            Backend::Postgres | Backend::PostgresRedis => (
                compose::fresh_postgres_database()
                    .await
                    .expect("PostgreSQL for tests (apt-get install -y postgresql)"),
                None,
            ),
        };
        let mut config = Config::for_tests(url);
        if backend == Backend::PostgresRedis {
            config.redis_url = Some(redis_url().await);
            config.redis_prefix = compose::fresh_redis_prefix();
        }
        config.admin_email = Some(ADMIN_EMAIL.into());
        config.admin_password = Some(ADMIN_PASSWORD.into());
        config.db_max_connections = 16;
        // The strategies' and the API's tests measure those, not admission past capacity,
        // which `overload.rs` tests (it sets this).
        config.admission_wait_ms = 0;
        tweak(&mut config);
        Self::from_config(config, ManualClock::starting_now(), dir).await
    }

    /// Another instance of the same service: same database, Redis and key prefix, same clock,
    /// its own in-process state; `tweak` may change per-instance settings.
    pub async fn another_instance(&self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = (*self.state.config).clone();
        tweak(&mut config);
        Self::from_config(config, self.clock.clone(), None).await
    }

    async fn from_config(
        config: Config,
        clock: ManualClock,
        dir: Option<tempfile::TempDir>,
    ) -> TestApp {
        let (state, _) = AppState::build(config, Arc::new(clock.clone()))
            .await
            .expect("app builds");
        // Every response is tagged with its route so that `send` can hold it to the contract.
        let router = boxoffice::api::router(state.clone())
            .layer(axum::middleware::from_fn(contract::record_route));
        let mut app = TestApp {
            router,
            state,
            clock,
            admin: String::new(),
            _dir: dir,
        };
        app.admin = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        app
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    /// Sends a request through the router; the response must keep the OpenAPI contract of
    /// the operation that answered it (see [`contract`]).
    pub async fn send(&self, req: Request<Body>) -> Res {
        let method = req.method().clone();
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = res.status();
        let route = res.extensions().get::<contract::Route>().cloned();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        if let Some(contract::Route(route)) = route {
            contract::check(&method, &route, status, &body);
        }
        Res { status, body }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Res {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self
            .post(
                "/v1/auth/token",
                None,
                json!({"email": email, "password": password}),
            )
            .await
            .expect(200);
        res.body["access_token"].as_str().unwrap().to_owned()
    }

    /// Registers a user through the API and returns (id, token).
    pub async fn user(&self, name: &str) -> (i64, String) {
        let email = format!("{name}@example.com");
        let res = self
            .post(
                "/v1/users",
                None,
                json!({"email": email, "password": "password-123", "name": name}),
            )
            .await
            .expect(201);
        (res.id(), self.login(&email, "password-123").await)
    }

    /// Many users at once, written straight to the database (no hashing) with real tokens.
    pub async fn many_users(&self, prefix: &str, n: usize) -> Vec<(i64, String)> {
        let now = self.clock.now_ms();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let u = boxoffice::store::users::insert(
                &self.state.db,
                &format!("{prefix}-{i}@example.com"),
                "load user",
                "not-a-hash",
                "user",
                now,
            )
            .await
            .expect("user inserted");
            out.push((u.id, self.state.auth.issue(u.id, "user", now).unwrap()));
        }
        out
    }

    /// A venue of `rows` × `per_row` seats (first row tier `vip` at 10000, the rest `std` at
    /// 5000), an event and a round; returns (event id, round id, seat ids).
    pub async fn round(&self, rows: usize, per_row: i64) -> (i64, i64, Vec<i64>) {
        let row_specs: Vec<Value> = (0..rows)
            .map(|i| json!({"label": format!("R{i}"), "seats": per_row, "tier": if i == 0 { "vip" } else { "std" }}))
            .collect();
        let venue = self
            .post(
                "/v1/venues",
                Some(&self.admin),
                json!({"name": "Arena", "sections": [{"name": "A", "rows": row_specs}]}),
            )
            .await
            .expect(201)
            .id();
        let event = self
            .post(
                "/v1/events",
                Some(&self.admin),
                json!({"title": "The Show", "venue_id": venue, "category": "concert"}),
            )
            .await
            .expect(201)
            .id();
        let mut prices = json!({"vip": 10000});
        if rows > 1 {
            prices["std"] = json!(5000);
        }
        let round = self
            .post(
                &format!("/v1/events/{event}/rounds"),
                Some(&self.admin),
                json!({"starts_at": "2030-01-01T19:00:00Z", "prices": prices}),
            )
            .await
            .expect(201)
            .id();
        let seats = self
            .get(&format!("/v1/rounds/{round}/seats"), None)
            .await
            .expect(200);
        let ids = seats.body["seats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_i64().unwrap())
            .collect();
        (event, round, ids)
    }

    /// A hold of `quantity` best-available seats turned into a booking awaiting payment;
    /// returns (hold id, booking id).
    pub async fn pending_booking(&self, token: &str, round: i64, quantity: i64) -> (i64, i64) {
        let hold = self
            .post(
                &format!("/v1/rounds/{round}/holds"),
                Some(token),
                json!({"quantity": quantity}),
            )
            .await
            .expect(201)
            .id();
        let booking = self
            .post("/v1/bookings", Some(token), json!({"hold_id": hold}))
            .await
            .expect(201)
            .id();
        (hold, booking)
    }

    /// Pays `booking` its amount as read back from the API (both must answer 200); returns
    /// the amount.
    pub async fn pay(&self, token: &str, booking: i64) -> i64 {
        let amount = self
            .get(&format!("/v1/bookings/{booking}"), Some(token))
            .await
            .expect(200)
            .body["amount"]
            .as_i64()
            .unwrap();
        self.post(
            &format!("/v1/bookings/{booking}/pay"),
            Some(token),
            json!({"amount": amount}),
        )
        .await
        .expect(200);
        amount
    }

    /// Starts this instance's outbox relay and `ledger` and `notifier` consumers.
    pub async fn start_kafka(&self) -> boxoffice::kafka::Pipeline {
        boxoffice::kafka::Pipeline::start(&self.state)
            .await
            .unwrap_or_else(|e| panic!("Kafka pipeline: {e:#}"))
    }

    pub async fn availability(&self, round: i64) -> Value {
        self.get(&format!("/v1/rounds/{round}/availability"), None)
            .await
            .expect(200)
            .body
    }

    pub async fn audit(&self, round: i64) -> boxoffice::store::audit::RoundAudit {
        boxoffice::store::audit::round(&self.state.db, round)
            .await
            .unwrap()
    }
}
