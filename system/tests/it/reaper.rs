//! The reaper, with controlled time: nothing expires a millisecond early, everything due
//! expires on the next sweep, and expired seats go back on sale.

use crate::support::{Backend, TestApp};
use axum::http::Method;
use boxoffice::reaper;
use serde_json::json;

async fn app(backend: Backend) -> TestApp {
    TestApp::with_config(backend, |c| {
        c.hold_ttl_secs = 60;
        c.payment_ttl_secs = 120;
        c.token_ttl_secs = 86_400;
    })
    .await
}

async fn an_expired_hold_releases_its_seats(backend: Backend) {
    let app = app(backend).await;
    let (_, token) = app.user("pat").await;
    let (_, round, _) = app.round(1, 4).await;
    let h = app
        .post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&token),
            json!({"quantity": 3}),
        )
        .await
        .expect(201)
        .id();
    app.clock.advance_ms(59_999);
    assert_eq!(
        reaper::run_once(&app.state).await.unwrap(),
        (0, 0),
        "expired a millisecond early"
    );
    assert_eq!(app.availability(round).await["held"], 3);
    app.clock.advance_ms(1);
    assert_eq!(reaper::run_once(&app.state).await.unwrap(), (1, 0));
    let a = app.availability(round).await;
    assert_eq!(
        (a["available"].as_i64(), a["held"].as_i64()),
        (Some(4), Some(0))
    );
    let got = app
        .get(&format!("/v1/holds/{h}"), Some(&token))
        .await
        .expect(200);
    assert_eq!(got.body["status"], "expired");
    app.post("/v1/bookings", Some(&token), json!({"hold_id": h}))
        .await
        .expect_error(409, "hold_not_active");
    app.call(
        Method::DELETE,
        &format!("/v1/holds/{h}"),
        Some(&token),
        None,
    )
    .await
    .expect_error(409, "hold_not_active");
    assert_eq!(
        reaper::run_once(&app.state).await.unwrap(),
        (0, 0),
        "a second sweep finds nothing"
    );
    assert!(app.audit(round).await.is_consistent());
    assert_eq!(app.audit(round).await.live_claims, 0);
}

async fn a_hold_past_its_ttl_cannot_be_booked_even_before_the_sweep(backend: Backend) {
    let app = app(backend).await;
    let (_, token) = app.user("quinn").await;
    let (_, round, _) = app.round(1, 2).await;
    let h = app
        .post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&token),
            json!({"quantity": 1}),
        )
        .await
        .expect(201)
        .id();
    app.clock.advance_ms(60_000);
    app.post("/v1/bookings", Some(&token), json!({"hold_id": h}))
        .await
        .expect_error(409, "hold_not_active");
}

async fn an_unpaid_booking_expires_and_its_seats_and_coupon_come_back(backend: Backend) {
    let app = app(backend).await;
    let (_, token) = app.user("rita").await;
    let (_, round, _) = app.round(1, 2).await;
    app.post(
        "/v1/coupons",
        Some(&app.admin),
        json!({"code": "LATE", "quota": 5, "discount_percent": 50}),
    )
    .await
    .expect(201);
    app.call(Method::POST, "/v1/coupons/LATE/claims", Some(&token), None)
        .await
        .expect(201);
    let h = app
        .post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&token),
            json!({"quantity": 2}),
        )
        .await
        .expect(201)
        .id();
    let b = app
        .post(
            "/v1/bookings",
            Some(&token),
            json!({"hold_id": h, "coupon_code": "LATE"}),
        )
        .await
        .expect(201);
    assert_eq!(b.body["amount"], 10000);
    // The hold's own TTL passes: a booked hold is not the reaper's to expire.
    app.clock.advance_ms(60_000);
    assert_eq!(reaper::run_once(&app.state).await.unwrap(), (0, 0));
    app.clock.advance_ms(60_000);
    assert_eq!(reaper::run_once(&app.state).await.unwrap(), (0, 1));
    let got = app
        .get(&format!("/v1/bookings/{}", b.id()), Some(&token))
        .await
        .expect(200);
    assert_eq!(got.body["status"], "expired");
    assert_eq!(app.availability(round).await["available"], 2);
    app.post(
        &format!("/v1/bookings/{}/pay", b.id()),
        Some(&token),
        json!({"amount": 10000}),
    )
    .await
    .expect_error(409, "invalid_state");
    // The coupon claim was given back: a new booking may use it.
    let h2 = app
        .post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&token),
            json!({"quantity": 1}),
        )
        .await
        .expect(201)
        .id();
    let b2 = app
        .post(
            "/v1/bookings",
            Some(&token),
            json!({"hold_id": h2, "coupon_code": "LATE"}),
        )
        .await
        .expect(201);
    assert_eq!(b2.body["amount"], 5000);
    assert_eq!(
        boxoffice::store::audit::payments(&app.state.db)
            .await
            .unwrap()
            .captured,
        0
    );
}

async fn a_paid_booking_never_expires(backend: Backend) {
    let app = app(backend).await;
    let (_, token) = app.user("sam").await;
    let (_, round, _) = app.round(1, 2).await;
    let (_, b) = app.pending_booking(&token, round, 1).await;
    app.post(
        &format!("/v1/bookings/{b}/pay"),
        Some(&token),
        json!({"amount": 10000}),
    )
    .await
    .expect(200);
    app.clock.advance_ms(10 * 86_400_000);
    assert_eq!(reaper::run_once(&app.state).await.unwrap(), (0, 0));
    let a = app.availability(round).await;
    assert_eq!(
        (a["sold"].as_i64(), a["available"].as_i64()),
        (Some(1), Some(1))
    );
}

macro_rules! on {
    ($($m:ident: $backend:expr;)*) => {$(
        mod $m {
            use super::*;
            #[tokio::test]
            async fn an_expired_hold_releases_its_seats_on_the_next_sweep_and_not_before() {
                super::an_expired_hold_releases_its_seats($backend).await;
            }
            #[tokio::test]
            async fn a_hold_past_its_ttl_cannot_be_booked_even_before_the_sweep() {
                super::a_hold_past_its_ttl_cannot_be_booked_even_before_the_sweep($backend).await;
            }
            #[tokio::test]
            async fn an_unpaid_booking_expires_and_its_seats_and_coupon_come_back() {
                super::an_unpaid_booking_expires_and_its_seats_and_coupon_come_back($backend).await;
            }
            #[tokio::test]
            async fn a_paid_booking_never_expires() {
                super::a_paid_booking_never_expires($backend).await;
            }
        }
    )*};
}

on! {
    sqlite: Backend::Sqlite;
    postgres: Backend::Postgres;
}
