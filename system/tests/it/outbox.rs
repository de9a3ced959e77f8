//! The outbox rows a booking and its payment write describe that booking, field by field, on
//! both backends. (On PostgreSQL each is written by the same statement as the booking's change,
//! which fills in the id of the booking it inserted.)

use serde_json::json;

use crate::support::{Backend, Res, TestApp};
use boxoffice::store::outbox::Event;

async fn events_of_a_paid_booking(backend: Backend) {
    let app = TestApp::with_config(backend, |_| {}).await;
    let (user, token) = app.user("olive").await;
    let (_, round, _) = app.round(1, 6).await;
    // Another booking first, so that the booking looked at is not the first row of its table.
    app.pending_booking(&token, round, 1).await;
    let (_, booking) = app.pending_booking(&token, round, 2).await;
    let amount = app.pay(&token, booking).await;
    let payloads: Vec<String> = sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    let events: Vec<Event> = payloads
        .iter()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|e| panic!("{e}: {p}")))
        .collect();
    assert_eq!(events.len(), 3, "{events:#?}");
    let mine: Vec<&Event> = events
        .iter()
        .filter(|e| e.booking_id == Some(booking))
        .collect();
    let kinds: Vec<&str> = mine.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["booking.created", "booking.confirmed"],
        "{events:#?}"
    );
    for e in mine {
        assert_eq!(
            (e.user_id, e.round_id, e.seats, e.amount, e.coupon_id),
            (user, Some(round), 2, amount, None),
            "{e:?}"
        );
    }
    let keys: Vec<String> = sqlx::query_scalar("SELECT event_key FROM outbox ORDER BY id")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        keys,
        vec![round.to_string(); 3],
        "booking events are keyed by round"
    );
    assert_eq!(
        events[1].previous_status.as_deref(),
        None,
        "a new booking had no status"
    );
    assert_eq!(
        events[2].previous_status.as_deref(),
        Some("pending_payment")
    );
}

#[tokio::test]
async fn a_paid_booking_writes_its_own_events_on_sqlite() {
    events_of_a_paid_booking(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_paid_booking_writes_its_own_events_on_postgres() {
    events_of_a_paid_booking(Backend::Postgres).await;
}

/// Rows that a refused booking could have written: bookings, outbox rows, booked holds.
async fn written(app: &TestApp) -> (i64, i64, i64) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap()
    };
    (
        count("SELECT COUNT(*) FROM bookings").await,
        count("SELECT COUNT(*) FROM outbox").await,
        count("SELECT COUNT(*) FROM holds WHERE status = 'booked'").await,
    )
}

/// A booking is refused, and writes nothing, for a hold that does not exist or is another
/// user's (404, whatever its state), or that is the caller's but no longer active: released,
/// already booked or expired (409). An accepted one answers with the hold's seats and amount,
/// as do the booking's own read and the caller's list. (On PostgreSQL the booking is one
/// statement that reads the hold itself; the refusals come from a read after it.)
async fn booking_refusals(backend: Backend) {
    let app = TestApp::with_config(backend, |_| {}).await;
    let (_, ann) = app.user("ann").await;
    let (_, bob) = app.user("bob").await;
    let (_, round, seats) = app.round(1, 8).await;

    let anns = hold(&app, &ann, round, &[seats[3], seats[1]]).await;
    let before = written(&app).await;
    book(&app, &bob, anns.id())
        .await
        .expect_error(404, "not_found");
    book(&app, &ann, 9_999_999)
        .await
        .expect_error(404, "not_found");
    assert_eq!(written(&app).await, before, "a refused booking wrote");

    let booked = book(&app, &ann, anns.id()).await.expect(201);
    assert_eq!(booked.body["seat_ids"], json!([seats[1], seats[3]]));
    assert_eq!(booked.body["amount"], anns.body["amount"]);
    assert_eq!(booked.body["round_id"], round);
    let before = written(&app).await;
    book(&app, &ann, anns.id())
        .await
        .expect_error(409, "hold_not_active");
    book(&app, &bob, anns.id())
        .await
        .expect_error(404, "not_found");

    let released = hold(&app, &ann, round, &[seats[5]]).await.id();
    app.call(
        axum::http::Method::DELETE,
        &format!("/v1/holds/{released}"),
        Some(&ann),
        None,
    )
    .await
    .expect(204);
    book(&app, &ann, released)
        .await
        .expect_error(409, "hold_not_active");

    let expired = hold(&app, &ann, round, &[seats[6]]).await.id();
    app.clock
        .advance_ms(app.state.config.hold_ttl_secs as i64 * 1000 + 1);
    book(&app, &ann, expired)
        .await
        .expect_error(409, "hold_not_active");
    assert_eq!(written(&app).await, before, "a refused booking wrote");

    let id = booked.id();
    let read = app
        .get(&format!("/v1/bookings/{id}"), Some(&ann))
        .await
        .expect(200);
    assert_eq!(read.body["seat_ids"], json!([seats[1], seats[3]]));
    let mine = app.get("/v1/me/bookings", Some(&ann)).await.expect(200);
    assert_eq!(mine.body["bookings"][0]["id"], id);
    assert_eq!(
        mine.body["bookings"][0]["seat_ids"],
        json!([seats[1], seats[3]])
    );
}

async fn hold(app: &TestApp, token: &str, round: i64, seat_ids: &[i64]) -> Res {
    app.post(
        &format!("/v1/rounds/{round}/holds"),
        Some(token),
        json!({ "seat_ids": seat_ids }),
    )
    .await
    .expect(201)
}

async fn book(app: &TestApp, token: &str, hold: i64) -> Res {
    app.post("/v1/bookings", Some(token), json!({ "hold_id": hold }))
        .await
}

#[tokio::test]
async fn a_refused_booking_writes_nothing_on_sqlite() {
    booking_refusals(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_refused_booking_writes_nothing_on_postgres() {
    booking_refusals(Backend::Postgres).await;
}

/// The lists a consumer's batch or a relay's batch passes as one JSON parameter: the ids a
/// consumer recorded come back from one look-up (and recording one twice is harmless), and
/// the relay marks exactly the rows it names sent, on both backends.
async fn lists_as_one_parameter(backend: Backend) {
    use boxoffice::store::outbox;
    use boxoffice::Clock as _;
    let app = TestApp::with_config(backend, |_| {}).await;
    let db = &app.state.db;
    let now = app.clock.now_ms();
    assert!(outbox::processed_among(db, "notifier", &[])
        .await
        .unwrap()
        .is_empty());
    outbox::record_processed_many(db, "notifier", &["a", "b"], now)
        .await
        .unwrap();
    outbox::record_processed_many(db, "notifier", &["b", "c"], now)
        .await
        .unwrap();
    outbox::record_processed_many(db, "ledger", &["d"], now)
        .await
        .unwrap();
    let mut found: Vec<String> = outbox::processed_among(db, "notifier", &["a", "c", "d", "e"])
        .await
        .unwrap()
        .into_iter()
        .collect();
    found.sort();
    assert_eq!(found, ["a", "c"], "d is the ledger's, e nobody's");
    assert_eq!(outbox::processed_count(db, "notifier").await.unwrap(), 3);

    let (_, token) = app.user("olive").await;
    let (_, round, _) = app.round(1, 8).await;
    for _ in 0..3 {
        let (_, booking) = app.pending_booking(&token, round, 1).await;
        app.pay(&token, booking).await;
    }
    let rows: Vec<i64> = outbox::unsent(db, 100)
        .await
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(rows.len(), 6, "a creation and a confirmation each");
    outbox::mark_sent(db, &[rows[1], rows[4], 9_999_999], now)
        .await
        .unwrap();
    let left: Vec<i64> = outbox::unsent(db, 100)
        .await
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(left, [rows[0], rows[2], rows[3], rows[5]]);
}

#[tokio::test]
async fn lists_pass_as_one_parameter_on_sqlite() {
    lists_as_one_parameter(Backend::Sqlite).await;
}

#[tokio::test]
async fn lists_pass_as_one_parameter_on_postgres() {
    lists_as_one_parameter(Backend::Postgres).await;
}

/// A list looked up in a table that grew after its statement was planned is still looked up by
/// index. The trap: PostgreSQL guesses 100 rows for a JSON list, so `IN (SELECT …)` on a small
/// table was planned as a sequential scan, and the prepared statement kept that plan while the
/// outbox grew (7.7 ms a mark on a 50,000-row outbox under load).
#[tokio::test]
async fn on_postgres_a_list_is_looked_up_by_index_however_much_the_table_grew() {
    use boxoffice::store::outbox;
    use sqlx::Acquire as _;
    let app = TestApp::with_config(Backend::Postgres, |_| {}).await;
    let db = &app.state.db;
    let fill = |from: i64, to: i64| {
        format!(
            "INSERT INTO outbox (event_id, topic, event_key, payload, created_at, sent_at)
             SELECT 'filler-' || g, 'filler', 'k', '{{}}', 0, 0 FROM generate_series({from}, {to}) g"
        )
    };
    sqlx::raw_sql(&fill(1, 2_000))
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::raw_sql("ANALYZE outbox")
        .execute(&db.pool)
        .await
        .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id LIMIT 3")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    // Past PostgreSQL's five custom plans, so the connection keeps a generic one.
    for _ in 0..8 {
        outbox::mark_sent_on(&mut conn, &ids, 1).await.unwrap();
    }
    sqlx::raw_sql(&fill(2_001, 60_000))
        .execute(&db.pool)
        .await
        .unwrap();
    // `pg_stat_xact_user_tables` also holds this backend's counts from earlier transactions
    // that it has not yet flushed (PostgreSQL flushes at most once a second), so read it
    // before and after the mark, in one transaction, and compare.
    let scans = |row: sqlx::any::AnyRow| -> (i64, i64) {
        use sqlx::Row as _;
        (row.get("seq"), row.get("idx"))
    };
    const COUNTS: &str = "SELECT CAST(seq_scan AS BIGINT) AS seq, CAST(idx_scan AS BIGINT) AS idx
         FROM pg_stat_xact_user_tables WHERE relname = 'outbox'";
    let mut tx = conn.begin().await.unwrap();
    let before = scans(sqlx::query(COUNTS).fetch_one(&mut *tx).await.unwrap());
    outbox::mark_sent_on(&mut tx, &ids, 2).await.unwrap();
    let after = scans(sqlx::query(COUNTS).fetch_one(&mut *tx).await.unwrap());
    let (seq, idx) = (after.0 - before.0, after.1 - before.1);
    assert_eq!(
        seq, 0,
        "the mark scanned the whole outbox ({idx} index scans)"
    );
    assert!(idx >= 1, "no index scan either");
    tx.rollback().await.unwrap();
    let marked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at = 1")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(marked, 3, "exactly the rows named");
}
