//! The flash-sale buyer: waits for the sale to open with everyone else (or for its slot on
//! the open-model schedule), then holds, books and pays — once.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use goose::prelude::*;

use super::steps;
use crate::context::{transaction, RunContext, Turn, TxFuture};

/// The persona as a Goose scenario.
pub fn scenario(ctx: &Arc<RunContext>) -> Scenario {
    scenario!("FlashBuyer").register_transaction(transaction(ctx, "purchase", purchase))
}

/// Hold → book → pay, stopping at the first refusal.
pub fn purchase(user: &mut GooseUser, ctx: Arc<RunContext>) -> TxFuture<'_> {
    Box::pin(async move {
        let counters = ctx.recorder.counters().clone();
        counters.users_started.fetch_add(1, Ordering::Relaxed);
        let buyer = ctx.buyer(user);
        let mut rng = ctx.rng(user);
        let Turn::Go(intended) = ctx.arrive(user).await else {
            return Ok(());
        };
        let round = &ctx.world.rounds[0];
        if let Some(held) = steps::hold(user, &ctx, &buyer, round, &mut rng, intended).await? {
            if let Some(booked) = steps::book(user, &ctx, &buyer, round, &held).await? {
                steps::pay(user, &ctx, &buyer, round, &booked).await?;
            }
        }
        counters.users_done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
}
