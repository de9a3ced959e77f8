//! Money: what was captured minus what was refunded equals what confirmed bookings are
//! worth, and no idempotency key paid twice.

use std::collections::HashMap;

use reports::Check;

use super::FinalState;
use crate::history::{Op, OpKind, Outcome};

/// captured − refunded = sum of confirmed amounts (database-wide, from the payments audit),
/// no idempotency key used by two payment rows, and no key the client sent acknowledged for
/// two different bookings.
pub fn payments_balance(history: &[Op], state: &FinalState) -> Check {
    const NAME: &str = "payments-balance";
    const DESCRIPTION: &str = "Captured − refunded equals the sum of confirmed bookings, and no idempotency key is used twice.";
    let Some(p) = &state.payments else {
        return Check::skipped(
            NAME,
            DESCRIPTION,
            "the stack's admin API has no payments audit",
        );
    };
    let mut examples = Vec::new();
    let balance = p.captured - p.refunded - p.confirmed;
    if balance != 0 {
        examples.push(format!(
            "captured {} − refunded {} = {} but confirmed bookings are worth {}",
            p.captured,
            p.refunded,
            p.captured - p.refunded,
            p.confirmed
        ));
    }
    let mut keys: HashMap<&str, i64> = HashMap::new();
    let mut reused = 0i64;
    for o in history
        .iter()
        .filter(|o| o.op == OpKind::Pay && o.outcome == Outcome::Ok)
    {
        let (Some(key), Some(booking)) = (o.key.as_deref(), o.booking_id) else {
            continue;
        };
        match keys.get(key) {
            Some(first) if *first != booking => {
                reused += 1;
                examples.push(format!("key {key}: bookings {first} and {booking}"));
            }
            Some(_) => {}
            None => {
                keys.insert(key, booking);
            }
        }
    }
    Check::new(
        NAME,
        DESCRIPTION,
        balance == 0 && p.duplicate_keys == 0 && reused == 0,
    )
    .with_count("captured", p.captured)
    .with_count("refunded", p.refunded)
    .with_count("confirmed", p.confirmed)
    .with_count("imbalance", balance)
    .with_count("duplicate_keys", p.duplicate_keys + reused)
    .with_examples(examples)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn money_captured_for_a_booking_that_is_not_confirmed_breaks_the_balance() {
        let (h, b, hd) = happy_purchase(1, 1, &[1]);
        let mut s = state(vec![b], vec![hd]);
        assert!(payments_balance(&h, &s).passed);
        s.payments.as_mut().unwrap().captured += 100;
        let c = payments_balance(&h, &s);
        assert!(!c.passed);
        assert_eq!(c.counts["imbalance"], 100);
    }

    #[test]
    fn an_idempotency_key_used_twice_fails() {
        let (mut h, b, hd) = happy_purchase(1, 1, &[1]);
        let mut s = state(vec![b], vec![hd]);
        s.payments.as_mut().unwrap().duplicate_keys = 1;
        assert!(!payments_balance(&h, &s).passed);
        s.payments.as_mut().unwrap().duplicate_keys = 0;
        let mut again = pay(2, 2, 100, Outcome::Ok);
        again.key = Some("pay-1".into());
        h.push(again);
        let c = payments_balance(&h, &s);
        assert!(!c.passed);
        assert_eq!(c.counts["duplicate_keys"], 1);
    }
}
