//! The browser: looks around and buys nothing — lists events, searches, opens an event,
//! checks a round's availability and seat map, with think times in between.

use std::sync::Arc;

use goose::prelude::*;
use rand::seq::SliceRandom;
use rand::Rng;

use super::steps;
use crate::context::{transaction, RunContext, TxFuture};
use crate::history::OpKind;

/// The persona as a Goose scenario.
pub fn scenario(ctx: &Arc<RunContext>) -> Scenario {
    scenario!("Browser").register_transaction(transaction(ctx, "browse", browse))
}

/// One look around.
pub fn browse(user: &mut GooseUser, ctx: Arc<RunContext>) -> TxFuture<'_> {
    Box::pin(async move {
        let buyer = ctx.buyer(user);
        let mut rng = ctx.rng(user);
        let page = rng.gen_range(1..=2);
        steps::read(
            user,
            &ctx,
            &buyer,
            OpKind::ListEvents,
            &format!("/v1/events?page={page}&per_page=20"),
            None,
        )
        .await?;
        ctx.think(&mut rng).await;
        if let Some(term) = ctx.world.search_terms.choose(&mut rng).cloned() {
            steps::read(
                user,
                &ctx,
                &buyer,
                OpKind::Search,
                &format!("/v1/events?q={term}"),
                None,
            )
            .await?;
            ctx.think(&mut rng).await;
        }
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
        if rng.gen_bool(0.3) {
            ctx.think(&mut rng).await;
            steps::read(
                user,
                &ctx,
                &buyer,
                OpKind::Seats,
                &format!("/v1/rounds/{}/seats", round.id),
                Some(round.id),
            )
            .await?;
        }
        ctx.think(&mut rng).await;
        Ok(())
    })
}
