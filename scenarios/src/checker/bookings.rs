//! Bookings against the history: nothing acknowledged is lost, nothing is sold that no
//! request could have caused, and unknown outcomes that took effect are "recovered".

use std::collections::{HashMap, HashSet};

use reports::Check;

use super::{BookingRecord, FinalState, HoldRecord};
use crate::history::{Op, OpKind, Outcome};

fn listed_bookings(state: &FinalState) -> Option<HashMap<i64, &BookingRecord>> {
    let mut all = HashMap::new();
    for r in &state.rounds {
        for b in r.bookings.as_ref()? {
            all.insert(b.id, b);
        }
    }
    Some(all)
}

fn listed_holds(state: &FinalState) -> Option<Vec<(i64, &HoldRecord)>> {
    let mut all = Vec::new();
    for r in &state.rounds {
        for h in r.holds.as_ref()? {
            all.push((r.audit.round_id, h));
        }
    }
    Some(all)
}

/// The acknowledged bookings missing from the final state, each with the time its
/// acknowledgement completed (ms since the history's epoch); `None` when the stack's admin
/// API does not list bookings. The failover report attributes them to faults.
pub fn lost_bookings(history: &[Op], state: &FinalState) -> Option<Vec<(f64, String)>> {
    listed_bookings(state).map(|finals| lost_in(history, &finals))
}

fn lost_in(history: &[Op], finals: &HashMap<i64, &BookingRecord>) -> Vec<(f64, String)> {
    let cancel_asked: HashSet<i64> = history
        .iter()
        .filter(|o| o.op == OpKind::Cancel && o.outcome.happened() != Some(false))
        .filter_map(|o| o.booking_id)
        .collect();
    let mut lost = Vec::new();
    let mut seen = HashSet::new();
    for o in history.iter().filter(|o| o.outcome == Outcome::Ok) {
        let Some(id) = o.booking_id else { continue };
        match o.op {
            OpKind::Book if !finals.contains_key(&id) && seen.insert(id) => {
                lost.push((
                    o.complete_ms,
                    format!("booking {id}: created, then missing"),
                ));
            }
            OpKind::Pay => {
                let status = finals.get(&id).map(|b| b.status.as_str());
                if status != Some("confirmed") && !cancel_asked.contains(&id) && seen.insert(id) {
                    lost.push((
                        o.complete_ms,
                        format!("booking {id}: paid, now {}", status.unwrap_or("missing")),
                    ));
                }
            }
            _ => {}
        }
    }
    lost
}

/// Lost = acknowledged − final: a booking whose payment was acknowledged (200) must be
/// confirmed at the end unless its owner asked to cancel it; a booking whose creation was
/// acknowledged must still exist.
pub fn no_lost_bookings(history: &[Op], state: &FinalState) -> Check {
    const NAME: &str = "no-lost-bookings";
    const DESCRIPTION: &str = "Every acknowledged booking exists afterwards, and every acknowledged payment is still confirmed unless cancelled.";
    let Some(finals) = listed_bookings(state) else {
        return Check::skipped(
            NAME,
            DESCRIPTION,
            "the stack's admin API does not list bookings",
        );
    };
    let lost = lost_in(history, &finals);
    let acknowledged = |kind: OpKind| {
        history
            .iter()
            .filter(|o| o.outcome == Outcome::Ok && o.op == kind && o.booking_id.is_some())
            .count() as i64
    };
    let acknowledged_created = acknowledged(OpKind::Book);
    let acknowledged_paid = acknowledged(OpKind::Pay);
    let lost: Vec<String> = lost.into_iter().map(|(_, what)| what).collect();
    let confirmed = finals.values().filter(|b| b.status == "confirmed").count() as i64;
    Check::new(NAME, DESCRIPTION, lost.is_empty())
        .with_count("acknowledged_created", acknowledged_created)
        .with_count("acknowledged_paid", acknowledged_paid)
        .with_count("final_confirmed", confirmed)
        .with_count("lost", lost.len() as i64)
        .with_examples(lost)
}

/// Unexpected = final − attempted: every booking must come from a booking request that
/// succeeded (or whose outcome is unknown: recovered), every confirmed booking from a
/// payment that succeeded (or is unknown: recovered), every live hold from a hold request.
/// Returns the unexpected check and the informational "unknown outcomes" check.
pub fn no_unexpected_sales(history: &[Op], state: &FinalState) -> (Check, Check) {
    const NAME: &str = "no-unexpected-sales";
    const DESCRIPTION: &str =
        "Nothing was booked, paid or held by a request that definitely failed or was never sent.";
    const RNAME: &str = "unknown-outcomes";
    const RDESCRIPTION: &str = "Requests whose outcome the client could not know (timeouts, 5xx); those that took effect are recovered, not errors.";
    let unknown_writes = history
        .iter()
        .filter(|o| o.op.is_write() && o.outcome == Outcome::Unknown)
        .count() as i64;
    let (Some(finals), Some(holds)) = (listed_bookings(state), listed_holds(state)) else {
        let reason = "the stack's admin API does not list bookings and holds";
        return (
            Check::skipped(NAME, DESCRIPTION, reason),
            Check::new(RNAME, RDESCRIPTION, true).with_count("unknown", unknown_writes),
        );
    };
    let mut created_ok: HashSet<i64> = HashSet::new();
    let mut book_unknown_holds: HashSet<i64> = HashSet::new();
    let mut paid_ok: HashSet<i64> = HashSet::new();
    let mut pay_unknown: HashSet<i64> = HashSet::new();
    let mut holds_ok: HashSet<i64> = HashSet::new();
    let mut hold_unknown: HashSet<(i64, Option<i64>)> = HashSet::new();
    for o in history {
        match (o.op, o.outcome) {
            (OpKind::Book, Outcome::Ok) => created_ok.extend(o.booking_id),
            (OpKind::Book, Outcome::Unknown) => book_unknown_holds.extend(o.hold_id),
            (OpKind::Pay, Outcome::Ok) => paid_ok.extend(o.booking_id),
            (OpKind::Pay, Outcome::Unknown) => pay_unknown.extend(o.booking_id),
            (OpKind::Hold, Outcome::Ok) => holds_ok.extend(o.hold_id),
            (OpKind::Hold, Outcome::Unknown) => {
                hold_unknown.insert((o.user, o.round_id));
            }
            _ => {}
        }
    }
    let mut unexpected = Vec::new();
    let mut recovered = Vec::new();
    let mut ids: Vec<&i64> = finals.keys().collect();
    ids.sort();
    for id in ids {
        let b = finals[id];
        if !created_ok.contains(&b.id) {
            if book_unknown_holds.contains(&b.hold_id) {
                recovered.push(format!("booking {} (unknown create)", b.id));
            } else {
                unexpected.push(format!("booking {}: no request created it", b.id));
                continue;
            }
        }
        if b.status == "confirmed" && !paid_ok.contains(&b.id) {
            if pay_unknown.contains(&b.id) {
                recovered.push(format!("booking {} (unknown payment)", b.id));
            } else {
                unexpected.push(format!(
                    "booking {}: confirmed, but no payment succeeded",
                    b.id
                ));
            }
        }
    }
    let mut live_holds: Vec<_> = holds
        .iter()
        .filter(|(_, h)| h.status != "released")
        .collect();
    live_holds.sort_by_key(|(_, h)| h.id);
    for (round, h) in live_holds {
        if holds_ok.contains(&h.id) {
            continue;
        }
        if hold_unknown.contains(&(h.user_id, Some(*round)))
            || hold_unknown.contains(&(h.user_id, None))
        {
            recovered.push(format!("hold {} (unknown hold)", h.id));
        } else {
            unexpected.push(format!("hold {}: no request placed it", h.id));
        }
    }
    let unexpected_check = Check::new(NAME, DESCRIPTION, unexpected.is_empty())
        .with_count("final_bookings", finals.len() as i64)
        .with_count(
            "final_confirmed",
            finals.values().filter(|b| b.status == "confirmed").count() as i64,
        )
        .with_count("unexpected", unexpected.len() as i64)
        .with_examples(unexpected);
    let recovered_check = Check::new(RNAME, RDESCRIPTION, true)
        .with_count("unknown", unknown_writes)
        .with_count("recovered", recovered.len() as i64)
        .with_examples(recovered);
    (unexpected_check, recovered_check)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn a_paid_booking_that_ends_expired_is_lost() {
        let (h, mut b, hd) = happy_purchase(1, 1, &[1]);
        b.status = "expired".into();
        let c = no_lost_bookings(&h, &state(vec![b], vec![hd]));
        assert!(!c.passed);
        assert_eq!(c.counts["lost"], 1);
        assert_eq!(c.examples, vec!["booking 1: paid, now expired"]);
    }

    #[test]
    fn a_created_booking_that_vanished_is_lost() {
        let (h, _, hd) = happy_purchase(1, 1, &[1]);
        let c = no_lost_bookings(&h, &state(vec![], vec![hd]));
        assert!(!c.passed);
        assert_eq!(c.examples[0], "booking 1: created, then missing");
    }

    #[test]
    fn a_paid_booking_its_owner_cancelled_is_not_lost() {
        let (mut h, mut b, hd) = happy_purchase(1, 1, &[1]);
        let mut cancel = op(OpKind::Cancel, 1, Outcome::Ok);
        cancel.booking_id = Some(1);
        h.push(cancel);
        b.status = "cancelled".into();
        assert!(no_lost_bookings(&h, &state(vec![b], vec![hd])).passed);
    }

    #[test]
    fn a_confirmed_booking_whose_payment_was_declined_is_unexpected() {
        let (mut h, b, hd) = happy_purchase(1, 1, &[1]);
        h[2].outcome = Outcome::Rejected;
        h[2].status = Some(402);
        let (c, _) = no_unexpected_sales(&h, &state(vec![b], vec![hd]));
        assert!(!c.passed);
        assert_eq!(c.counts["unexpected"], 1);
        assert_eq!(
            c.examples,
            vec!["booking 1: confirmed, but no payment succeeded"]
        );
    }

    #[test]
    fn a_booking_no_request_created_is_unexpected() {
        let (h, _, hd) = happy_purchase(1, 1, &[1]);
        let ghost = booking(9, 2, 7, "confirmed", &[4]);
        let (c, _) = no_unexpected_sales(&h, &state(vec![ghost], vec![hd]));
        assert!(!c.passed);
        assert!(
            c.examples
                .iter()
                .any(|e| e == "booking 9: no request created it"),
            "{c:?}"
        );
    }

    #[test]
    fn a_hold_no_request_placed_is_unexpected() {
        let (h, b, hd) = happy_purchase(1, 1, &[1]);
        let (c, _) = no_unexpected_sales(&h, &state(vec![b], vec![hd, hold(5, 3, "active", &[2])]));
        assert!(!c.passed);
        assert_eq!(c.examples, vec!["hold 5: no request placed it"]);
    }

    #[test]
    fn an_unknown_payment_that_took_effect_is_recovered_not_unexpected() {
        let (mut h, b, hd) = happy_purchase(1, 1, &[1]);
        h[2].outcome = Outcome::Unknown;
        h[2].status = Some(503);
        let s = state(vec![b], vec![hd]);
        let (c, r) = no_unexpected_sales(&h, &s);
        assert!(c.passed, "{c:?}");
        assert!(r.passed);
        assert_eq!(r.counts["recovered"], 1);
        assert_eq!(r.counts["unknown"], 1);
        assert!(
            no_lost_bookings(&h, &s).passed,
            "an unknown payment is not an acknowledgement"
        );
    }

    #[test]
    fn an_unknown_booking_request_that_created_a_booking_is_recovered() {
        let (mut h, b, hd) = happy_purchase(1, 1, &[1]);
        h[1] = book(1, 1, None, Outcome::Unknown);
        let (c, r) = no_unexpected_sales(&h, &state(vec![b], vec![hd]));
        assert!(c.passed, "{c:?}");
        assert_eq!(r.counts["recovered"], 1);
    }

    #[test]
    fn without_listings_the_history_checks_are_skipped_not_passed() {
        let (h, b, hd) = happy_purchase(1, 1, &[1]);
        let mut s = state(vec![b], vec![hd]);
        s.rounds[0].bookings = None;
        let c = no_lost_bookings(&h, &s);
        assert!(c.skipped_reason.is_some() && !c.passed);
    }
}
