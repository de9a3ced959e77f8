//! The ledger's reconciliation with the outbox: a booking event the broker acknowledged
//! reaches the ledger even if the broker never delivers it (or a stalled consumer is late).
//!
//! The relay marks an outbox row sent once the broker has acknowledged it; from then on only
//! the broker can bring the event to the `ledger` group. A broker can break that promise, and
//! tansu (the lab's broker) does: asked for a partition from an offset that falls *inside* a
//! record batch, it answers with the batches that start at or after that offset, never the one
//! that contains it. The relay publishes the rows of one outbox poll together, so they share a
//! batch; the ledger commits after every message, so its committed offset often falls inside
//! one; and when the partition changes hands (an instance paused past its session or killed, any
//! rebalance), the next member resumes at that offset and the rest of the batch is never
//! delivered to the group, although its producer was told it was written. Nothing in the
//! consumer can notice: there is no error, and the offsets it commits are honest. (By its code,
//! tansu's memory storage can also expose a batch before an earlier one it has numbered but not
//! stored yet, when two relays write one partition at once; and any broker that loses
//! acknowledged data in a restart or an unclean leader election ends the same way.)
//!
//! So the ledger does not rely on acknowledgement alone. Besides consuming, each ledger worker
//! walks the outbox's booking events in id order and applies, from the row itself, every event
//! the broker acknowledged more than `ledger_reconcile_after_ms` ago that the ledger still has
//! not recorded in `processed_events`, through the same [`outbox::apply_to_ledger`]: an event
//! that arrives by both ways, or at two instances, counts once.
//!
//! The walk keeps a cursor (every booking event up to it is applied) and must never step over
//! a row that is not visible yet: ids are taken when a transaction inserts its row, but the
//! transactions commit in any order, so id 7 may become visible after id 8 was seen, and a
//! reader that moved past 8 would never read 7. The cursor therefore stays within a *stable*
//! prefix of ids. On PostgreSQL an id seen in a snapshot is stable once every transaction that
//! was running at that snapshot has ended (the snapshot's `xmax` is at most the current
//! `xmin`): a row with a smaller id that was invisible then belonged to one of them (this holds
//! because every transaction that records a booking event has written before it takes its
//! outbox id, so it has a transaction id by then). On SQLite writers are serialised, so every
//! id up to the largest one visible is stable. A long transaction delays reconciliation (never
//! the consumer) until it ends.

use crate::error::Result;
use crate::state::AppState;
use crate::store::outbox::{self, Event, BOOKING_TOPIC};
use crate::store::{Backend, Db};

/// Rows read per query.
const PAGE: i64 = 500;

/// The `ledger` reconciliation's position (one per ledger worker, in memory: a new worker
/// walks the outbox from the start once).
#[derive(Debug, Default)]
pub struct Reconciler {
    /// Every booking event with an id up to here is applied to the ledger.
    cursor: i64,
    /// Every row with an id up to here is visible or will never be.
    stable: i64,
    /// The largest id seen in a snapshot, and that snapshot's `xmax`: stable once the
    /// database's oldest running transaction is at least that `xmax` (PostgreSQL).
    observed: Option<(i64, u64)>,
}

/// What one [`Reconciler::run_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Events applied from the outbox (the consumer had not received them in time).
    pub applied: u64,
    /// Events found applied meanwhile (the consumer or another instance was first).
    pub duplicates: u64,
    /// The cursor afterwards.
    pub cursor: i64,
    /// The stable id bound afterwards.
    pub stable: i64,
    /// How long ago the broker acknowledged the oldest event applied, ms (0 when none).
    pub oldest_ms: i64,
}

impl Reconciler {
    /// A reconciler at the start of the outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// One pass over the stable, not yet reconciled part of the outbox. Applies the booking
    /// events acknowledged at least `after_ms` ago (by `state.clock`) that the ledger has not
    /// applied; events not yet published, or published more recently, are left to the
    /// consumer and looked at again next time.
    pub async fn run_once(&mut self, state: &AppState, after_ms: u64) -> Result<Sweep> {
        self.refresh_stable(&state.db).await?;
        let due = state.clock.now_ms() - after_ms as i64;
        let mut sweep = Sweep::default();
        // The cursor moves over the applied prefix only; rows past a pending one are still
        // looked at, so one row the relay cannot publish does not hold the others back.
        let mut contiguous = true;
        let mut from = self.cursor;
        while from < self.stable {
            let rows = pending_page(&state.db, from, self.stable).await?;
            let full = rows.len() as i64 == PAGE;
            for row in rows {
                from = row.id;
                let done = row.applied
                    || match row.sent_at {
                        Some(sent_at) if sent_at <= due => {
                            apply(state, &row, sent_at, &mut sweep).await?;
                            true
                        }
                        // Not published yet, or lately: the consumer's turn.
                        _ => false,
                    };
                contiguous &= done;
                if contiguous {
                    self.cursor = row.id;
                }
            }
            if !full {
                break;
            }
        }
        if contiguous {
            // Ids in between were other topics' rows or rolled back: none will appear.
            self.cursor = self.stable;
        }
        sweep.cursor = self.cursor;
        sweep.stable = self.stable;
        if sweep.applied > 0 {
            // One line per sweep: a stalled consumer (a paused instance) makes many.
            tracing::warn!(
                events = sweep.applied,
                oldest_acknowledged_ms_ago = sweep.oldest_ms,
                "reconcile: the ledger had not received booking events the broker acknowledged \
                 (delivered late, or never); applied them from the outbox"
            );
        }
        Ok(sweep)
    }

    /// Moves [`Reconciler::stable`] forward as far as the database allows.
    async fn refresh_stable(&mut self, db: &Db) -> Result<()> {
        use sqlx::Row;
        match db.backend {
            Backend::Sqlite => {
                let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS max_id FROM outbox")
                    .fetch_one(&db.pool)
                    .await?;
                self.stable = self.stable.max(row.try_get("max_id")?);
            }
            Backend::Postgres => {
                // One statement, so the largest id and the transaction bounds come from the
                // same snapshot.
                let row = sqlx::query(
                    "SELECT COALESCE(MAX(id), 0) AS max_id,
                            pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
                            pg_snapshot_xmax(pg_current_snapshot())::text AS xmax
                     FROM outbox",
                )
                .fetch_one(&db.pool)
                .await?;
                let max_id: i64 = row.try_get("max_id")?;
                let xid = |name: &str| -> Result<u64> {
                    let text: String = row.try_get(name)?;
                    text.parse().map_err(|e| {
                        crate::ApiError::internal(format!("{name} {text:?} is not an xid8: {e}"))
                    })
                };
                let (xmin, xmax) = (xid("xmin")?, xid("xmax")?);
                // An earlier observation whose transactions have all ended.
                if let Some((id, until)) = self.observed {
                    if xmin >= until {
                        self.stable = self.stable.max(id);
                        self.observed = None;
                    }
                }
                if xmin >= xmax {
                    // Nothing was running at this snapshot: what it shows is final.
                    self.stable = self.stable.max(max_id);
                    self.observed = None;
                } else if self.observed.is_none() && max_id > self.stable {
                    // Kept until it is stable, not replaced by newer ones: under steady load
                    // a newer snapshot always has transactions running.
                    self.observed = Some((max_id, xmax));
                }
            }
        }
        Ok(())
    }
}

/// Applies one overdue event from its row, counting it in `sweep`.
async fn apply(state: &AppState, row: &PendingRow, sent_at: i64, sweep: &mut Sweep) -> Result<()> {
    let event: Event = match serde_json::from_str(&row.payload) {
        Ok(e) => e,
        Err(e) => {
            // The consumer skips such a row too; nothing can apply it.
            tracing::warn!(outbox_id = row.id, error = %e, "reconcile: unreadable event skipped");
            return Ok(());
        }
    };
    let now = state.clock.now_ms();
    if outbox::apply_to_ledger(&state.db, &event, now).await? {
        sweep.applied += 1;
        state
            .metrics
            .events_consumed
            .with_label_values(&["ledger", "reconciled"])
            .inc();
        sweep.oldest_ms = sweep.oldest_ms.max(now - sent_at);
        tracing::debug!(
            outbox_id = row.id,
            event_id = %event.event_id,
            event.action = %event.kind,
            acknowledged_ms_ago = now - sent_at,
            "reconcile: applied from the outbox"
        );
    } else {
        sweep.duplicates += 1;
    }
    Ok(())
}

/// A booking event past the cursor, and whether the ledger has it.
struct PendingRow {
    id: i64,
    payload: String,
    sent_at: Option<i64>,
    applied: bool,
}

/// Up to [`PAGE`] booking events with `after < id <= upto`, in id order.
async fn pending_page(db: &Db, after: i64, upto: i64) -> Result<Vec<PendingRow>> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT o.id, o.payload, o.sent_at, p.event_id AS processed
         FROM outbox o
         LEFT JOIN processed_events p ON p.consumer = 'ledger' AND p.event_id = o.event_id
         WHERE o.id > $1 AND o.id <= $2 AND o.topic = $3
         ORDER BY o.id
         LIMIT $4",
    )
    .bind(after)
    .bind(upto)
    .bind(BOOKING_TOPIC)
    .bind(PAGE)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PendingRow {
                id: r.try_get("id")?,
                payload: r.try_get("payload")?,
                sent_at: r.try_get("sent_at")?,
                applied: r.try_get::<Option<String>, _>("processed")?.is_some(),
            })
        })
        .collect()
}

/// Reconciles every so often (a quarter of `after_ms`, between 100 ms and 1 s) until `stop`
/// turns true. Does nothing when `after_ms` is 0.
pub async fn run(state: AppState, after_ms: u64, mut stop: tokio::sync::watch::Receiver<bool>) {
    if after_ms == 0 {
        return;
    }
    let every = std::time::Duration::from_millis((after_ms / 4).clamp(100, 1000));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reconciler = Reconciler::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if let Err(e) = reconciler.run_once(&state, after_ms).await {
            tracing::warn!(error = %e.message, "ledger reconciliation failed; will retry");
        }
    }
}
