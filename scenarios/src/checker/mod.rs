//! The correctness checker: Jepsen-style invariants over the client history
//! ([`crate::history::Op`]) and the final state read back from the stack ([`FinalState`]).
//!
//! Each invariant is a pure function in its own file that returns a [`reports::Check`] with
//! pass/fail, the numbers behind it and up to ten example ids, so every kind of violation can
//! be unit-tested on a crafted history. Unknown outcomes (timeouts, 5xx) that turn out to have
//! taken effect count as *recovered*, never as errors.
//!
//! - [`seats`]: no seat in two live holds/bookings; available + held + sold = capacity.
//! - [`bookings`]: lost (acknowledged but gone), unexpected (sold without a successful
//!   request), and the recovered unknowns.
//! - [`payments`]: captured − refunded = confirmed; no idempotency key twice.
//! - [`coupons`]: claims ≤ quota, at most one per user, no acknowledged claim lost.

pub mod bookings;
pub mod coupons;
pub mod payments;
pub mod seats;
pub mod state;

pub use state::{
    BookingRecord, CacheReading, CouponAudit, FinalState, HoldRecord, PaymentsAudit, RoundAudit,
    RoundSales, RoundState, SalesTotals,
};

use crate::history::Op;

/// Which families of checks apply to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    /// The run sold seats (holds, bookings, payments).
    pub seats: bool,
    /// The run claimed coupons.
    pub coupons: bool,
}

/// Runs every check that applies and returns them in a stable order.
pub fn check(history: &[Op], state: &FinalState, scope: Scope) -> reports::Correctness {
    let mut checks = Vec::new();
    if scope.seats {
        checks.push(seats::no_double_sale(state));
        checks.push(seats::inventory_balance(state));
        checks.push(bookings::no_lost_bookings(history, state));
        let (unexpected, recovered) = bookings::no_unexpected_sales(history, state);
        checks.push(unexpected);
        checks.push(recovered);
        checks.push(payments::payments_balance(history, state));
    }
    if scope.coupons {
        checks.push(coupons::coupon_quota(history, state));
    }
    if scope.seats {
        checks.push(ledger_matches_bookings(state));
        checks.push(cache_matches_database(state));
    }
    reports::Correctness { checks }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders for crafted histories and final states.

    use super::*;
    use crate::history::{OpKind, Outcome};

    pub fn op(kind: OpKind, user: i64, outcome: Outcome) -> Op {
        Op::new(kind, user, outcome)
    }

    pub fn hold_ok(user: i64, hold: i64, seats: &[i64]) -> Op {
        let mut o = op(OpKind::Hold, user, Outcome::Ok);
        o.round_id = Some(1);
        o.hold_id = Some(hold);
        o.seat_ids = seats.to_vec();
        o
    }

    pub fn book(user: i64, hold: i64, booking: Option<i64>, outcome: Outcome) -> Op {
        let mut o = op(OpKind::Book, user, outcome);
        o.hold_id = Some(hold);
        o.booking_id = booking;
        o
    }

    pub fn pay(user: i64, booking: i64, amount: i64, outcome: Outcome) -> Op {
        let mut o = op(OpKind::Pay, user, outcome);
        o.booking_id = Some(booking);
        o.amount = Some(amount);
        o.key = Some(format!("pay-{booking}"));
        o
    }

    pub fn booking(id: i64, user: i64, hold: i64, status: &str, seats: &[i64]) -> BookingRecord {
        BookingRecord {
            id,
            user_id: user,
            hold_id: hold,
            status: status.into(),
            amount: 100 * seats.len() as i64,
            seat_ids: seats.to_vec(),
        }
    }

    pub fn hold(id: i64, user: i64, status: &str, seats: &[i64]) -> HoldRecord {
        HoldRecord {
            id,
            user_id: user,
            status: status.into(),
            seat_ids: seats.to_vec(),
        }
    }

    /// A consistent round of 10 seats: `bookings` confirmed, the rest available.
    pub fn state(bookings: Vec<BookingRecord>, holds: Vec<HoldRecord>) -> FinalState {
        let sold: i64 = bookings
            .iter()
            .filter(|b| b.status == "confirmed")
            .map(|b| b.seat_ids.len() as i64)
            .sum();
        let held: i64 = holds
            .iter()
            .filter(|h| h.is_live())
            .map(|h| h.seat_ids.len() as i64)
            .sum::<i64>()
            + bookings
                .iter()
                .filter(|b| b.status == "pending_payment")
                .map(|b| b.seat_ids.len() as i64)
                .sum::<i64>();
        let revenue: i64 = bookings
            .iter()
            .filter(|b| b.status == "confirmed")
            .map(|b| b.amount)
            .sum();
        FinalState {
            rounds: vec![RoundState {
                audit: RoundAudit {
                    round_id: 1,
                    capacity: 10,
                    available: 10 - sold - held,
                    held,
                    sold,
                    confirmed_revenue: revenue,
                    ..Default::default()
                },
                bookings: Some(bookings),
                holds: Some(holds),
                sales: None,
                cache: None,
            }],
            payments: Some(PaymentsAudit {
                captured: revenue,
                refunded: 0,
                confirmed: revenue,
                duplicate_keys: 0,
            }),
            coupons: Vec::new(),
        }
    }

    /// A user who held, booked and paid, and the matching final state pieces.
    pub fn happy_purchase(
        user: i64,
        id: i64,
        seats: &[i64],
    ) -> (Vec<Op>, BookingRecord, HoldRecord) {
        let amount = 100 * seats.len() as i64;
        (
            vec![
                hold_ok(user, id, seats),
                book(user, id, Some(id), Outcome::Ok),
                pay(user, id, amount, Outcome::Ok),
            ],
            booking(id, user, id, "confirmed", seats),
            hold(id, user, "booked", seats),
        )
    }
}

/// Each confirmed booking has exactly one ledger effect: the ledger's totals (bookings, seats,
/// revenue) equal the database's once the pipeline has drained.
pub fn ledger_matches_bookings(state: &FinalState) -> reports::Check {
    const NAME: &str = "ledger-matches-bookings";
    const DESCRIPTION: &str = "Each confirmed booking has exactly one ledger effect and ledger totals equal database totals.";
    let sales: Vec<_> = state.rounds.iter().filter_map(|r| r.sales).collect();
    if sales.len() != state.rounds.len() || sales.is_empty() {
        return reports::Check::skipped(
            NAME,
            DESCRIPTION,
            "the stack's admin API has no sales route (/v1/admin/rounds/{id}/sales)",
        );
    }
    let sum = |f: &dyn Fn(&RoundSales) -> i64| sales.iter().map(f).sum::<i64>();
    let db_bookings = sum(&|s| s.database.confirmed_bookings);
    let ledger_bookings = sum(&|s| s.ledger.confirmed_bookings);
    let db_seats = sum(&|s| s.database.seats_sold);
    let ledger_seats = sum(&|s| s.ledger.seats_sold);
    let db_revenue = sum(&|s| s.database.revenue);
    let ledger_revenue = sum(&|s| s.ledger.revenue);
    let mismatched: Vec<String> = state
        .rounds
        .iter()
        .filter_map(|r| r.sales.map(|s| (r.audit.round_id, s)))
        .filter(|(_, s)| s.database != s.ledger)
        .map(|(id, s)| {
            format!(
                "round {id}: database {} bookings / {} seats / {} revenue, ledger {} / {} / {}",
                s.database.confirmed_bookings,
                s.database.seats_sold,
                s.database.revenue,
                s.ledger.confirmed_bookings,
                s.ledger.seats_sold,
                s.ledger.revenue
            )
        })
        .collect();
    let waited = sales.iter().map(|s| s.waited_ms).max().unwrap_or(0);
    reports::Check::new(NAME, DESCRIPTION, mismatched.is_empty())
        .with_count("database_bookings", db_bookings)
        .with_count("ledger_bookings", ledger_bookings)
        .with_count("database_seats", db_seats)
        .with_count("ledger_seats", ledger_seats)
        .with_count("database_revenue", db_revenue)
        .with_count("ledger_revenue", ledger_revenue)
        .with_count("waited_ms", waited)
        .with_examples(mismatched)
}

/// After quiescence the cache serves what the database has: right after the run, or at the
/// latest once the cache's TTL has passed (the bound on a lost invalidation).
pub fn cache_matches_database(state: &FinalState) -> reports::Check {
    const NAME: &str = "cache-matches-database";
    const DESCRIPTION: &str = "After quiescence, cached availability equals database availability (at the latest after the cache TTL).";
    let readings: Vec<(i64, CacheReading)> = state
        .rounds
        .iter()
        .filter_map(|r| r.cache.map(|c| (r.audit.round_id, c)))
        .collect();
    if readings.is_empty() {
        return reports::Check::skipped(
            NAME,
            DESCRIPTION,
            "the public availability could not be read",
        );
    }
    let stale_at_end = readings
        .iter()
        .filter(|(_, c)| c.cached_available != c.database_available)
        .count() as i64;
    let stale: Vec<String> = readings
        .iter()
        .filter(|(_, c)| c.after_ttl_available != c.database_available)
        .map(|(id, c)| {
            format!(
                "round {id}: cache says {} free after the TTL, database {}",
                c.after_ttl_available, c.database_available
            )
        })
        .collect();
    reports::Check::new(NAME, DESCRIPTION, stale.is_empty())
        .with_count("rounds", readings.len() as i64)
        .with_count("stale_right_after_run", stale_at_end)
        .with_count("stale_after_ttl", stale.len() as i64)
        .with_examples(stale)
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn a_clean_history_passes_every_check_that_runs() {
        let (mut h, b1, h1) = happy_purchase(1, 1, &[1, 2]);
        let (h2ops, b2, h2) = happy_purchase(2, 2, &[3]);
        h.extend(h2ops);
        let state = state(vec![b1, b2], vec![h1, h2]);
        let c = check(
            &h,
            &state,
            Scope {
                seats: true,
                coupons: false,
            },
        );
        for c in &c.checks {
            assert!(c.passed || c.skipped_reason.is_some(), "{c:?}");
        }
        assert!(c.outcomes().iter().all(|o| o.passed));
    }

    fn round(sales: Option<RoundSales>, cache: Option<CacheReading>) -> FinalState {
        FinalState {
            rounds: vec![RoundState {
                audit: RoundAudit {
                    round_id: 7,
                    ..Default::default()
                },
                sales,
                cache,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_ledger_behind_the_database_fails_and_says_by_how_much() {
        let db = SalesTotals {
            confirmed_bookings: 10,
            seats_sold: 20,
            revenue: 2000,
        };
        let equal = RoundSales {
            database: db,
            ledger: db,
            waited_ms: 400,
        };
        let c = ledger_matches_bookings(&round(Some(equal), None));
        assert!(c.passed, "{c:?}");
        assert_eq!(c.counts["waited_ms"], 400);
        let behind = RoundSales {
            ledger: SalesTotals {
                confirmed_bookings: 9,
                seats_sold: 18,
                revenue: 1800,
            },
            ..equal
        };
        let c = ledger_matches_bookings(&round(Some(behind), None));
        assert!(!c.passed);
        assert_eq!(c.counts["ledger_bookings"], 9);
        assert!(c.examples[0].contains("round 7"), "{:?}", c.examples);
        let none = ledger_matches_bookings(&round(None, None));
        assert!(none.skipped_reason.is_some());
    }

    #[test]
    fn a_cache_may_lag_until_its_ttl_but_not_after() {
        let reading = |cached, after| CacheReading {
            cached_available: cached,
            after_ttl_available: after,
            database_available: 5,
        };
        let lagging = cache_matches_database(&round(None, Some(reading(6, 5))));
        assert!(lagging.passed, "{lagging:?}");
        assert_eq!(lagging.counts["stale_right_after_run"], 1);
        let stale = cache_matches_database(&round(None, Some(reading(6, 6))));
        assert!(!stale.passed);
        assert_eq!(stale.counts["stale_after_ttl"], 1);
        assert!(cache_matches_database(&round(None, None))
            .skipped_reason
            .is_some());
    }
}
