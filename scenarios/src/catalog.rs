//! The scenarios the `scenario` command knows, with their descriptions and defaults.

use clap::ValueEnum;

/// A scenario name on the command line (`list` prints them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// Describe every scenario.
    List,
    /// N users arrive together for one round of C seats: hold, book, pay.
    FlashSale,
    /// A realistic mix over a duration: browse, search, hold, abandon, book, pay, cancel.
    BrowseAndBuy,
    /// First-come coupon claims against a quota.
    CouponRush,
    /// flash-sale once per concurrency strategy, compared in one table.
    StrategyMatrix,
    /// A stepped ramp of open-model arrival rates, to find the latency knee.
    Capacity,
    /// The runner's own cost: GET /health/live with history on, off, and under wrk.
    Bench,
    /// One leg of `bench`: GET /health/live as fast as possible (run by `bench` as a child).
    #[value(hide = true)]
    Probe,
}

/// Defaults of a scenario; flags override them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// Virtual users.
    pub users: usize,
    /// Seats per round.
    pub seats: usize,
    /// Events seeded.
    pub events: usize,
    /// Rounds per event.
    pub rounds_per_event: usize,
    /// Run time, seconds (None: each user runs once).
    pub run_time_s: Option<usize>,
    /// p99 limit on every transaction, ms.
    pub p99_all_ms: f64,
    /// Most unknown outcomes (timeouts, 5xx), as a fraction of requests.
    pub max_unknown_rate: f64,
}

impl ScenarioName {
    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::List => "list",
            ScenarioName::FlashSale => "flash-sale",
            ScenarioName::BrowseAndBuy => "browse-and-buy",
            ScenarioName::CouponRush => "coupon-rush",
            ScenarioName::StrategyMatrix => "strategy-matrix",
            ScenarioName::Capacity => "capacity",
            ScenarioName::Bench => "bench",
            ScenarioName::Probe => "probe",
        }
    }

    /// Every runnable scenario.
    pub const RUNNABLE: [ScenarioName; 6] = [
        ScenarioName::FlashSale,
        ScenarioName::BrowseAndBuy,
        ScenarioName::CouponRush,
        ScenarioName::StrategyMatrix,
        ScenarioName::Capacity,
        ScenarioName::Bench,
    ];

    /// One line for reports and `scenario list`.
    pub fn description(self) -> &'static str {
        match self {
            ScenarioName::List => "describe every scenario",
            ScenarioName::FlashSale => "N users arrive together for one round of C seats: hold (chosen seats or a quantity), book, pay; checks that no seat is sold twice",
            ScenarioName::BrowseAndBuy => "a realistic mix over a duration: 70% browsers (list, search, event, availability), 30% shoppers (hold, abandon 25%, book, pay, cancel 10%), with think times",
            ScenarioName::CouponRush => "N users claim a first-come coupon with a quota (10% click twice); checks claims <= quota and one per user",
            ScenarioName::StrategyMatrix => "flash-sale once per concurrency strategy (naive, optimistic, pessimistic, atomic) in child processes, compared in one table",
            ScenarioName::Capacity => "flash buyers arriving at a stepped, open-model rate (--rate doubles every --step-secs) to find where the p99 SLO breaks",
            ScenarioName::Bench => "the runner's own cost: requests/s on GET /health/live with history on, off, and under wrk",
            ScenarioName::Probe => "GET /health/live as fast as possible (one leg of bench)",
        }
    }

    /// Defaults.
    pub fn defaults(self) -> Defaults {
        let base = Defaults {
            users: 2000,
            seats: 500,
            events: 1,
            rounds_per_event: 1,
            run_time_s: None,
            p99_all_ms: 5000.0,
            max_unknown_rate: 0.0,
        };
        match self {
            ScenarioName::BrowseAndBuy => Defaults {
                users: 200,
                seats: 500,
                events: 6,
                rounds_per_event: 2,
                run_time_s: Some(30),
                p99_all_ms: 1000.0,
                ..base
            },
            ScenarioName::CouponRush => Defaults {
                users: 2000,
                seats: 25,
                ..base
            },
            ScenarioName::StrategyMatrix => Defaults {
                users: 1000,
                seats: 200,
                ..base
            },
            ScenarioName::Capacity => Defaults {
                users: 200,
                seats: 100_000,
                run_time_s: Some(40),
                p99_all_ms: 250.0,
                max_unknown_rate: 0.01,
                ..base
            },
            ScenarioName::Bench => Defaults {
                users: 64,
                seats: 25,
                run_time_s: Some(5),
                ..base
            },
            _ => base,
        }
    }
}

/// The text of `scenario list`.
pub fn listing() -> String {
    let mut s =
        String::from("Scenarios (scenario NAME [OPTIONS]; scenario --help for every option):\n\n");
    for n in ScenarioName::RUNNABLE {
        let d = n.defaults();
        s.push_str(&format!("  {:<16} {}\n", n.as_str(), n.description()));
        let time = d
            .run_time_s
            .map_or("each user once".to_owned(), |t| format!("{t}s"));
        s.push_str(&format!(
            "  {:<16} defaults: {} users, {} seats, {}\n\n",
            "", d.users, d.seats, time
        ));
    }
    s
}
