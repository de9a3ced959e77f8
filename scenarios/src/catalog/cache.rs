//! `cache-compare`: the seeds' "Redis cut our database load by 90 %" as a measurement — the
//! same browse-heavy load (browse-and-buy) on the `local` stack with the box office's catalog
//! cache off and on. The database's load comes from PostgreSQL's own statistics
//! (`pg_stat_database`: transactions and rows read over the attack), not from the box office's
//! counters; beside it the catalog reads' latency, the cache's hit ratio and the request rate.
//! The reading puts the measured reduction beside the seeds' claims, and the correctness
//! section states the stale-read window the cache's aging (TTL + jitter) allows.

use serde_json::{json, Value};

use super::{check_count, Cell, Column, Defaults, Reading, BASE};
use crate::cli::Cli;
use crate::counters::{self, IDLE, PG_TUP_RETURNED, PG_XACT, WINDOW_S};
use crate::stack::StackSpec;

/// A browse-heavy load the local stack sustains on two shared cores.
pub const DEFAULTS: Defaults = Defaults {
    users: 40,
    events: 6,
    rounds_per_event: 2,
    seats: 500,
    run_time_s: Some(RUN_S),
    p99_all_ms: 5000.0,
    think_ms: THINK_MS,
    ..BASE
};

const RUN_S: usize = 30;
/// Seconds of idle stack measured before each attack (the box office's background load).
const IDLE_S: u64 = 3;
const THINK_MS: u64 = 200;

/// The table's title.
pub fn title(users: usize, _seats: usize) -> String {
    format!("Catalog cache off vs on: {users} users browsing and buying (70 % browsers) on the local stack")
}

/// The two cells: off first (the baseline), then on.
pub fn cells(cli: &Cli) -> Vec<Cell> {
    let mut load = Vec::new();
    if cli.stack == StackSpec::Embedded {
        // PostgreSQL's statistics are the measure: the embedded stack has none.
        load.extend(["--stack".to_owned(), "local".to_owned()]);
    }
    load.extend([
        "--db-idle-secs".to_owned(),
        IDLE_S.to_string(),
        "--think-ms".to_owned(),
        cli.think_ms.unwrap_or(THINK_MS).to_string(),
    ]);
    if cli.goose.run_time.is_none() {
        load.extend(["-t".to_owned(), format!("{RUN_S}s")]);
    }
    if cli.p99.is_empty() {
        // Two cores shared by the database, the instances and the runner: the cache-off
        // baseline is expected to be slow; the table shows by how much (latency is a column
        // here, not the verdict).
        load.extend(["--p99".to_owned(), "all=30s".to_owned()]);
    }
    if cli.max_error_rate.is_none() {
        // A saturated baseline times out now and then; the finding is the database's load.
        load.extend(["--max-error-rate".to_owned(), "5%".to_owned()]);
    }
    [
        ("off", "cache off (every read from PostgreSQL)"),
        ("on", "cache on (Redis, cache-aside)"),
    ]
    .into_iter()
    .map(|(mode, label)| {
        let mut overrides = load.clone();
        overrides.extend(["--cache".to_owned(), mode.to_owned()]);
        Cell {
            key: format!("cache-{mode}"),
            label: label.to_owned(),
            overrides,
            expected_to_break: false,
            not_applicable: None,
        }
    })
    .collect()
}

fn per_second(r: &reports::Report, key: &str) -> Option<f64> {
    let window = r.counters.get(WINDOW_S).copied().filter(|w| *w > 0.0)?;
    r.counters.get(key).map(|v| v / window)
}

/// PostgreSQL's transactions/s while the stack sat idle before the attack.
fn idle_rate(r: &reports::Report) -> Option<f64> {
    let window = r
        .counters
        .get(&format!("{IDLE}{WINDOW_S}"))
        .copied()
        .filter(|w| *w > 0.0)?;
    Some(
        r.counters
            .get(&format!("{IDLE}{PG_XACT}"))
            .copied()
            .unwrap_or(0.0)
            / window,
    )
}

/// PostgreSQL's transactions/s over the attack less its idle rate: what the load cost.
fn load_rate(r: &reports::Report) -> Option<f64> {
    let all = per_second(r, PG_XACT)?;
    Some((all - idle_rate(r).unwrap_or(0.0)).max(0.0))
}

fn tx<'a>(r: &'a reports::Report, name: &str) -> Option<&'a reports::TransactionStats> {
    r.transactions.iter().find(|t| t.name == name)
}

fn p50_p99(r: &reports::Report, name: &str) -> Value {
    json!(tx(r, name).map(|t| format!("{:.1} / {:.1}", t.latency.p50, t.latency.p99)))
}

fn lookups(r: &reports::Report, result: &str) -> f64 {
    counters::sum(
        &r.counters,
        "boxoffice_cache_requests_total",
        &[&format!("result=\"{result}\"")],
    )
}

/// Hits / (hits + misses + errors); none when the cache was not consulted (off).
fn hit_ratio(r: &reports::Report) -> Option<f64> {
    let hits = lookups(r, "hit");
    let all = hits + lookups(r, "miss") + lookups(r, "error");
    (all > 0.0).then(|| hits / all)
}

fn round1(x: Option<f64>) -> Value {
    json!(x.map(|v| (v * 10.0).round() / 10.0))
}

/// The table's columns.
pub static COLUMNS: [Column; 10] = [
    Column {
        name: "req/s",
        read: |r| json!((r.summary.throughput_rps * 10.0).round() / 10.0),
    },
    Column {
        name: "db transactions/s (pg_stat_database)",
        read: |r| round1(per_second(r, PG_XACT)),
    },
    Column {
        name: "of which idle background/s",
        read: |r| round1(idle_rate(r)),
    },
    Column {
        name: "db transactions/s from the load",
        read: |r| round1(load_rate(r)),
    },
    Column {
        name: "per request",
        read: |r| {
            let requests = r.summary.throughput_rps;
            json!(load_rate(r)
                .filter(|_| requests > 0.0)
                .map(|x| (x / requests * 100.0).round() / 100.0))
        },
    },
    Column {
        name: "db rows read/s",
        read: |r| round1(per_second(r, PG_TUP_RETURNED)),
    },
    Column {
        name: "event p50 / p99 ms",
        read: |r| p50_p99(r, "event"),
    },
    Column {
        name: "availability p50 / p99 ms",
        read: |r| p50_p99(r, "availability"),
    },
    Column {
        name: "hit ratio",
        read: |r| {
            json!(hit_ratio(r).map_or_else(
                || "— (not consulted)".to_owned(),
                |h| format!("{:.1}%", h * 100.0)
            ))
        },
    },
    Column {
        name: "verdict",
        read: |r| json!(reports::exit_code::describe(r.verdict.exit_code)),
    },
];

/// The seeds' claims the reading puts the measurement beside.
pub const SEED_CLAIMS: &str = "seed 003 claims −90 % database load (10,000 → 1,000 req/s on the database, 200 ms → 10 ms); seed 002 claims −98 % database queries; seed 004 shows a before/after screenshot";

/// The reading: the reduction beside the seeds' claims; the expectations: the cache cuts the
/// database's transactions, and after its stale-read window the cache equals the database.
pub fn reading(cells: &[(&Cell, &reports::Report)]) -> Reading {
    let find = |key: &str| cells.iter().find(|(c, _)| c.key == key).map(|(_, r)| *r);
    let (Some(off), Some(on)) = (find("cache-off"), find("cache-on")) else {
        return Reading::default();
    };
    let mut checks = Vec::new();
    let cfg = boxoffice::Config::default();
    let (ttl, jitter) = (cfg.cache_ttl_ms as i64, cfg.cache_ttl_jitter_ms as i64);
    let text;
    let per_req = |r: &reports::Report| {
        load_rate(r).unwrap_or(0.0) / r.summary.throughput_rps.max(f64::MIN_POSITIVE)
    };
    match (load_rate(off), load_rate(on)) {
        (Some(l_off), Some(l_on)) if l_off > 0.0 => {
            // Per request: a faster box office serves more requests in the same time, and
            // their uncached parts would hide what the cache saved on each.
            let cut = 1.0 - per_req(on) / per_req(off);
            let all = |r: &reports::Report| per_second(r, PG_XACT).unwrap_or(0.0);
            let p99 = |r: &reports::Report, name: &str| tx(r, name).map_or(0.0, |t| t.latency.p99);
            text = format!(
                "With the cache on, each request cost PostgreSQL {:.2} transactions instead of \
                 {:.2}: {:+.0} % ({l_on:.0} transactions/s from the load instead of {l_off:.0}; all \
                 {:.0}/s instead of {:.0}/s, of which about {:.0}/s is the box office's own \
                 background work, measured on the idle stack: outbox relay polls, health checks, \
                 the reaper), while the runner sent {:.0} req/s instead of {:.0}; catalog reads' \
                 p99 went from {:.0} to {:.0} ms (event) and {:.0} to {:.0} ms (availability), \
                 with {} of lookups hit. For comparison, {SEED_CLAIMS}. Here only an event's page \
                 and a round's availability are cached: listing, search, seat maps and every \
                 hold, booking and payment still reach the database, which is why the cut is \
                 smaller than the seeds' headline. The price is staleness: an entry lives {ttl} ms \
                 plus up to {jitter} ms of jitter, so a read can be at most {} ms behind a lost \
                 invalidation (see the correctness section).",
                per_req(on),
                per_req(off),
                -cut * 100.0,
                all(on),
                all(off),
                idle_rate(off).unwrap_or(0.0),
                on.summary.throughput_rps,
                off.summary.throughput_rps,
                p99(off, "event"),
                p99(on, "event"),
                p99(off, "availability"),
                p99(on, "availability"),
                hit_ratio(on).map_or_else(|| "none".to_owned(), |h| format!("{:.0} %", h * 100.0)),
                ttl + jitter,
            );
            checks.push(
                reports::Check::new(
                    "cache-compare: the cache cuts the database's load",
                    "With the cache on, a request costs PostgreSQL at least 10 % fewer transactions than with it off (pg_stat_database over the attack, less the idle stack's rate, per request served).",
                    cut >= 0.10,
                )
                .with_count("db_xact_per_s_off", l_off.round() as i64)
                .with_count("db_xact_per_s_on", l_on.round() as i64)
                .with_count("reduction_percent", (cut * 100.0).round() as i64),
            );
        }
        (Some(_), Some(_)) => {
            text = "With the cache off, the load's transactions did not rise above the idle stack's background rate: the machine was too busy to drive the baseline, so this run measures nothing about the cache; run it again on a quieter machine.".to_owned();
            checks.push(reports::Check::new(
                "cache-compare: the cache cuts the database's load",
                "With the cache on, the load costs PostgreSQL at least 10 % fewer transactions per second than with it off (pg_stat_database over the attack, less the idle stack's rate).",
                false,
            ));
        }
        _ => {
            text = "PostgreSQL's statistics could not be read (cache-compare needs the local stack), so the database's load is not compared.".to_owned();
            checks.push(reports::Check::skipped(
                "cache-compare: the cache cuts the database's load",
                "With the cache on, PostgreSQL runs fewer transactions per second than with it off.",
                "pg_stat_database could not be read on this stack",
            ));
        }
    }
    let consistent = on
        .correctness
        .checks
        .iter()
        .find(|c| c.name == "cache-matches-database");
    let stale_window = reports::Check::new(
        "cache-stale-read-window",
        format!(
            "With the cache on, a read may be stale for at most the entry's life, TTL {ttl} ms + jitter up to {jitter} ms = {} ms, after a lost invalidation; once that window has passed after the run, cached availability equals the database's.",
            ttl + jitter
        ),
        consistent.is_some_and(|c| c.passed),
    )
    .with_count("ttl_ms", ttl)
    .with_count("jitter_ms", jitter)
    .with_count("stale_window_ms", ttl + jitter)
    .with_count(
        "stale_right_after_run",
        check_count(on, "cache-matches-database", "stale_right_after_run")
            .as_i64()
            .unwrap_or(0),
    )
    .with_count(
        "stale_after_window",
        check_count(on, "cache-matches-database", "stale_after_ttl")
            .as_i64()
            .unwrap_or(0),
    );
    checks.push(stale_window);
    Reading {
        text: Some(text),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn report(xact: f64, hits: f64, misses: f64) -> reports::Report {
        let mut r = reports::Report::default();
        r.summary.requests = 1000;
        r.summary.throughput_rps = 100.0;
        r.counters = BTreeMap::from([
            (WINDOW_S.to_owned(), 10.0),
            (format!("{IDLE}{WINDOW_S}"), 2.0),
            (format!("{IDLE}{PG_XACT}"), 200.0),
            (PG_XACT.to_owned(), xact),
            (
                "boxoffice_cache_requests_total{cache=\"event\",result=\"hit\"}".to_owned(),
                hits,
            ),
            (
                "boxoffice_cache_requests_total{cache=\"event\",result=\"miss\"}".to_owned(),
                misses,
            ),
        ]);
        r.correctness.checks.push(
            reports::Check::new("cache-matches-database", "", true)
                .with_count("stale_right_after_run", 1),
        );
        r
    }

    #[test]
    fn the_reading_measures_the_cut_and_fails_when_there_is_none() {
        let cli = Cli::parse_from_args(["scenario", "cache-compare"]).unwrap();
        let cells = cells(&cli);
        assert_eq!(cells.len(), 2);
        assert!(cells[0].overrides.join(" ").contains("--stack local"));
        assert!(cells[1]
            .overrides
            .ends_with(&["--cache".to_owned(), "on".to_owned()]));
        // 100/s of background work on both sides: the load's 200/s fell to 20/s, at the
        // same 100 req/s.
        let (off, on) = (report(3000.0, 0.0, 0.0), report(1200.0, 90.0, 10.0));
        let read = reading(&[(&cells[0], &off), (&cells[1], &on)]);
        assert!(read.checks.iter().all(|c| c.passed), "{read:?}");
        assert_eq!(read.checks[0].counts["reduction_percent"], 90);
        let text = read.text.unwrap();
        assert!(text.contains("0.20 transactions instead of 2.00"), "{text}");
        assert!(
            text.contains("20 transactions/s from the load instead of 200"),
            "{text}"
        );
        assert!(text.contains("seed 003"), "{text}");
        assert_eq!(hit_ratio(&on), Some(0.9));
        let read = reading(&[(&cells[0], &off), (&cells[1], &report(2950.0, 1.0, 9.0))]);
        assert!(!read.checks[0].passed, "a 3 % cut is no cut: {read:?}");
    }
}
