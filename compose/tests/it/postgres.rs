//! Tests of the local PostgreSQL server against the real binaries: no mocks.
//!
//! Tests that need a process to die (the shared server must not outlive its test process) run
//! this same test binary again as a child, selecting the ignored `helper_process` test and
//! telling it what to do through `HELPER_ENV`.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use compose::{fresh_postgres_database, shared_postgres, LocalPostgres};
use sqlx::{Connection as _, PgConnection};

const HELPER_ENV: &str = "BOXOFFICE_COMPOSE_TEST_HELPER";

async fn scalar_text(url: &str, sql: &str) -> anyhow::Result<String> {
    let mut connection = PgConnection::connect(url).await?;
    let value: String = sqlx::query_scalar(sql).fetch_one(&mut connection).await?;
    connection.close().await?;
    Ok(value)
}

/// A process is running when /proc lists it and it is not a zombie (an orphaned zombie may
/// linger when pid 1 does not reap, as in some containers).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !(state.starts_with('Z') || state.starts_with('X'))
        }
        Err(_) => false,
    }
}

fn wait_until_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !is_running(pid)
}

/// A stopped server's dir is gone, unless `BOXOFFICE_KEEP_STACK=1` asked to keep it (then it
/// must be there, and we remove it).
fn assert_dir_released(dir: &Path) {
    if std::env::var("BOXOFFICE_KEEP_STACK").is_ok_and(|value| value == "1") {
        assert!(dir.exists(), "{} was not kept", dir.display());
        std::fs::remove_dir_all(dir.parent().expect("data dir has a parent")).ok();
    } else {
        assert!(!dir.exists(), "{} survived its server", dir.display());
    }
}

#[tokio::test]
async fn a_started_server_accepts_sql() -> anyhow::Result<()> {
    let server = LocalPostgres::start().await?;
    let url = server.url("postgres");
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/postgres", server.port())
    );
    assert_eq!(server.host(), "127.0.0.1");

    let mut connection = PgConnection::connect(&url).await?;
    let sum: i32 = sqlx::query_scalar("SELECT 40 + 2")
        .fetch_one(&mut connection)
        .await?;
    assert_eq!(sum, 42);
    connection.close().await?;

    assert_eq!(scalar_text(&url, "SHOW max_connections").await?, "300");
    assert_eq!(scalar_text(&url, "SHOW fsync").await?, "on");
    assert_eq!(scalar_text(&url, "SHOW synchronous_commit").await?, "on");
    // In RAM (the default where /dev/shm is a roomy tmpfs) the dynamic shared memory is files in
    // the data dir, which go with it; on a disk it stays POSIX shared memory.
    let dsm = if server.data_dir().starts_with("/dev/shm") {
        "mmap"
    } else {
        "posix"
    };
    assert_eq!(
        scalar_text(&url, "SHOW dynamic_shared_memory_type").await?,
        dsm
    );
    assert!(server.data_dir().join("PG_VERSION").is_file());
    assert!(server.bin_dir().join("postgres").is_file());
    assert!(std::fs::read_to_string(server.log_path())?.contains("ready to accept connections"));
    server.stop().await
}

#[tokio::test]
async fn extra_settings_replace_the_defaults_and_add_to_them() -> anyhow::Result<()> {
    let server = LocalPostgres::start_with(&[
        ("synchronous_commit", "off"),
        ("max_connections", "50"),
        ("application_name", "box office lab"),
    ])
    .await?;
    let url = server.url("postgres");
    assert_eq!(scalar_text(&url, "SHOW synchronous_commit").await?, "off");
    assert_eq!(scalar_text(&url, "SHOW max_connections").await?, "50");
    assert_eq!(scalar_text(&url, "SHOW fsync").await?, "on");
    server.stop().await
}

#[tokio::test]
async fn a_setting_without_a_name_is_refused() {
    let error = LocalPostgres::start_with(&[("", "on")])
        .await
        .expect_err("an empty setting name must be refused");
    assert!(error
        .to_string()
        .contains("invalid PostgreSQL setting name"));
}

#[tokio::test]
async fn a_server_that_cannot_start_reports_the_tail_of_its_log() {
    let error = LocalPostgres::start_with(&[("shared_buffers", "plenty")])
        .await
        .expect_err("a server with an invalid setting must not start");
    let message = format!("{error:#}");
    assert!(message.contains("did not become ready"), "{message}");
    assert!(message.contains("postgres.log ---"), "{message}");
    assert!(
        message.contains("shared_buffers"),
        "the log tail is missing: {message}"
    );
}

#[tokio::test]
async fn two_created_databases_are_isolated() -> anyhow::Result<()> {
    let server = shared_postgres().await?;
    let first = server.create_database().await?;
    let second = server.create_database().await?;
    assert_ne!(first, second);

    let mut connection = PgConnection::connect(&first).await?;
    sqlx::raw_sql("CREATE TABLE seats (id int PRIMARY KEY); INSERT INTO seats VALUES (1);")
        .execute(&mut connection)
        .await?;
    connection.close().await?;

    assert_eq!(
        scalar_text(&first, "SELECT to_regclass('seats')::text").await?,
        "seats"
    );
    let mut connection = PgConnection::connect(&second).await?;
    let absent: Option<String> = sqlx::query_scalar("SELECT to_regclass('seats')::text")
        .fetch_one(&mut connection)
        .await?;
    assert_eq!(
        absent, None,
        "a table created in one database leaked into another"
    );
    connection.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_fresh_database_is_empty_and_on_the_shared_server() -> anyhow::Result<()> {
    let url = fresh_postgres_database().await?;
    let server = shared_postgres().await?;
    assert!(url.starts_with(&format!(
        "postgres://postgres@127.0.0.1:{}/test_",
        server.port()
    )));
    let mut connection = PgConnection::connect(&url).await?;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut connection)
    .await?;
    assert_eq!(tables, 0);
    connection.close().await?;
    Ok(())
}

#[tokio::test]
async fn dropping_a_server_stops_its_process_and_removes_its_dir() -> anyhow::Result<()> {
    let server = LocalPostgres::start().await?;
    let pid = server.pid();
    let data_dir = server.data_dir().to_path_buf();
    assert!(is_running(pid));
    assert!(data_dir.is_dir());

    drop(server);

    assert!(!is_running(pid), "postgres (pid {pid}) survived the drop");
    assert_dir_released(&data_dir);
    Ok(())
}

#[tokio::test]
async fn stop_shuts_the_server_down_and_removes_its_dir() -> anyhow::Result<()> {
    let server = LocalPostgres::start().await?;
    let pid = server.pid();
    let port = server.port();
    let data_dir = server.data_dir().to_path_buf();

    server.stop().await?;

    assert!(!is_running(pid), "postgres (pid {pid}) survived stop");
    assert_dir_released(&data_dir);
    let refused =
        PgConnection::connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await;
    assert!(
        refused.is_err(),
        "a stopped server still accepts connections"
    );
    Ok(())
}

#[tokio::test]
async fn the_shared_server_is_the_same_on_every_call() -> anyhow::Result<()> {
    let (first, second) = tokio::join!(shared_postgres(), shared_postgres());
    let (first, second) = (first?, second?);
    let third = shared_postgres().await?;
    assert!(std::ptr::eq(first, second) && std::ptr::eq(second, third));
    assert_eq!(first.pid(), third.pid());
    assert!(is_running(first.pid()));
    Ok(())
}

/// What a helper process printed about its shared server.
struct HelperReport {
    pid: u32,
    dir: PathBuf,
}

/// Starts this test binary as a child running only `helper_process` in `mode`, and reads the
/// line where it reports its shared server. Returns the child, still running, and the report.
fn spawn_helper(mode: &str) -> anyhow::Result<(std::process::Child, HelperReport)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "postgres::helper_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, mode)
        .env_remove("BOXOFFICE_KEEP_STACK")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("Failed to start the helper process")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line?;
        // libtest prints "test helper_process ... " before the test's own output.
        if let Some((_, rest)) = line.split_once("SHARED_POSTGRES ") {
            let (pid, dir) = rest.split_once(' ').context("malformed helper report")?;
            let report = HelperReport {
                pid: pid.parse()?,
                dir: PathBuf::from(dir),
            };
            // Keep reading: a closed pipe would make the helper's next print fail.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((child, report));
        }
    }
    let status = child.wait()?;
    anyhow::bail!("the helper exited ({status}) without reporting its server")
}

#[test]
fn the_shared_server_stops_when_its_test_process_exits() -> anyhow::Result<()> {
    let (mut child, report) = spawn_helper("exit")?;
    let status = child.wait()?;
    assert!(status.success(), "helper failed: {status}");
    assert!(
        wait_until_gone(report.pid, Duration::from_secs(10)),
        "postgres (pid {}) outlived its test process",
        report.pid
    );
    assert!(
        !report.dir.exists(),
        "{} outlived its test process",
        report.dir.display()
    );
    Ok(())
}

#[test]
fn the_shared_server_dies_when_its_test_process_is_killed() -> anyhow::Result<()> {
    let (mut child, report) = spawn_helper("hang")?;
    assert!(is_running(report.pid));
    child.kill()?;
    child.wait()?;
    let gone = wait_until_gone(report.pid, Duration::from_secs(10));
    // A killed process cannot clean up after itself: its dir stays, until the next lab process
    // sweeps it (its name carries the pid of the process that made it).
    assert!(report.dir.exists(), "{} vanished", report.dir.display());
    remove_shared_memory(&report.dir);
    let (mut next, next_report) = spawn_helper("exit")?;
    let status = next.wait()?;
    let swept = !report.dir.exists();
    let _ = std::fs::remove_dir_all(&report.dir);
    assert!(
        gone,
        "postgres (pid {}) outlived its killed test process",
        report.pid
    );
    assert!(status.success(), "the next helper failed: {status}");
    assert_ne!(next_report.dir, report.dir);
    assert!(
        swept,
        "the next lab process left the killed one's dir {}",
        report.dir.display()
    );
    Ok(())
}

/// Removes the small System V shared memory segment that a SIGKILLed postmaster would have
/// released on a clean exit (its id is on line 7 of `postmaster.pid`: "key shmid").
fn remove_shared_memory(dir: &Path) {
    let pid_file = std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap_or_default();
    if let Some(shmid) = pid_file
        .lines()
        .nth(6)
        .and_then(|line| line.split_whitespace().nth(1))
    {
        let removed = Command::new("ipcrm").args(["-m", shmid]).status();
        if !removed.is_ok_and(|status| status.success()) {
            eprintln!("could not remove shared memory segment {shmid} of a killed postgres");
        }
    }
}

#[test]
fn a_wrong_bin_dir_says_what_to_install() -> anyhow::Result<()> {
    let output = Command::new(std::env::current_exe()?)
        .args([
            "postgres::helper_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, "report-start-error")
        .env("BOXOFFICE_PG_BIN", "/nonexistent/postgresql/bin")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "helper failed: {stdout}");
    assert!(
        stdout.contains("START_ERROR") && stdout.contains("apt-get install -y postgresql"),
        "the error does not say what to install: {stdout}"
    );
    Ok(())
}

/// Run by the tests above as a child process (see the module docs); on its own, without
/// `HELPER_ENV`, it just checks that the shared server starts.
#[tokio::test]
#[ignore = "helper process, run by the tests that need a process to die"]
async fn helper_process() -> anyhow::Result<()> {
    let mode = std::env::var(HELPER_ENV).unwrap_or_default();
    if mode == "report-start-error" {
        let error = LocalPostgres::start()
            .await
            .expect_err("start must fail with a wrong BOXOFFICE_PG_BIN");
        println!("START_ERROR {error:#}");
        return Ok(());
    }
    let server = shared_postgres().await?;
    let dir = server
        .data_dir()
        .parent()
        .context("data dir has no parent")?;
    println!("SHARED_POSTGRES {} {}", server.pid(), dir.display());
    if mode == "hang" {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    Ok(())
}
