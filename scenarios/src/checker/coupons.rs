//! Coupons: claims within the quota, at most one per user, no acknowledged claim lost.

use std::collections::BTreeMap;

use reports::Check;

use super::FinalState;
use crate::history::{Op, OpKind, Outcome};

/// For every coupon the run touched: claim rows ≤ quota and at most one per user (from the
/// database's audit), acknowledged claims ≤ quota, no user acknowledged twice, and at least
/// as many claim rows as acknowledged claims (none lost).
pub fn coupon_quota(history: &[Op], state: &FinalState) -> Check {
    const NAME: &str = "coupon-quota";
    const DESCRIPTION: &str = "Coupon claims stay within the quota, at most one per user, and no acknowledged claim is lost.";
    if state.coupons.is_empty() {
        return Check::skipped(NAME, DESCRIPTION, "no coupon audit was read");
    }
    let mut acked: BTreeMap<&str, BTreeMap<i64, i64>> = BTreeMap::new();
    for o in history
        .iter()
        .filter(|o| o.op == OpKind::Claim && o.outcome == Outcome::Ok)
    {
        if let Some(code) = o.coupon.as_deref() {
            *acked.entry(code).or_default().entry(o.user).or_default() += 1;
        }
    }
    let mut examples = Vec::new();
    let (mut over_quota, mut several, mut lost, mut claims, mut quota, mut acknowledged) =
        (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
    let mut counter = 0i64;
    for c in &state.coupons {
        claims += c.claims;
        counter += c.counter;
        quota += c.quota;
        let users = acked.get(c.code.as_str()).cloned().unwrap_or_default();
        let acks: i64 = users.values().sum();
        acknowledged += acks;
        if c.claims > c.quota || acks > c.quota {
            over_quota += (c.claims - c.quota).max(acks - c.quota).max(0);
            examples.push(format!(
                "coupon {}: {} claims ({} acknowledged) for a quota of {}",
                c.code, c.claims, acks, c.quota
            ));
        }
        let twice: Vec<i64> = users
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(u, _)| *u)
            .collect();
        let n_several = c.users_with_several_claims.max(twice.len() as i64);
        several += n_several;
        examples.extend(
            c.examples
                .iter()
                .chain(twice.iter())
                .map(|u| format!("coupon {}: user {u} claimed twice", c.code)),
        );
        if acks > c.claims {
            lost += acks - c.claims;
            examples.push(format!(
                "coupon {}: {} claims acknowledged, {} stored",
                c.code, acks, c.claims
            ));
        }
    }
    examples.dedup();
    Check::new(
        NAME,
        DESCRIPTION,
        over_quota == 0 && several == 0 && lost == 0,
    )
    .with_count("quota", quota)
    .with_count("claims", claims)
    .with_count("counter", counter)
    .with_count("acknowledged", acknowledged)
    .with_count("over_quota", over_quota)
    .with_count("users_with_several_claims", several)
    .with_count("lost", lost)
    .with_examples(examples)
}

#[cfg(test)]
mod tests {
    use super::super::{CouponAudit, FinalState};
    use super::*;

    fn claim(user: i64, outcome: Outcome) -> Op {
        let mut o = Op::new(OpKind::Claim, user, outcome);
        o.coupon = Some("RUSH".into());
        o
    }

    fn with(claims: i64, quota: i64, several: i64) -> FinalState {
        FinalState {
            coupons: vec![CouponAudit {
                code: "RUSH".into(),
                quota,
                counter: claims,
                claims,
                users_with_several_claims: several,
                examples: if several > 0 { vec![4] } else { vec![] },
            }],
            ..Default::default()
        }
    }

    #[test]
    fn claims_within_quota_one_per_user_pass() {
        let h = vec![
            claim(1, Outcome::Ok),
            claim(2, Outcome::Ok),
            claim(3, Outcome::Rejected),
        ];
        assert!(coupon_quota(&h, &with(2, 2, 0)).passed);
    }

    #[test]
    fn claims_over_the_quota_fail() {
        let h = vec![
            claim(1, Outcome::Ok),
            claim(2, Outcome::Ok),
            claim(3, Outcome::Ok),
        ];
        let c = coupon_quota(&h, &with(3, 2, 0));
        assert!(!c.passed);
        assert_eq!(c.counts["over_quota"], 1);
    }

    #[test]
    fn a_user_with_two_claims_fails() {
        let c = coupon_quota(&[], &with(2, 5, 1));
        assert!(!c.passed);
        assert_eq!(c.examples, vec!["coupon RUSH: user 4 claimed twice"]);
        let h = vec![claim(7, Outcome::Ok), claim(7, Outcome::Ok)];
        assert!(
            !coupon_quota(&h, &with(2, 5, 0)).passed,
            "two acknowledgements for one user"
        );
    }

    #[test]
    fn an_acknowledged_claim_missing_from_the_database_is_lost() {
        let h = vec![claim(1, Outcome::Ok), claim(2, Outcome::Ok)];
        let c = coupon_quota(&h, &with(1, 5, 0));
        assert!(!c.passed);
        assert_eq!(c.counts["lost"], 1);
    }
}
