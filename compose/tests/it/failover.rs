//! The local stack's high-availability parts on real servers: a PostgreSQL streaming standby
//! that has what the primary acknowledged and takes over when promoted; a primary that
//! survives a stop, a crash (SIGKILL) and a pause; the balancer routing around a dead or
//! frozen backend. (Redis failover through Sentinel is in redis_kafka.rs.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use compose::{Balancer, LocalPostgres};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .expect("connect")
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_synchronous_standby_has_every_acknowledged_write() {
    let primary = LocalPostgres::start().await.expect("primary");
    let p = pool(&primary.url("postgres")).await;
    sqlx::raw_sql("CREATE TABLE t (id bigint PRIMARY KEY)")
        .execute(&p)
        .await
        .unwrap();
    let standby = primary.start_standby().await.expect("standby");
    primary.require_synchronous_standby().await.expect("sync");
    assert!(standby.in_recovery().await.unwrap());
    assert!(!primary.in_recovery().await.unwrap());

    // Every acknowledged commit waited for the standby.
    for i in 0..200i64 {
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(i)
            .execute(&p)
            .await
            .unwrap();
    }
    p.close().await;
    primary.shutdown().await.expect("primary stops");
    assert!(!primary.is_running());

    standby.promote().await.expect("promote");
    assert!(!standby.in_recovery().await.unwrap());
    let s = pool(&standby.url("postgres")).await;
    assert_eq!(count(&s).await, 200, "the standby lost acknowledged writes");
    sqlx::query("INSERT INTO t VALUES (1000)")
        .execute(&s)
        .await
        .expect("the promoted standby accepts writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_comes_back_on_its_port_after_a_stop_a_crash_and_a_pause() {
    let pg = LocalPostgres::start().await.expect("start");
    let url = pg.url("postgres");
    let p = pool(&url).await;
    sqlx::raw_sql("CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t VALUES (1)")
        .execute(&p)
        .await
        .unwrap();
    let first_pid = pg.pid();

    pg.shutdown().await.expect("stop");
    assert!(sqlx::query("SELECT 1").execute(&p).await.is_err());
    pg.start_again().await.expect("start again");
    assert_eq!(count(&p).await, 1, "the pool reconnects to the same port");

    pg.kill().await.expect("kill");
    pg.start_again().await.expect("crash recovery");
    assert_ne!(pg.pid(), first_pid);
    assert_eq!(count(&p).await, 1, "a committed row survives a crash");

    pg.pause().expect("pause");
    let frozen = tokio::time::timeout(Duration::from_millis(700), count(&p)).await;
    assert!(frozen.is_err(), "a paused server must not answer");
    pg.resume().expect("resume");
    let thawed = tokio::time::timeout(Duration::from_secs(10), count(&p)).await;
    assert_eq!(thawed.expect("answers after resume"), 1);
}

/// A fake instance: answers every request with 200 and its name.
async fn backend(name: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let body = name;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (addr, task)
}

async fn get(addr: SocketAddr) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    out.rsplit("\r\n\r\n").next().map(str::to_owned)
}

#[tokio::test]
async fn the_balancer_spreads_requests_and_routes_around_a_dead_backend() {
    let (a, a_task) = backend("a").await;
    let (b, _b_task) = backend("b").await;
    let lb = Balancer::start(vec![a, b]).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(get(lb.addr()).await.expect("answer"));
    }
    assert!(seen.contains(&"a".to_owned()) && seen.contains(&"b".to_owned()));

    a_task.abort();
    let _ = a_task.await;
    // Every request still gets an answer: a refused connect is retried on the next backend.
    for _ in 0..6 {
        assert_eq!(get(lb.addr()).await.as_deref(), Some("b"));
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while lb.is_healthy(0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!lb.is_healthy(0), "the health check marks the dead backend");
    assert!(lb.is_healthy(1));
    assert_eq!(lb.healthy_count(), 1);
}
