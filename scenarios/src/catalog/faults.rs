//! `fault-matrix`: a flash sale under steady load once per (component, fault) on the `local`
//! stack — every component the lab runs against every fault it can inject — with one row of
//! invariants, detection and recovery per cell. Cells that make no sense (a failover of a
//! component without a replica, a network fault where no proxy sits) are rows marked n/a
//! with the reason, never silently left out.

use serde_json::{json, Value};

use super::{check_count, Cell, Column, Defaults, BASE};
use crate::cli::{Cli, Component, FaultKind};
use crate::stack::StackSpec;

/// Steady load on a venue large enough to last the run, so every fault window sees bookings.
pub const DEFAULTS: Defaults = Defaults {
    users: 30,
    seats: 5000,
    run_time_s: Some(RUN_S),
    p99_all_ms: 5000.0,
    ..BASE
};

/// The table's title.
pub const TITLE: &str = "Fault matrix: a flash sale under steady load, one fault per cell";

/// Arrivals per second when `--rate` is not given.
const RATE: f64 = 15.0;
/// When each fault starts and how long it lasts, seconds: a baseline before, recovery after.
const FAULT_AT_S: u64 = 4;
const FAULT_FOR_S: u64 = 4;
/// Run time when `-t` is not given: the fault, then time to recover and to hold the SLO.
const RUN_S: usize = 20;
/// Recovery budget after the fault ends, seconds, unless the cell needs longer.
const RECOVERY_AFTER_END_S: u64 = 5;

impl Component {
    pub(crate) const ALL: [Component; 5] = [
        Component::Postgres,
        Component::Redis,
        Component::Kafka,
        Component::Payments,
        Component::App,
    ];

    /// The chaos target's name.
    fn target(self) -> &'static str {
        match self {
            Component::Postgres => "postgres",
            Component::Redis => "redis",
            Component::Kafka => "kafka",
            Component::Payments => "payments",
            Component::App => "app-1",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Component::App => "app",
            other => other.target(),
        }
    }
}

impl FaultKind {
    pub(crate) const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Latency,
        FaultKind::Partition,
        FaultKind::Reset,
        FaultKind::Failover,
    ];

    fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Latency => "latency",
            FaultKind::Partition => "partition",
            FaultKind::Reset => "reset",
            FaultKind::Failover => "failover",
        }
    }
}

/// What a (component, fault) cell injects, or why it makes no sense here.
fn action(component: Component, fault: FaultKind) -> Result<&'static str, &'static str> {
    use Component as C;
    use FaultKind as F;
    match (component, fault) {
        // The provider is outside the lab's processes: its "kill" is every connection refused.
        (C::Payments, F::Kill) => Ok("down"),
        (C::Payments, F::Pause) => Err("the payment provider is not a process the lab runs; `partition` is its hung peer"),
        (C::App, F::Latency | F::Partition | F::Reset) => Err("no fault proxy between the balancer and an instance; `pause` is a hung instance"),
        (C::Kafka, F::Failover) => Err("one broker (tansu runs as a single node): nothing to fail over to"),
        (C::Payments, F::Failover) => Err("one provider endpoint: nothing to fail over to"),
        (C::App, F::Failover) => Err("instances are peers behind the balancer, not primary and replica; `kill` is losing one"),
        (_, F::Kill) => Ok("kill"),
        (_, F::Pause) => Ok("pause"),
        (_, F::Latency) => Ok("latency=200ms"),
        (_, F::Partition) => Ok("partition"),
        (_, F::Reset) => Ok("reset_peer"),
        (_, F::Failover) => Ok("failover"),
    }
}

/// Seconds after the fault ends that recovery may take, and why when it is not the default.
fn recovery_budget(component: Component, fault: FaultKind) -> (u64, Option<&'static str>) {
    match (component, fault) {
        // A SIGKILLed PostgreSQL replays its WAL before it accepts connections, and every
        // pooled connection of both instances is dead and must be re-established.
        (Component::Postgres, FaultKind::Kill) => {
            (10, Some("crash recovery, then new pool connections"))
        }
        _ => (RECOVERY_AFTER_END_S, None),
    }
}

/// The cells for this command line: `--cells`, else `--targets` × `--faults` (default every
/// one), once per `--strategies` when given.
pub fn cells(cli: &Cli) -> Vec<Cell> {
    let pairs: Vec<(Component, FaultKind)> = if cli.cells.is_empty() {
        let targets = if cli.targets.is_empty() {
            Component::ALL.to_vec()
        } else {
            cli.targets.clone()
        };
        let faults = if cli.faults.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            cli.faults.clone()
        };
        targets
            .iter()
            .flat_map(|&t| faults.iter().map(move |&f| (t, f)))
            .collect()
    } else {
        cli.cells.clone()
    };
    let strategies: Vec<Option<boxoffice::Strategy>> = if cli.strategies.is_empty() {
        vec![None]
    } else {
        cli.strategies.iter().copied().map(Some).collect()
    };
    let mut load = Vec::new();
    if cli.stack == StackSpec::Embedded {
        // Faults need processes and proxies the lab controls.
        load.extend(["--stack".to_owned(), "local".to_owned()]);
    }
    if cli.rate.is_none() {
        load.extend(["--rate".to_owned(), RATE.to_string()]);
    }
    if cli.goose.run_time.is_none() {
        load.extend(["-t".to_owned(), format!("{RUN_S}s")]);
    }
    if cli.p99.is_empty() {
        // A request caught by a 4 s freeze takes 4 s: flash-sale's 5 s limit would judge the
        // fault, not the service. The limit catches requests that hang past the fault; the
        // recovery budget judges the rest.
        load.extend(["--p99".to_owned(), "all=10s".to_owned()]);
    }
    let mut out = Vec::new();
    for strategy in &strategies {
        for &(component, fault) in &pairs {
            let mut key = format!("{}-{}", component.name(), fault.name());
            let mut label = format!("{} × {}", component.name(), fault.name());
            let mut overrides = load.clone();
            if let Some(s) = strategy {
                key = format!("{s}-{key}");
                label = format!("{s}: {label}");
                overrides.extend(["--strategy".to_owned(), s.as_str().to_owned()]);
            }
            let cell = match action(component, fault) {
                Ok(action) => {
                    let (after_end, why) = recovery_budget(component, fault);
                    overrides.extend([
                        "--chaos".to_owned(),
                        format!(
                            "{}:{action}@{FAULT_AT_S}s+{FAULT_FOR_S}s",
                            component.target()
                        ),
                    ]);
                    if cli.max_recovery.is_none() {
                        overrides.extend([
                            "--max-recovery".to_owned(),
                            format!("{}s", FAULT_FOR_S + after_end),
                        ]);
                    }
                    if let Some(why) = why {
                        label = format!("{label} (recovery budget {after_end} s: {why})");
                    }
                    Cell {
                        key,
                        label,
                        overrides,
                        expected_to_break: false,
                        not_applicable: None,
                    }
                }
                Err(why) => Cell {
                    key,
                    label,
                    overrides: Vec::new(),
                    expected_to_break: false,
                    not_applicable: Some(why),
                },
            };
            out.push(cell);
        }
    }
    out
}

fn fault(r: &reports::Report) -> Option<&reports::FaultReport> {
    r.failover.faults.first()
}

fn seconds(v: Option<f64>) -> Value {
    json!(v.map(|s| (s * 10.0).round() / 10.0))
}

fn ledger(r: &reports::Report, key: &str) -> Option<i64> {
    r.correctness
        .checks
        .iter()
        .find(|c| c.name == "ledger-matches-bookings")
        .and_then(|c| c.counts.get(key).copied())
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The matrix's columns: invariants first, then detection and recovery, then cost.
pub static COLUMNS: [Column; 13] = [
    Column {
        name: "oversold",
        read: |r| check_count(r, "no-double-sale", "oversold"),
    },
    Column {
        name: "acked lost",
        read: |r| json!(fault(r).map(|f| f.acknowledged_lost)),
    },
    Column {
        name: "ledger − db",
        read: |r| {
            json!(ledger(r, "ledger_bookings")
                .zip(ledger(r, "database_bookings"))
                .map(|(l, d)| l - d))
        },
    },
    Column {
        name: "payments imbalance",
        read: |r| check_count(r, "payments-balance", "imbalance"),
    },
    Column {
        name: "seats sold",
        read: |r| check_count(r, "inventory-balance", "sold"),
    },
    Column {
        name: "bookings in window",
        read: |r| json!(fault(r).and_then(|f| f.bookings_in_window)),
    },
    Column {
        name: "first error s",
        read: |r| seconds(fault(r).and_then(|f| f.time_to_first_error_s())),
    },
    Column {
        name: "noticed s",
        read: |r| {
            json!(fault(r).and_then(|f| f.time_to_notice_s().map(|s| format!(
                "{:.1} ({})",
                s,
                f.noticed_by.as_deref().unwrap_or("?")
            ))))
        },
    },
    Column {
        name: "recovered s after end",
        read: |r| {
            seconds(fault(r).and_then(|f| {
                f.recovered_within_slo_s
                    .map(|s| (f.start_s + s - f.end_s).max(0.0))
            }))
        },
    },
    Column {
        name: "errors window (baseline)",
        read: |r| {
            json!(fault(r).map(|f| format!(
                "{} ({} vs {})",
                f.errors_in_window,
                percent(f.error_rate_window),
                percent(f.error_rate_baseline)
            )))
        },
    },
    Column {
        name: "p99 ms window (baseline)",
        read: |r| {
            json!(fault(r).map(|f| format!("{:.0} ({:.0})", f.p99_window_ms, f.p99_baseline_ms)))
        },
    },
    Column {
        name: "alerts",
        read: |r| {
            json!(fault(r).map(|f| f
                .alerts
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")))
        },
    },
    Column {
        name: "verdict",
        read: |r| json!(reports::exit_code::describe(r.verdict.exit_code)),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut argv = vec!["scenario", "fault-matrix"];
        argv.extend(args);
        Cli::parse_from_args(argv).unwrap()
    }

    #[test]
    fn the_full_matrix_has_thirty_cells_and_says_why_each_skipped_one_is_skipped() {
        let cells = cells(&cli(&[]));
        assert_eq!(cells.len(), 30);
        let na: Vec<_> = cells
            .iter()
            .filter(|c| c.not_applicable.is_some())
            .collect();
        assert_eq!(na.len(), 7, "{na:#?}");
        for c in &cells {
            match c.not_applicable {
                Some(why) => assert!(!why.is_empty() && c.overrides.is_empty()),
                None => {
                    let at = c.overrides.iter().position(|a| a == "--chaos").unwrap();
                    let spec = &c.overrides[at + 1];
                    chaos::schedule::Schedule::parse(spec, 1).unwrap();
                    assert!(c.overrides.contains(&"local".to_owned()), "{c:?}");
                    assert!(c.overrides.contains(&"--max-recovery".to_owned()), "{c:?}");
                }
            }
        }
        let keys: std::collections::BTreeSet<_> = cells.iter().map(|c| &c.key).collect();
        assert_eq!(keys.len(), 30, "keys are unique: they name directories");
    }

    #[test]
    fn cells_targets_faults_and_strategies_narrow_or_widen_it() {
        let c = cells(&cli(&[
            "--targets",
            "redis,app",
            "--faults",
            "pause,failover",
        ]));
        let keys: Vec<_> = c.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            ["redis-pause", "redis-failover", "app-pause", "app-failover"]
        );
        let c = cells(&cli(&["--cells", "postgres:kill,payments:kill"]));
        assert!(c[0].overrides.join(" ").contains("postgres:kill@4s+4s"));
        assert!(c[0].label.contains("recovery budget"));
        assert!(c[1].overrides.join(" ").contains("payments:down@4s+4s"));
        let c = cells(&cli(&[
            "--cells",
            "kafka:latency",
            "--strategies",
            "atomic,fenced",
            "--rate",
            "40",
            "-t",
            "30s",
        ]));
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].key, "fenced-kafka-latency");
        assert!(
            !c[0].overrides.contains(&"--rate".to_owned()),
            "the user's rate stays"
        );
        assert!(!c[0].overrides.contains(&"-t".to_owned()));
        assert!(cli_err(&["--cells", "postgres"]).contains("COMPONENT:FAULT"));
        assert!(cli_err(&["--targets", "mysql"]).contains("mysql"));
    }

    fn cli_err(args: &[&str]) -> String {
        let mut argv = vec!["scenario", "fault-matrix"];
        argv.extend(args);
        Cli::parse_from_args(argv).unwrap_err().to_string()
    }
}
