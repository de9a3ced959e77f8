//! The coupon hunter: waits for the coupon drop with everyone else, claims it, and — being
//! human — sometimes clicks twice.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use goose::prelude::*;
use rand::Rng;

use crate::call::{send, Request};
use crate::context::{transaction, RunContext, Turn, TxFuture};
use crate::history::OpKind;

/// The persona as a Goose scenario.
pub fn scenario(ctx: &Arc<RunContext>) -> Scenario {
    scenario!("CouponHunter").register_transaction(transaction(ctx, "claim", claim))
}

/// Claims the run's coupon (twice for the configured share of users).
pub fn claim(user: &mut GooseUser, ctx: Arc<RunContext>) -> TxFuture<'_> {
    Box::pin(async move {
        let counters = ctx.recorder.counters().clone();
        counters.users_started.fetch_add(1, Ordering::Relaxed);
        let buyer = ctx.buyer(user);
        let mut rng = ctx.rng(user);
        let Turn::Go(intended) = ctx.arrive(user).await else {
            return Ok(());
        };
        let Some(code) = ctx.world.coupons.first().cloned() else {
            return Ok(());
        };
        let path = format!("/v1/coupons/{code}/claims");
        let clicks = if rng.gen_bool(ctx.knobs.double_claim_share.clamp(0.0, 1.0)) {
            2
        } else {
            1
        };
        let mut refusals = 0;
        let mut click = 0;
        while click < clicks {
            let req = Request {
                body: None,
                ..Request::post(OpKind::Claim, &path, &buyer.token, serde_json::Value::Null)
            };
            let r = send(user, &ctx.recorder, req).await?;
            let mut op = r.op(buyer.id);
            op.coupon = Some(code.clone());
            if click == 0 && refusals == 0 {
                op.intended_ms = intended;
            }
            ctx.recorder.record(op);
            refusals += u32::from(r.not_started());
            // Refused past capacity: the same click again, later.
            if let Some(wait) = ctx.after_refusal(&r, refusals, &mut rng) {
                tokio::time::sleep(wait).await;
                continue;
            }
            click += 1;
        }
        counters.users_done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
}
