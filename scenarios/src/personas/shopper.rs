//! The shopper: browses a little, then tries to buy — holds, abandons some holds, books,
//! pays, and cancels some paid bookings — with think times in between.

use std::sync::Arc;

use goose::prelude::*;
use rand::seq::SliceRandom;
use rand::Rng;

use super::steps;
use crate::context::{transaction, RunContext, Turn, TxFuture};
use crate::history::OpKind;

/// The persona as a Goose scenario.
pub fn scenario(ctx: &Arc<RunContext>) -> Scenario {
    scenario!("Shopper").register_transaction(transaction(ctx, "shop", shop))
}

/// One shopping trip.
pub fn shop(user: &mut GooseUser, ctx: Arc<RunContext>) -> TxFuture<'_> {
    Box::pin(async move {
        let buyer = ctx.buyer(user);
        let mut rng = ctx.rng(user);
        let Turn::Go(intended) = ctx.arrive(user).await else {
            return Ok(());
        };
        let Some(round) = ctx.world.rounds.choose(&mut rng).cloned() else {
            return Ok(());
        };
        steps::read(
            user,
            &ctx,
            &buyer,
            OpKind::Event,
            &format!("/v1/events/{}", round.event_id),
            None,
        )
        .await?;
        ctx.think(&mut rng).await;
        steps::read(
            user,
            &ctx,
            &buyer,
            OpKind::Availability,
            &format!("/v1/rounds/{}/availability", round.id),
            Some(round.id),
        )
        .await?;
        ctx.think(&mut rng).await;
        let Some(held) = steps::hold(user, &ctx, &buyer, &round, &mut rng, intended).await? else {
            return Ok(());
        };
        ctx.think(&mut rng).await;
        if rng.gen_bool(ctx.knobs.abandon_share.clamp(0.0, 1.0)) {
            return steps::release(user, &ctx, &buyer, &round, &held).await;
        }
        let Some(booked) = steps::book(user, &ctx, &buyer, &round, &held).await? else {
            return Ok(());
        };
        ctx.think(&mut rng).await;
        let paid = steps::pay(user, &ctx, &buyer, &round, &booked).await?;
        if paid && rng.gen_bool(ctx.knobs.cancel_share.clamp(0.0, 1.0)) {
            ctx.think(&mut rng).await;
            steps::cancel(user, &ctx, &buyer, &round, &booked).await?;
        }
        Ok(())
    })
}
