//! The prober: `GET /health/live` as fast as it can, for the runner's own benchmark.

use std::sync::Arc;

use goose::prelude::*;

use crate::call::{send, Request};
use crate::context::{transaction, RunContext, TxFuture};
use crate::history::OpKind;

/// The persona as a Goose scenario.
pub fn scenario(ctx: &Arc<RunContext>) -> Scenario {
    scenario!("Prober").register_transaction(transaction(ctx, "live", live))
}

/// One probe.
pub fn live(user: &mut GooseUser, ctx: Arc<RunContext>) -> TxFuture<'_> {
    Box::pin(async move {
        let r = send(
            user,
            &ctx.recorder,
            Request::get(OpKind::Live, "/health/live", None),
        )
        .await?;
        ctx.recorder.record(r.op(0));
        Ok(())
    })
}
