//! The stack's own counters, read twice around an attack (before the stack stops, since they
//! die with it): every `boxoffice_*_total` counter of every instance's `/metrics`, summed over
//! instances, and on PostgreSQL the database's own statistics from `pg_stat_database`
//! (transactions and tuples: what the database did, whoever asked). The report keeps the
//! increase over the attack ([`Counters::since`]), so a matrix can put a strategy's retries
//! or a cache's hit ratio and the database's load beside the client's numbers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::stack::Stack;

/// The key of the seconds between the two reads.
pub const WINDOW_S: &str = "window_s";
/// PostgreSQL transactions (`xact_commit + xact_rollback`) of the lab's database.
pub const PG_XACT: &str = "pg_xact";
/// Rows read by sequential scans and index scans (`tup_returned`).
pub const PG_TUP_RETURNED: &str = "pg_tup_returned";
/// Rows fetched by index scans (`tup_fetched`).
pub const PG_TUP_FETCHED: &str = "pg_tup_fetched";

/// Counters read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    at: Option<Instant>,
    values: BTreeMap<String, f64>,
}

impl Counters {
    /// Reads every instance's counters and, on the local stack, PostgreSQL's statistics.
    /// Whatever cannot be read is left out (a warning says why).
    pub async fn read(stack: &Stack) -> Counters {
        let mut values = BTreeMap::new();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        for (name, url) in stack.instance_urls() {
            let text = match http.get(format!("{url}/metrics")).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => {
                    eprintln!("warning: reading {name}'s /metrics: {e}");
                    continue;
                }
            };
            for (key, v) in parse_counters(&text) {
                *values.entry(key).or_insert(0.0) += v;
            }
        }
        if let Some(lab) = stack.lab() {
            match pg_stats(lab).await {
                Ok(stats) => values.extend(stats),
                Err(e) => eprintln!("warning: reading pg_stat_database: {e:#}"),
            }
        }
        Counters {
            at: Some(Instant::now()),
            values,
        }
    }

    /// What grew from `before` to `self` (counters that did not move are left out), with the
    /// seconds between the reads under [`WINDOW_S`].
    pub fn since(&self, before: &Counters) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v - before.values.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d != 0.0)
            .collect();
        if let (Some(a), Some(b)) = (before.at, self.at) {
            out.insert(WINDOW_S.to_owned(), (b - a).as_secs_f64());
        }
        out
    }
}

/// Prefix of the counters measured while the stack sat idle before the attack
/// ([`idle`]): `idle_pg_xact`, `idle_window_s`…
pub const IDLE: &str = "idle_";

/// PostgreSQL's statistics over `secs` of an idle stack (its background work: outbox relay
/// polls, health checks, the reaper), keyed with the [`IDLE`] prefix; empty off the local stack.
pub async fn idle(stack: &Stack, secs: u64) -> BTreeMap<String, f64> {
    if stack.lab().is_none() || secs == 0 {
        return BTreeMap::new();
    }
    let before = Counters::read(stack).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Counters::read(stack)
        .await
        .since(&before)
        .into_iter()
        .filter(|(k, _)| k.starts_with("pg_") || k == WINDOW_S)
        .map(|(k, v)| (format!("{IDLE}{k}"), v))
        .collect()
}

/// `boxoffice_*_total` samples of a Prometheus text exposition, keyed `name{labels}` as written.
pub fn parse_counters(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with("boxoffice_"))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let name = key.split('{').next()?;
            if !name.ends_with("_total") {
                return None;
            }
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of `name` whose labels contain all of `labels` (`k="v"` pairs).
pub fn sum(counters: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    counters
        .iter()
        .filter(|(k, _)| {
            k.split('{').next() == Some(name)
                && labels.iter().all(|l| {
                    k.split_once('{')
                        .is_some_and(|(_, ls)| ls.trim_end_matches('}').split(',').any(|x| x == *l))
                })
        })
        .map(|(_, v)| *v)
        .sum()
}

/// `pg_stat_database` of the lab's database, through a fresh connection (its statistics
/// snapshot is per transaction), after the backends' pending statistics had time to flush.
async fn pg_stats(lab: &compose::LocalLab) -> anyhow::Result<Vec<(String, f64)>> {
    use sqlx::{Connection, Row};
    let address = lab
        .components()
        .into_iter()
        .find(|c| c.name == "postgres")
        .map(|c| c.address)
        .ok_or_else(|| anyhow::anyhow!("the lab has no postgres"))?;
    let database = lab.database().to_owned();
    // Backends flush their statistics at most once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut conn =
        sqlx::PgConnection::connect(&format!("postgres://postgres@{address}/postgres")).await?;
    let row = sqlx::query(
        "SELECT (xact_commit + xact_rollback)::float8 AS xact, tup_returned::float8 AS returned,
                tup_fetched::float8 AS fetched
         FROM pg_stat_database WHERE datname = $1",
    )
    .bind(&database)
    .fetch_one(&mut conn)
    .await?;
    let out = vec![
        (PG_XACT.to_owned(), row.try_get::<f64, _>("xact")?),
        (
            PG_TUP_RETURNED.to_owned(),
            row.try_get::<f64, _>("returned")?,
        ),
        (PG_TUP_FETCHED.to_owned(), row.try_get::<f64, _>("fetched")?),
    ];
    let _ = conn.close().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_the_exposition_and_summed_by_label() {
        let text = "# HELP x\n\
            boxoffice_strategy_retries_total{operation=\"hold\",strategy=\"optimistic\"} 7\n\
            boxoffice_strategy_retries_total{operation=\"coupon_claim\",strategy=\"optimistic\"} 2\n\
            boxoffice_lock_wait_seconds_count{result=\"acquired\"} 3\n\
            boxoffice_cache_requests_total{cache=\"event\",result=\"hit\"} 5\n";
        let parsed: BTreeMap<_, _> = parse_counters(text).into_iter().collect();
        assert_eq!(parsed.len(), 3, "histograms are left out: {parsed:?}");
        assert_eq!(sum(&parsed, "boxoffice_strategy_retries_total", &[]), 9.0);
        assert_eq!(
            sum(
                &parsed,
                "boxoffice_strategy_retries_total",
                &["operation=\"hold\""]
            ),
            7.0
        );
        assert_eq!(
            sum(
                &parsed,
                "boxoffice_cache_requests_total",
                &["result=\"miss\""]
            ),
            0.0
        );
    }
}
