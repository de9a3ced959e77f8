//! Benchmark: hold attempts per second on a contended round (strategy `atomic`, real
//! PostgreSQL with `synchronous_commit = on`), beside pgbench's single-row INSERT against the
//! same server in the same run. Both use the same number of concurrent clients, 8 and then 64
//! (a flash sale's buyers are many; with few, a closed loop of clients measures the latency of
//! one hold rather than what the service can place); each figure is the median of several
//! alternating runs. Targets: hold attempts/s ≥ 0.5 × pgbench TPS for chosen seats, ≥ 0.4 for
//! best available.
//!
//! Run: `cargo bench -p boxoffice --bench holds` (env `BENCH_SECS`, `BENCH_RUNS`, and
//! `BENCH_CLIENTS`, a comma-separated list of client counts).
//! The server's data is on a disk, the temp dir, unless `BOXOFFICE_STACK_DIR` names another
//! dir (`/dev/shm` for RAM, where a commit's `fsync` costs nothing).
//!
//! Every hold asks for one seat, best available, so all clients race for the same lowest
//! free rows of one round: that is the contention of a flash sale. Requests go through the
//! real router (JSON, auth, handler, strategy, database), without a socket.
//!
//! pgbench also runs the hold statement itself (the database's own cost of a hold, without
//! the service) on a second, untouched round of the same size, and each line says which share
//! of the service's attempts and of the statements placed a hold: a hold that finds its seat
//! taken writes nothing and costs far less, so the two figures compare only at similar shares.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use boxoffice::{AppState, Config, Strategy, SystemClock};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

/// The allocator the `boxoffice` binary runs with (`system/src/bin/boxoffice.rs`), so that the
/// benchmark measures what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The atomic hold statement with literal values, for pgbench: the database's own cost of a
/// hold, without the service around it.
fn hold_statement(round: i64, mode: Mode, first_seat: i64) -> String {
    let (set, picked) = match mode {
        Mode::Quantity => (
            String::new(),
            format!("SELECT id, price FROM seats WHERE round_id = {round} AND status = 'available' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"),
        ),
        Mode::Seats => (
            format!("\\set s random({first_seat}, {})\n", first_seat + HOT_SEATS - 1),
            format!("SELECT id, price FROM seats WHERE round_id = {round} AND status = 'available' AND id IN (:s) ORDER BY id FOR UPDATE"),
        ),
    };
    format!(
        "{set}WITH picked AS ({picked}),
 h AS (INSERT INTO holds (round_id, user_id, status, amount, seat_count, strategy, created_at, expires_at)
       SELECT {round}, 1, 'active', COALESCE(SUM(price), 0), COUNT(*), 'atomic', 0, 0 FROM picked HAVING COUNT(*) = 1 RETURNING id),
 upd AS (UPDATE seats s SET status = 'held', hold_id = h.id, booking_id = NULL, version = s.version + 1
         FROM h, picked WHERE s.id = picked.id AND s.status = 'available' RETURNING s.id, s.price),
 claims AS (INSERT INTO hold_seats (hold_id, seat_id, round_id, live, guard) SELECT h.id, upd.id, {round}, 1, upd.id FROM h, upd)
 SELECT h.id, upd.id, upd.price FROM h, upd;\n"
    )
}

/// How a hold asks for seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One chosen seat, drawn from the round's hot section (the first `HOT_SEATS` seats):
    /// buyers clicking on the seat map; two of them often want the same seat.
    Seats,
    /// One seat, best available: every client races for the same lowest free rows.
    Quantity,
}

impl Mode {
    /// The issue's target for hold attempts ÷ pgbench INSERT.
    fn target(self) -> f64 {
        match self {
            Mode::Seats => 0.5,
            Mode::Quantity => 0.4,
        }
    }
}

/// Size of the hot section chosen seats are drawn from.
const HOT_SEATS: i64 = 50_000;

/// pgbench `-c clients -T secs` of one `statement` per transaction; returns TPS.
fn pgbench(
    pg: &compose::LocalPostgres,
    db_url: &str,
    statement: &str,
    clients: u64,
    secs: u64,
) -> anyhow::Result<f64> {
    let db = db_url.rsplit('/').next().unwrap().to_owned();
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("insert.sql");
    std::fs::write(&script, statement)
        .map_err(|e| anyhow::anyhow!("Failed to write the pgbench script: {e}"))?;
    let out = Command::new(pg.bin_dir().join("pgbench"))
        .args(["-n", "-M", "prepared", "-f"])
        .arg(&script)
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
        ])
        .args([
            "-h",
            pg.host(),
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
            &db,
        ])
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "Failed to run {}: {e}",
                pg.bin_dir().join("pgbench").display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "pgbench said: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    Ok(tps)
}

struct HoldRun {
    attempts: u64,
    placed: u64,
    secs: f64,
    /// The untouched round pgbench's hold statement runs on, and its first seat.
    spare: i64,
    spare_first_seat: i64,
}

async fn holds(db_url: &str, mode: Mode, clients: u64, secs: u64) -> anyhow::Result<HoldRun> {
    let mut config = Config::for_tests(db_url);
    config.strategy = Strategy::Atomic;
    config.db_max_connections = (clients * 2) as u32;
    config.admin_email = Some("admin@example.com".into());
    config.admin_password = Some("admin-password".into());
    let (state, _) = AppState::build(config, Arc::new(SystemClock)).await?;
    let router = boxoffice::api::router(state.clone());
    let call = move |method: &str, path: String, token: Option<String>, body: serde_json::Value| {
        let router = router.clone();
        let method = method.to_owned();
        async move {
            let mut req = Request::builder()
                .method(method.as_str())
                .uri(path)
                .header("content-type", "application/json");
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let res = router
                .oneshot(req.body(Body::from(body.to_string())).unwrap())
                .await
                .unwrap();
            let status = res.status().as_u16();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
            )
        }
    };
    let (_, tok) = call(
        "POST",
        "/v1/auth/token".into(),
        None,
        json!({"email": "admin@example.com", "password": "admin-password"}),
    )
    .await;
    let admin = tok["access_token"].as_str().unwrap().to_owned();
    // 250 sections x 10 rows x 100 seats = 250,000 seats: more than any run can take (one
    // writer's connection of its own placed 13,000 best-available holds/s at 64 clients, so
    // 100,000 seats sold out within a run of 8 s).
    let sections: Vec<_> = (0..250)
        .map(|s| json!({"name": format!("S{s}"), "rows": (0..10).map(|r| json!({"label": format!("R{r}"), "seats": 100, "tier": "std"})).collect::<Vec<_>>()}))
        .collect();
    let (_, venue) = call(
        "POST",
        "/v1/venues".into(),
        Some(admin.clone()),
        json!({"name": "Stadium", "sections": sections}),
    )
    .await;
    let (_, event) = call(
        "POST",
        "/v1/events".into(),
        Some(admin.clone()),
        json!({"title": "Bench", "venue_id": venue["id"]}),
    )
    .await;
    let (_, round) = call(
        "POST",
        format!("/v1/events/{}/rounds", event["id"]),
        Some(admin.clone()),
        json!({"starts_at": "2030-01-01T00:00:00Z", "prices": {"std": 1000}}),
    )
    .await;
    let round = round["id"].as_i64().unwrap();
    let first_seat = boxoffice::store::catalog::seats(&state.db, round)
        .await
        .unwrap()[0]
        .id;
    // A second round, identical and untouched, for pgbench's run of the hold statement: on
    // the service's round most hot seats are held by then, so most statements would write
    // nothing and the baseline would be flattered.
    let (_, spare) = call(
        "POST",
        format!("/v1/events/{}/rounds", event["id"]),
        Some(admin.clone()),
        json!({"starts_at": "2030-01-02T00:00:00Z", "prices": {"std": 1000}}),
    )
    .await;
    let spare = spare["id"].as_i64().unwrap();
    let spare_first_seat = boxoffice::store::catalog::seats(&state.db, spare)
        .await
        .unwrap()[0]
        .id;
    let mut tokens = Vec::new();
    for i in 0..clients {
        let u = boxoffice::store::users::insert(
            &state.db,
            &format!("b{i}@example.com"),
            "b",
            "x",
            "user",
            0,
        )
        .await
        .unwrap();
        tokens.push(state.auth.issue(u.id, "user", chrono_now()).unwrap());
    }
    let attempts = Arc::new(AtomicU64::new(0));
    let placed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let call = call.clone();
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(i as u64);
        let (attempts, placed) = (attempts.clone(), placed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let body = match mode {
                    Mode::Quantity => json!({"quantity": 1}),
                    Mode::Seats => json!({"seat_ids": [first_seat + rand::Rng::gen_range(&mut rng, 0..HOT_SEATS)]}),
                };
                let (status, body) = call("POST", format!("/v1/rounds/{round}/holds"), Some(token.clone()), body).await;
                attempts.fetch_add(1, Ordering::Relaxed);
                match status {
                    201 => {
                        placed.fetch_add(1, Ordering::Relaxed);
                    }
                    409 => {}
                    other => panic!("hold answered {other}: {body}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let audit = boxoffice::store::audit::round(&state.db, round)
        .await
        .unwrap();
    assert_eq!(audit.oversold, 0);
    assert_eq!(
        audit.held as u64,
        placed.load(Ordering::Relaxed),
        "every placed hold is in the database"
    );
    state.db.pool.close().await;
    Ok(HoldRun {
        attempts: attempts.load(Ordering::Relaxed),
        placed: placed.load(Ordering::Relaxed),
        secs,
        spare,
        spare_first_seat,
    })
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn main() -> anyhow::Result<()> {
    // The question is durable commits, so the server's data goes on a disk (the temp dir) rather
    // than in RAM, where `synchronous_commit = on` waits on nothing and pgbench's INSERT
    // measures only the CPU. Set before any thread starts; BOXOFFICE_STACK_DIR overrides it.
    if std::env::var_os(compose::STACK_DIR_ENV).is_none() {
        std::env::set_var(compose::STACK_DIR_ENV, std::env::temp_dir());
    }
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let secs = env_or("BENCH_SECS", 10);
    let runs = env_or("BENCH_RUNS", 3);
    let client_counts: Vec<u64> = std::env::var("BENCH_CLIENTS")
        .unwrap_or_else(|_| "8,64".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let pg = compose::LocalPostgres::start_with(&[("synchronous_commit", "on")]).await?;
    println!(
        "PostgreSQL on port {} (synchronous_commit=on, data in {}), {client_counts:?} clients, {secs} s x {runs} runs",
        pg.port(),
        pg.data_dir().display()
    );
    let modes: Vec<Mode> = match std::env::var("BENCH_MODE").as_deref() {
        Ok("seats") => vec![Mode::Seats],
        Ok("quantity") => vec![Mode::Quantity],
        _ => vec![Mode::Seats, Mode::Quantity],
    };
    let mut summary = Vec::new();
    for (mode, clients) in modes
        .iter()
        .flat_map(|m| client_counts.iter().map(move |c| (*m, *c)))
    {
        let (mut pg_tps, mut hold_rps, mut stmt_tps) = (Vec::new(), Vec::new(), Vec::new());
        for run in 1..=runs {
            let url = pg.create_database().await?;
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await?;
            sqlx::query("CREATE TABLE bench_insert (id BIGSERIAL PRIMARY KEY, v INT)")
                .execute(&mut conn)
                .await?;
            drop(conn);
            let tps = pgbench(
                &pg,
                &url,
                "INSERT INTO bench_insert (v) VALUES (1);\n",
                clients,
                secs,
            )?;
            let hold_db = pg.create_database().await?;
            let h = holds(&hold_db, mode, clients, secs).await?;
            let rps = h.attempts as f64 / h.secs;
            let stmt = pgbench(
                &pg,
                &hold_db,
                &hold_statement(h.spare, mode, h.spare_first_seat),
                clients,
                secs,
            )?;
            // How many of pgbench's statements placed a hold (the rest found their seat taken).
            let stmt_placed: i64 = {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&hold_db).await?;
                sqlx::query_scalar("SELECT COUNT(*) FROM holds WHERE round_id = $1")
                    .bind(h.spare)
                    .fetch_one(&mut conn)
                    .await?
            };
            let stmt_share = stmt_placed as f64 / (stmt * secs as f64).max(1.0);
            println!(
                "{mode:?} x {clients} clients, run {run}: pgbench INSERT {tps:>7.0} tps | service holds {rps:>7.0} attempts/s ({:.0} % placed) | pgbench hold statement {stmt:>7.0} tps ({:.0} % placed) | holds/INSERT {:.2} | service/statement {:.2}",
                100.0 * h.placed as f64 / h.attempts.max(1) as f64,
                100.0 * stmt_share,
                rps / tps,
                rps / stmt
            );
            pg_tps.push(tps);
            hold_rps.push(rps);
            stmt_tps.push(stmt);
        }
        let (p, h, st) = (median(pg_tps), median(hold_rps), median(stmt_tps));
        summary.push(format!(
            "{mode:?} x {clients} clients: median pgbench INSERT {p:.0} tps, service holds {h:.0} attempts/s, pgbench hold statement {st:.0} tps; holds/INSERT {:.2} (target >= {:.2}), service/statement {:.2}",
            h / p,
            mode.target(),
            h / st
        ));
    }
    for line in summary {
        println!("{line}");
    }
    Ok(())
}
