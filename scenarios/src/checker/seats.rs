//! Seat invariants: no seat in two live claims, and the inventory adds up.

use std::collections::BTreeMap;

use reports::Check;

use super::FinalState;

/// No seat of a round is claimed by two live holds or bookings. Counts the extra claims from
/// the listed holds and bookings (`oversold`) and as the database's audit reports them
/// (`audit_oversold`); either above 0 fails.
pub fn no_double_sale(state: &FinalState) -> Check {
    let mut oversold = 0i64;
    let mut audit_oversold = 0i64;
    let mut seats_double_claimed = 0i64;
    let mut examples = Vec::new();
    let mut listed = true;
    for round in &state.rounds {
        audit_oversold += round.audit.oversold;
        let (Some(bookings), Some(holds)) = (&round.bookings, &round.holds) else {
            listed = false;
            oversold += round.audit.oversold;
            seats_double_claimed += round.audit.seats_double_claimed;
            examples.extend(
                round
                    .audit
                    .examples
                    .iter()
                    .map(|s| format!("seat {s} (round {})", round.audit.round_id)),
            );
            continue;
        };
        let mut claims: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for b in bookings.iter().filter(|b| b.is_live()) {
            for s in &b.seat_ids {
                claims
                    .entry(*s)
                    .or_default()
                    .push(format!("booking {}", b.id));
            }
        }
        for h in holds.iter().filter(|h| h.is_live()) {
            for s in &h.seat_ids {
                claims.entry(*s).or_default().push(format!("hold {}", h.id));
            }
        }
        for (seat, by) in claims.iter().filter(|(_, by)| by.len() > 1) {
            seats_double_claimed += 1;
            oversold += by.len() as i64 - 1;
            examples.push(format!("seat {seat}: {}", by.join(", ")));
        }
    }
    Check::new(
        "no-double-sale",
        "No seat of a round is in two live holds or bookings.",
        oversold == 0 && audit_oversold == 0,
    )
    .with_count("seats_double_claimed", seats_double_claimed)
    .with_count("oversold", oversold)
    .with_count("audit_oversold", audit_oversold)
    .with_count("rounds", state.rounds.len() as i64)
    .with_count("from_listings", i64::from(listed))
    .with_examples(examples)
}

/// Confirmed (sold) + held + free = capacity for every round, none negative.
pub fn inventory_balance(state: &FinalState) -> Check {
    let mut broken = Vec::new();
    let (mut capacity, mut available, mut held, mut sold) = (0, 0, 0, 0);
    for round in &state.rounds {
        let a = &round.audit;
        capacity += a.capacity;
        available += a.available;
        held += a.held;
        sold += a.sold;
        if a.available < 0
            || a.held < 0
            || a.sold < 0
            || a.available + a.held + a.sold != a.capacity
        {
            broken.push(format!(
                "round {}: {} free + {} held + {} sold != {} seats",
                a.round_id, a.available, a.held, a.sold, a.capacity
            ));
        }
    }
    Check::new(
        "inventory-balance",
        "Sold + held + free seats equal the capacity of each round, and none is negative.",
        broken.is_empty(),
    )
    .with_count("capacity", capacity)
    .with_count("available", available)
    .with_count("held", held)
    .with_count("sold", sold)
    .with_count("rounds_broken", broken.len() as i64)
    .with_examples(broken)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn a_seat_in_two_confirmed_bookings_is_reported_as_oversold() {
        let mut s = state(
            vec![
                booking(1, 1, 1, "confirmed", &[5, 6]),
                booking(2, 2, 2, "confirmed", &[6]),
            ],
            vec![],
        );
        s.rounds[0].audit.oversold = 1;
        s.rounds[0].audit.seats_double_claimed = 1;
        let c = no_double_sale(&s);
        assert!(!c.passed);
        assert_eq!(c.counts["oversold"], 1);
        assert_eq!(c.counts["audit_oversold"], 1);
        assert_eq!(c.examples, vec!["seat 6: booking 1, booking 2"]);
    }

    #[test]
    fn a_seat_in_a_live_hold_and_a_booking_is_a_double_claim_but_a_booked_hold_is_not() {
        let s = state(
            vec![booking(1, 1, 1, "confirmed", &[3])],
            vec![
                hold(1, 1, "booked", &[3]),
                hold(2, 2, "active", &[3]),
                hold(3, 3, "released", &[3]),
            ],
        );
        let c = no_double_sale(&s);
        assert!(!c.passed);
        assert_eq!(c.counts["oversold"], 1);
        assert_eq!(c.examples, vec!["seat 3: booking 1, hold 2"]);
    }

    #[test]
    fn an_oversell_only_the_audit_sees_still_fails() {
        let mut s = state(vec![], vec![]);
        s.rounds[0].audit.oversold = 2;
        assert!(!no_double_sale(&s).passed);
    }

    #[test]
    fn seats_beyond_capacity_break_the_inventory_balance() {
        let mut s = state(vec![booking(1, 1, 1, "confirmed", &[1])], vec![]);
        assert!(inventory_balance(&s).passed);
        s.rounds[0].audit.sold += 3;
        let c = inventory_balance(&s);
        assert!(!c.passed);
        assert_eq!(c.counts["rounds_broken"], 1);
        s.rounds[0].audit.sold = 1;
        s.rounds[0].audit.available = -1;
        s.rounds[0].audit.held = 10;
        assert!(
            !inventory_balance(&s).passed,
            "a negative count must fail even when the sum matches"
        );
    }
}
