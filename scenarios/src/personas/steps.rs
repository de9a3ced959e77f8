//! The buying steps personas share: hold (chosen seats or a quantity), book, pay (retried
//! once with the same idempotency key when the outcome is unknown), release, cancel. Each
//! step records its history entry with the ids involved.

use goose::prelude::*;
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::json;

use crate::call::{send, Request};
use crate::context::RunContext;
use crate::history::{OpKind, Outcome};
use crate::seed::{SeededRound, SeededUser};

/// A hold that was granted.
#[derive(Debug, Clone)]
pub struct Held {
    /// Hold id.
    pub id: i64,
    /// Seats.
    pub seat_ids: Vec<i64>,
    /// Price, minor units.
    pub amount: i64,
}

/// A booking that was created.
#[derive(Debug, Clone)]
pub struct Booked {
    /// Booking id.
    pub id: i64,
    /// Amount due.
    pub amount: i64,
}

/// How many seats a buyer wants: 1 (30%), 2 (40%), 3 (20%), 4 (10%).
pub fn party_size(rng: &mut SmallRng) -> usize {
    match rng.gen_range(0..10) {
        0..=2 => 1,
        3..=6 => 2,
        7..=8 => 3,
        _ => 4,
    }
}

/// Holds seats: adjacent chosen seats (with the configured share) falling back once to
/// best-available on a conflict, or a quantity. `intended_ms` is the open-model start.
pub async fn hold(
    user: &mut GooseUser,
    ctx: &RunContext,
    buyer: &SeededUser,
    round: &SeededRound,
    rng: &mut SmallRng,
    intended_ms: Option<f64>,
) -> Result<Option<Held>, Box<TransactionError>> {
    let n = party_size(rng);
    let path = format!("/v1/rounds/{}/holds", round.id);
    let chosen =
        !round.seat_ids.is_empty() && rng.gen_bool(ctx.knobs.chosen_seats_share.clamp(0.0, 1.0));
    let mut body = if chosen {
        let start = rng.gen_range(0..round.seat_ids.len());
        let seats: Vec<i64> = round.seat_ids[start..(start + n).min(round.seat_ids.len())].to_vec();
        json!({ "seat_ids": seats })
    } else {
        json!({ "quantity": n })
    };
    let mut intended = intended_ms;
    let mut refusals = 0;
    loop {
        let asked: Vec<i64> = body
            .get("seat_ids")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_i64()).collect())
            .unwrap_or_default();
        let r = send(
            user,
            &ctx.recorder,
            Request::post(OpKind::Hold, &path, &buyer.token, body.clone()),
        )
        .await?;
        let mut op = r.op(buyer.id);
        // The arrival's own due time for its first request; the retry keeps the corrected
        // start `send` gave it.
        if let Some(due) = intended.take() {
            op.intended_ms = Some(due);
        }
        op.round_id = Some(round.id);
        if r.is_ok() {
            op.hold_id = r.i64("id");
            op.seat_ids = r.ids("seat_ids");
            op.amount = r.i64("amount");
            let held = Held {
                id: op.hold_id.unwrap_or_default(),
                seat_ids: op.seat_ids.clone(),
                amount: op.amount.unwrap_or_default(),
            };
            ctx.recorder.record(op);
            return Ok(Some(held));
        }
        op.seat_ids = asked.clone();
        ctx.recorder.record(op);
        refusals += u32::from(r.not_started());
        if let Some(wait) = ctx.after_refusal(&r, refusals, rng) {
            tokio::time::sleep(wait).await;
            continue;
        }
        // A buyer whose chosen seats went takes the best available ones, once.
        if r.error.as_deref() == Some("seats_unavailable") && !asked.is_empty() {
            body = json!({ "quantity": asked.len() });
            continue;
        }
        return Ok(None);
    }
}

/// Books a hold.
pub async fn book(
    user: &mut GooseUser,
    ctx: &RunContext,
    buyer: &SeededUser,
    round: &SeededRound,
    held: &Held,
) -> Result<Option<Booked>, Box<TransactionError>> {
    let r = send(
        user,
        &ctx.recorder,
        Request::post(
            OpKind::Book,
            "/v1/bookings",
            &buyer.token,
            json!({ "hold_id": held.id }),
        ),
    )
    .await?;
    let mut op = r.op(buyer.id);
    op.round_id = Some(round.id);
    op.hold_id = Some(held.id);
    op.seat_ids = held.seat_ids.clone();
    let booked = if r.is_ok() {
        op.booking_id = r.i64("id");
        op.amount = r.i64("amount");
        Some(Booked {
            id: op.booking_id.unwrap_or_default(),
            amount: op.amount.unwrap_or(held.amount),
        })
    } else {
        None
    };
    ctx.recorder.record(op);
    Ok(booked)
}

/// Pays a booking with a per-booking idempotency key; an unknown outcome is retried once
/// with the same key. Returns whether the booking is confirmed as far as the client knows.
pub async fn pay(
    user: &mut GooseUser,
    ctx: &RunContext,
    buyer: &SeededUser,
    round: &SeededRound,
    booked: &Booked,
) -> Result<bool, Box<TransactionError>> {
    let path = format!("/v1/bookings/{}/pay", booked.id);
    let key = format!("lab-{}-{}", ctx.seed, booked.id);
    for _attempt in 0..2 {
        let mut req = Request::post(
            OpKind::Pay,
            &path,
            &buyer.token,
            json!({ "amount": booked.amount }),
        );
        req.key = Some(&key);
        let r = send(user, &ctx.recorder, req).await?;
        let mut op = r.op(buyer.id);
        op.round_id = Some(round.id);
        op.booking_id = Some(booked.id);
        op.amount = Some(booked.amount);
        op.key = Some(key.clone());
        let outcome = op.outcome;
        ctx.recorder.record(op);
        match outcome {
            Outcome::Ok => return Ok(true),
            Outcome::Rejected | Outcome::Error => return Ok(false),
            Outcome::Unknown => continue,
        }
    }
    Ok(false)
}

/// Gives a hold back.
pub async fn release(
    user: &mut GooseUser,
    ctx: &RunContext,
    buyer: &SeededUser,
    round: &SeededRound,
    held: &Held,
) -> Result<(), Box<TransactionError>> {
    let path = format!("/v1/holds/{}", held.id);
    let req = Request {
        method: GooseMethod::Delete,
        ..Request::get(OpKind::Release, &path, Some(&buyer.token))
    };
    let r = send(user, &ctx.recorder, req).await?;
    let mut op = r.op(buyer.id);
    op.round_id = Some(round.id);
    op.hold_id = Some(held.id);
    op.seat_ids = held.seat_ids.clone();
    ctx.recorder.record(op);
    Ok(())
}

/// Cancels a booking.
pub async fn cancel(
    user: &mut GooseUser,
    ctx: &RunContext,
    buyer: &SeededUser,
    round: &SeededRound,
    booked: &Booked,
) -> Result<(), Box<TransactionError>> {
    let path = format!("/v1/bookings/{}/cancel", booked.id);
    let req = Request {
        body: None,
        ..Request::post(OpKind::Cancel, &path, &buyer.token, serde_json::Value::Null)
    };
    let r = send(user, &ctx.recorder, req).await?;
    let mut op = r.op(buyer.id);
    op.round_id = Some(round.id);
    op.booking_id = Some(booked.id);
    ctx.recorder.record(op);
    Ok(())
}

/// A plain read, recorded.
pub async fn read(
    user: &mut GooseUser,
    ctx: &RunContext,
    buyer: &SeededUser,
    op: OpKind,
    path: &str,
    round: Option<i64>,
) -> Result<(), Box<TransactionError>> {
    let r = send(
        user,
        &ctx.recorder,
        Request::get(op, path, Some(&buyer.token)),
    )
    .await?;
    let mut rec = r.op(buyer.id);
    rec.round_id = round;
    ctx.recorder.record(rec);
    Ok(())
}
