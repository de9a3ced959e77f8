//! The outbox rows a booking and its payment write describe that booking, field by field, on
//! both backends. (On PostgreSQL each is written by the same statement as the booking's change,
//! which fills in the id of the booking it inserted.)

use crate::support::{Backend, TestApp};
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
