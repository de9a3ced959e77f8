//! HTTP tests through the real router on SQLite: every route, its success path and its
//! failure paths. Every failure must be a 4xx with the JSON error body and change nothing.

use crate::support;

use crate::support::TestApp;
use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{json, Value};

async fn hold(app: &TestApp, token: &str, round: i64, body: Value) -> support::Res {
    app.post(&format!("/v1/rounds/{round}/holds"), Some(token), body)
        .await
}

#[tokio::test]
async fn a_user_registers_logs_in_and_gets_a_bearer_token() {
    let app = TestApp::sqlite().await;
    let res = app
        .post(
            "/v1/users",
            None,
            json!({"email": "Ann@Example.com", "password": "secret-123", "name": "Ann"}),
        )
        .await
        .expect(201);
    assert_eq!(res.body["email"], "ann@example.com");
    assert_eq!(res.body["name"], "Ann");
    assert!(res.body.get("password").is_none() && res.body.get("password_hash").is_none());
    let tok = app
        .post(
            "/v1/auth/token",
            None,
            json!({"email": "ann@example.com", "password": "secret-123"}),
        )
        .await
        .expect(200);
    assert_eq!(tok.body["token_type"], "Bearer");
    assert_eq!(tok.body["expires_in"], 3600);
    assert!(
        tok.body["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .count()
            == 3
    );
}

#[tokio::test]
async fn registration_rejects_bad_input_and_duplicates() {
    let app = TestApp::sqlite().await;
    app.post(
        "/v1/users",
        None,
        json!({"email": "not-an-email", "password": "secret-123", "name": "A"}),
    )
    .await
    .expect_error(422, "invalid_email");
    app.post(
        "/v1/users",
        None,
        json!({"email": "a@b.io", "password": "short", "name": "A"}),
    )
    .await
    .expect_error(422, "invalid_password");
    app.post(
        "/v1/users",
        None,
        json!({"email": "a@b.io", "password": "secret-123", "name": "  "}),
    )
    .await
    .expect_error(422, "invalid_text");
    app.post(
        "/v1/users",
        None,
        json!({"email": "a@b.io", "password": "secret-123"}),
    )
    .await
    .expect_error(422, "invalid_body");
    app.post(
        "/v1/users",
        None,
        json!({"email": "a@b.io", "password": "secret-123", "name": "A", "role": "admin"}),
    )
    .await
    .expect_error(422, "invalid_body");
    app.post(
        "/v1/users",
        None,
        json!({"email": "a@b.io", "password": "secret-123", "name": "A"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/users",
        None,
        json!({"email": "A@B.io", "password": "secret-123", "name": "A"}),
    )
    .await
    .expect_error(409, "email_taken");
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_gets_401() {
    let app = TestApp::sqlite().await;
    app.user("bob").await;
    app.post(
        "/v1/auth/token",
        None,
        json!({"email": "bob@example.com", "password": "wrong-pass"}),
    )
    .await
    .expect_error(401, "unauthorized");
    app.post(
        "/v1/auth/token",
        None,
        json!({"email": "nobody@example.com", "password": "password-123"}),
    )
    .await
    .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn protected_routes_reject_missing_forged_and_expired_tokens() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.user("carol").await;
    let (_, round, _) = app.round(1, 5).await;
    let path = format!("/v1/rounds/{round}/holds");
    app.post(&path, None, json!({"quantity": 1}))
        .await
        .expect_error(401, "unauthorized");
    // Same claims, signed with another key.
    let forged = {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[2] = "c2lnbmF0dXJl".into();
        parts.join(".")
    };
    app.post(&path, Some(&forged), json!({"quantity": 1}))
        .await
        .expect_error(401, "unauthorized");
    app.post(&path, Some("garbage"), json!({"quantity": 1}))
        .await
        .expect_error(401, "unauthorized");
    let req = Request::builder()
        .method(Method::POST)
        .uri(&path)
        .header("authorization", format!("Basic {token}"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"quantity":1}"#))
        .unwrap();
    app.send(req).await.expect_error(401, "unauthorized");
    app.clock.advance_ms(3_601_000);
    app.post(&path, Some(&token), json!({"quantity": 1}))
        .await
        .expect_error(401, "unauthorized");
    let a = app.availability(round).await;
    assert_eq!(a["available"], 5, "a rejected request changed state: {a}");
}

#[tokio::test]
async fn admin_routes_need_the_admin_role() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.user("dave").await;
    let venue = json!({"name": "V", "sections": [{"name": "A", "rows": [{"label": "1", "seats": 2, "tier": "std"}]}]});
    app.post("/v1/venues", Some(&token), venue.clone())
        .await
        .expect_error(403, "forbidden");
    app.post("/v1/venues", None, venue)
        .await
        .expect_error(401, "unauthorized");
    app.post(
        "/v1/events",
        Some(&token),
        json!({"title": "T", "venue_id": 1}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        "/v1/events/1/rounds",
        Some(&token),
        json!({"starts_at": "2030-01-01T00:00:00Z", "prices": {"std": 1}}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        "/v1/coupons",
        Some(&token),
        json!({"code": "X", "quota": 1, "discount_percent": 5}),
    )
    .await
    .expect_error(403, "forbidden");
    app.get("/v1/admin/rounds/1/audit", Some(&token))
        .await
        .expect_error(403, "forbidden");
    app.get("/v1/admin/payments/audit", Some(&token))
        .await
        .expect_error(403, "forbidden");
    let events = app.get("/v1/events", None).await.expect(200);
    assert_eq!(events.body["total"], 0);
}

#[tokio::test]
async fn an_admin_builds_a_venue_an_event_and_a_round_with_priced_seats() {
    let app = TestApp::sqlite().await;
    let venue = app
        .post(
            "/v1/venues",
            Some(&app.admin),
            json!({"name": "Olympic Hall", "sections": [
                {"name": "Floor", "rows": [{"label": "A", "seats": 3, "tier": "vip"}, {"label": "B", "seats": 4, "tier": "r"}]},
                {"name": "Balcony", "rows": [{"label": "A", "seats": 5, "tier": "s"}]}]}),
        )
        .await
        .expect(201);
    assert_eq!(venue.body["capacity"], 12);
    assert_eq!(venue.body["tiers"], json!({"r": 4, "s": 5, "vip": 3}));
    let event = app
        .post("/v1/events", Some(&app.admin), json!({"title": "Phantom", "venue_id": venue.id(), "category": "musical", "description": "long run"}))
        .await
        .expect(201);
    assert_eq!(event.body["venue_name"], "Olympic Hall");
    let path = format!("/v1/events/{}/rounds", event.id());
    app.post(
        &path,
        Some(&app.admin),
        json!({"starts_at": "2030-05-01T19:30:00+09:00", "prices": {"vip": 150000, "r": 120000}}),
    )
    .await
    .expect_error(422, "missing_price");
    app.post(&path, Some(&app.admin), json!({"starts_at": "2030-05-01T19:30:00+09:00", "prices": {"vip": 1, "r": 1, "s": 1, "x": 1}}))
        .await
        .expect_error(422, "unknown_tier");
    app.post(
        &path,
        Some(&app.admin),
        json!({"starts_at": "tomorrow", "prices": {"vip": 1, "r": 1, "s": 1}}),
    )
    .await
    .expect_error(422, "invalid_starts_at");
    app.post(
        &path,
        Some(&app.admin),
        json!({"starts_at": "2030-05-01T19:30:00Z", "prices": {"vip": -1, "r": 1, "s": 1}}),
    )
    .await
    .expect_error(422, "invalid_amount");
    let round = app
        .post(&path, Some(&app.admin), json!({"starts_at": "2030-05-01T19:30:00+09:00", "prices": {"vip": 150000, "r": 120000, "s": 90000}}))
        .await
        .expect(201);
    assert_eq!(round.body["capacity"], 12);
    assert_eq!(round.body["starts_at"], "2030-05-01T10:30:00.000Z");
    let seats = app
        .get(&format!("/v1/rounds/{}/seats", round.id()), None)
        .await
        .expect(200);
    let seats = seats.body["seats"].as_array().unwrap().clone();
    assert_eq!(seats.len(), 12);
    assert_eq!(seats[0]["label"], "Floor-A-1");
    assert_eq!(seats[0]["price"], 150000);
    assert_eq!(seats[0]["status"], "available");
    assert_eq!(seats[11]["section"], "Balcony");
    assert_eq!(seats[11]["price"], 90000);
    let detail = app
        .get(&format!("/v1/events/{}", event.id()), None)
        .await
        .expect(200);
    assert_eq!(detail.body["rounds"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.availability(round.id()).await,
        json!({"round_id": round.id(), "capacity": 12, "available": 12, "held": 0, "sold": 0})
    );
}

#[tokio::test]
async fn invalid_seat_maps_are_rejected() {
    let app = TestApp::sqlite().await;
    let bad = [
        json!({"name": "V", "sections": []}),
        json!({"name": "V", "sections": [{"name": "A", "rows": []}]}),
        json!({"name": "V", "sections": [{"name": "A", "rows": [{"label": "1", "seats": 0, "tier": "s"}]}]}),
        json!({"name": "V", "sections": [{"name": "A", "rows": [{"label": "1", "seats": 1001, "tier": "s"}]}]}),
        json!({"name": "V", "sections": [{"name": "A", "rows": [{"label": "1", "seats": 2, "tier": "bad tier!"}]}]}),
        json!({"name": "", "sections": [{"name": "A", "rows": [{"label": "1", "seats": 2, "tier": "s"}]}]}),
    ];
    for body in bad {
        let res = app.post("/v1/venues", Some(&app.admin), body.clone()).await;
        assert_eq!(res.status.as_u16(), 422, "{body} → {:?}", res.body);
    }
    app.post(
        "/v1/venues",
        Some(&app.admin),
        json!({"name": "V", "sections": [{"name": "A", "rows": [{"label": "1", "seats": 2, "tier": "s"}, {"label": "1", "seats": 2, "tier": "s"}]}]}),
    )
    .await
    .expect_error(422, "duplicate_row");
    app.post(
        "/v1/events",
        Some(&app.admin),
        json!({"title": "T", "venue_id": 999}),
    )
    .await
    .expect_error(404, "not_found");
    app.post(
        "/v1/events/999/rounds",
        Some(&app.admin),
        json!({"starts_at": "2030-01-01T00:00:00Z", "prices": {"s": 1}}),
    )
    .await
    .expect_error(404, "not_found");
}

#[tokio::test]
async fn events_are_searched_and_paged_within_bounds() {
    let app = TestApp::sqlite().await;
    let venue = app
        .post("/v1/venues", Some(&app.admin), json!({"name": "V", "sections": [{"name": "A", "rows": [{"label": "1", "seats": 1, "tier": "s"}]}]}))
        .await
        .id();
    for (title, cat) in [
        ("Swan Lake", "ballet"),
        ("Les Misérables", "musical"),
        ("100% Rock", "concert"),
        ("Cats", "musical"),
    ] {
        app.post(
            "/v1/events",
            Some(&app.admin),
            json!({"title": title, "venue_id": venue, "category": cat}),
        )
        .await
        .expect(201);
    }
    let res = app.get("/v1/events?q=musical", None).await.expect(200);
    assert_eq!(res.body["total"], 2);
    let res = app.get("/v1/events?q=SWAN", None).await.expect(200);
    assert_eq!(res.body["items"][0]["title"], "Swan Lake");
    let res = app.get("/v1/events?q=100%25", None).await.expect(200);
    assert_eq!(
        res.body["total"], 1,
        "% must be matched literally: {:?}",
        res.body
    );
    let res = app
        .get("/v1/events?page=2&per_page=3", None)
        .await
        .expect(200);
    assert_eq!(res.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(res.body["total"], 4);
    app.get("/v1/events?per_page=101", None)
        .await
        .expect_error(400, "invalid_per_page");
    app.get("/v1/events?per_page=0", None)
        .await
        .expect_error(400, "invalid_per_page");
    app.get("/v1/events?page=0", None)
        .await
        .expect_error(400, "invalid_page");
    app.get("/v1/events?page=abc", None)
        .await
        .expect_error(400, "invalid_query");
    app.get("/v1/events?sort=x", None)
        .await
        .expect_error(400, "invalid_query");
    app.get("/v1/events/999", None)
        .await
        .expect_error(404, "not_found");
    app.get("/v1/events/abc", None)
        .await
        .expect_error(400, "invalid_path");
    app.get("/v1/rounds/999/availability", None)
        .await
        .expect_error(404, "not_found");
    app.get("/v1/rounds/999/seats", None)
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn a_hold_takes_chosen_or_best_available_seats_until_released() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.user("erin").await;
    let (_, round, seats) = app.round(2, 5).await;
    let h1 = hold(
        &app,
        &token,
        round,
        json!({"seat_ids": [seats[7], seats[2]]}),
    )
    .await
    .expect(201);
    assert_eq!(h1.body["seat_ids"], json!([seats[2], seats[7]]));
    assert_eq!(h1.body["amount"], 10000 + 5000);
    assert!(h1.body["expires_at"].as_str().unwrap().ends_with('Z'));
    let h2 = hold(&app, &token, round, json!({"quantity": 3}))
        .await
        .expect(201);
    assert_eq!(
        h2.body["seat_ids"],
        json!([seats[0], seats[1], seats[3]]),
        "best available = lowest free ids"
    );
    hold(&app, &token, round, json!({"seat_ids": [seats[2]]}))
        .await
        .expect_error(409, "seats_unavailable");
    assert_eq!(app.availability(round).await["held"], 5);
    let got = app
        .get(&format!("/v1/holds/{}", h1.id()), Some(&token))
        .await
        .expect(200);
    assert_eq!(got.body["status"], "active");
    app.call(
        Method::DELETE,
        &format!("/v1/holds/{}", h1.id()),
        Some(&token),
        None,
    )
    .await
    .expect(204);
    app.call(
        Method::DELETE,
        &format!("/v1/holds/{}", h1.id()),
        Some(&token),
        None,
    )
    .await
    .expect_error(409, "hold_not_active");
    assert_eq!(app.availability(round).await["held"], 3);
    hold(&app, &token, round, json!({"seat_ids": [seats[2]]}))
        .await
        .expect(201);
}

#[tokio::test]
async fn bad_hold_requests_are_rejected_and_change_nothing() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.user("frank").await;
    let (_, round, seats) = app.round(1, 5).await;
    let (_, other_round, other_seats) = app.round(1, 5).await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"quantity": 0}), 422, "invalid_quantity"),
        (json!({"quantity": -3}), 422, "invalid_quantity"),
        (json!({"quantity": 11}), 422, "invalid_quantity"),
        (
            json!({"quantity": 9_223_372_036_854_775_807i64}),
            422,
            "invalid_quantity",
        ),
        (json!({"quantity": 1e30}), 422, "invalid_body"),
        (json!({"quantity": "2"}), 422, "invalid_body"),
        (json!({"seat_ids": []}), 422, "invalid_seat_ids"),
        (
            json!({"seat_ids": [seats[0], seats[0]]}),
            422,
            "duplicate_seat_ids",
        ),
        (json!({"seat_ids": [-1]}), 422, "invalid_seat_ids"),
        (json!({"seat_ids": [other_seats[0]]}), 422, "unknown_seats"),
        (
            json!({"seat_ids": [seats[0], 999_999]}),
            422,
            "unknown_seats",
        ),
        (
            json!({"seat_ids": [seats[0]], "quantity": 1}),
            422,
            "invalid_hold",
        ),
        (json!({}), 422, "invalid_hold"),
        (json!({"quantity": 1, "extra": true}), 422, "invalid_body"),
        (json!([1, 2]), 422, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let res = hold(&app, &token, round, body.clone()).await;
        assert_eq!(
            (res.status.as_u16(), res.code()),
            (status, code),
            "{body} → {:?}",
            res.body
        );
    }
    hold(&app, &token, 999_999, json!({"quantity": 1}))
        .await
        .expect_error(404, "not_found");
    let raw = |body: &'static str, ctype: Option<&str>| {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/rounds/{round}/holds"))
            .header("authorization", format!("Bearer {token}"));
        if let Some(c) = ctype {
            b = b.header("content-type", c);
        }
        b.body(Body::from(body)).unwrap()
    };
    app.send(raw("{\"quantity\": ", Some("application/json")))
        .await
        .expect_error(400, "malformed_json");
    app.send(raw("{\"quantity\": 1}", None))
        .await
        .expect_error(415, "unsupported_media_type");
    app.send(raw("{\"quantity\": 1}", Some("text/plain")))
        .await
        .expect_error(415, "unsupported_media_type");
    let huge = format!("{{\"seat_ids\": [{}]}}", vec!["1"; 40_000].join(","));
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/rounds/{round}/holds"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(huge))
        .unwrap();
    app.send(req).await.expect_error(413, "body_too_large");
    app.post("/v1/rounds/abc/holds", Some(&token), json!({"quantity": 1}))
        .await
        .expect_error(400, "invalid_path");
    for r in [round, other_round] {
        let a = app.availability(r).await;
        assert_eq!(a["available"], 5, "state changed: {a}");
    }
    let audit = app.audit(round).await;
    assert_eq!(audit.live_claims, 0);
}

#[tokio::test]
async fn another_users_hold_and_booking_are_invisible_and_untouchable() {
    let app = TestApp::sqlite().await;
    let (_, alice) = app.user("alice").await;
    let (_, mallory) = app.user("mallory").await;
    let (_, round, _) = app.round(1, 5).await;
    let h = hold(&app, &alice, round, json!({"quantity": 2}))
        .await
        .expect(201)
        .id();
    app.get(&format!("/v1/holds/{h}"), Some(&mallory))
        .await
        .expect_error(404, "not_found");
    app.call(
        Method::DELETE,
        &format!("/v1/holds/{h}"),
        Some(&mallory),
        None,
    )
    .await
    .expect_error(404, "not_found");
    app.post("/v1/bookings", Some(&mallory), json!({"hold_id": h}))
        .await
        .expect_error(404, "not_found");
    let b = app
        .post("/v1/bookings", Some(&alice), json!({"hold_id": h}))
        .await
        .expect(201);
    let id = b.id();
    let amount = b.body["amount"].clone();
    app.get(&format!("/v1/bookings/{id}"), Some(&mallory))
        .await
        .expect_error(404, "not_found");
    app.post(
        &format!("/v1/bookings/{id}/pay"),
        Some(&mallory),
        json!({"amount": amount}),
    )
    .await
    .expect_error(404, "not_found");
    app.call(
        Method::POST,
        &format!("/v1/bookings/{id}/cancel"),
        Some(&mallory),
        None,
    )
    .await
    .expect_error(404, "not_found");
    let mine = app.get("/v1/me/bookings", Some(&mallory)).await.expect(200);
    assert_eq!(mine.body["bookings"], json!([]));
    let got = app
        .get(&format!("/v1/bookings/{id}"), Some(&alice))
        .await
        .expect(200);
    assert_eq!(got.body["status"], "pending_payment");
}

#[tokio::test]
async fn a_booking_is_paid_confirmed_cancelled_and_refunded() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.user("gina").await;
    let (_, round, seats) = app.round(2, 3).await;
    let h = hold(
        &app,
        &token,
        round,
        json!({"seat_ids": [seats[0], seats[3]]}),
    )
    .await
    .expect(201)
    .id();
    let b = app
        .post("/v1/bookings", Some(&token), json!({"hold_id": h}))
        .await
        .expect(201);
    assert_eq!(b.body["status"], "pending_payment");
    assert_eq!(b.body["amount"], 15000);
    assert_eq!(b.body["seat_ids"], json!([seats[0], seats[3]]));
    let id = b.id();
    app.post("/v1/bookings", Some(&token), json!({"hold_id": h}))
        .await
        .expect_error(409, "hold_not_active");
    let pay = format!("/v1/bookings/{id}/pay");
    app.post(&pay, Some(&token), json!({"amount": 100}))
        .await
        .expect_error(422, "amount_mismatch");
    app.post(&pay, Some(&token), json!({"amount": "15000"}))
        .await
        .expect_error(422, "invalid_body");
    assert_eq!(app.availability(round).await["sold"], 0);
    let paid = app
        .post(&pay, Some(&token), json!({"amount": 15000}))
        .await
        .expect(200);
    assert_eq!(paid.body["status"], "confirmed");
    assert!(paid.body["confirmed_at"].is_string());
    app.post(&pay, Some(&token), json!({"amount": 15000}))
        .await
        .expect_error(409, "already_paid");
    let a = app.availability(round).await;
    assert_eq!((a["sold"].as_i64(), a["held"].as_i64()), (Some(2), Some(0)));
    let seats_now = app
        .get(&format!("/v1/rounds/{round}/seats"), None)
        .await
        .body;
    assert_eq!(seats_now["seats"][0]["status"], "sold");
    let cancel = format!("/v1/bookings/{id}/cancel");
    let c = app
        .call(Method::POST, &cancel, Some(&token), None)
        .await
        .expect(200);
    assert_eq!(c.body["status"], "cancelled");
    app.call(Method::POST, &cancel, Some(&token), None)
        .await
        .expect_error(409, "invalid_state");
    app.post(&pay, Some(&token), json!({"amount": 15000}))
        .await
        .expect_error(409, "invalid_state");
    assert_eq!(app.availability(round).await["available"], 6);
    let money = boxoffice::store::audit::payments(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        (money.captured, money.refunded, money.confirmed),
        (15000, 15000, 0)
    );
    assert!(money.is_consistent());
    let list = app.get("/v1/me/bookings", Some(&token)).await.expect(200);
    assert_eq!(list.body["bookings"][0]["id"], id);
}

#[tokio::test]
async fn an_unpaid_booking_can_be_cancelled_and_frees_its_seats() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.user("hank").await;
    let (_, round, _) = app.round(1, 4).await;
    let (_, id) = app.pending_booking(&token, round, 4).await;
    assert_eq!(app.availability(round).await["available"], 0);
    app.call(
        Method::POST,
        &format!("/v1/bookings/{id}/cancel"),
        Some(&token),
        None,
    )
    .await
    .expect(200);
    assert_eq!(app.availability(round).await["available"], 4);
    let money = boxoffice::store::audit::payments(&app.state.db)
        .await
        .unwrap();
    assert_eq!(money.captured, 0);
}

#[tokio::test]
async fn a_retried_payment_with_the_same_idempotency_key_charges_once() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.user("ivy").await;
    let (_, round, _) = app.round(1, 2).await;
    let (_, id) = app.pending_booking(&token, round, 1).await;
    let pay = |key: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/bookings/{id}/pay"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(r#"{"amount": 10000}"#))
            .unwrap()
    };
    let first = app.send(pay("key-1")).await.expect(200);
    let again = app.send(pay("key-1")).await.expect(200);
    assert_eq!(first.body, again.body);
    app.send(pay("key-2"))
        .await
        .expect_error(409, "already_paid");
    let money = boxoffice::store::audit::payments(&app.state.db)
        .await
        .unwrap();
    assert_eq!((money.captured, money.confirmed), (10000, 10000));
    let bad = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/bookings/{id}/pay"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "has space")
        .body(Body::from(r#"{"amount": 10000}"#))
        .unwrap();
    app.send(bad)
        .await
        .expect_error(400, "invalid_idempotency_key");
}

#[tokio::test]
async fn a_declined_payment_is_402_and_leaves_the_booking_payable() {
    let app =
        TestApp::with_config(support::Backend::Sqlite, |c| c.payments_decline_rate = 1.0).await;
    let (_, token) = app.user("jack").await;
    let (_, round, _) = app.round(1, 2).await;
    let (_, id) = app.pending_booking(&token, round, 1).await;
    app.post(
        &format!("/v1/bookings/{id}/pay"),
        Some(&token),
        json!({"amount": 10000}),
    )
    .await
    .expect_error(402, "payment_declined");
    let b = app
        .get(&format!("/v1/bookings/{id}"), Some(&token))
        .await
        .expect(200);
    assert_eq!(b.body["status"], "pending_payment");
    assert_eq!(app.availability(round).await["held"], 1);
    assert_eq!(
        boxoffice::store::audit::payments(&app.state.db)
            .await
            .unwrap()
            .captured,
        0
    );
}

#[tokio::test]
async fn an_unreachable_payment_provider_is_503_and_changes_nothing() {
    let app = TestApp::with_config(support::Backend::Sqlite, |c| {
        c.payments_url = Some("http://127.0.0.1:9".into());
        c.payments_timeout_ms = 500;
    })
    .await;
    let (_, token) = app.user("kim").await;
    let (_, round, _) = app.round(1, 2).await;
    let (_, id) = app.pending_booking(&token, round, 1).await;
    app.post(
        &format!("/v1/bookings/{id}/pay"),
        Some(&token),
        json!({"amount": 10000}),
    )
    .await
    .expect_error(503, "payment_unavailable");
    let b = app
        .get(&format!("/v1/bookings/{id}"), Some(&token))
        .await
        .expect(200);
    assert_eq!(b.body["status"], "pending_payment");
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status.as_u16(), 503);
    assert_eq!(ready.body["status"], "not_ready");
    assert_eq!(ready.body["checks"]["payments"], "unreachable");
    assert_eq!(ready.body["checks"]["database"], "ok");
}

#[tokio::test]
async fn coupons_are_created_claimed_once_and_discount_a_booking() {
    let app = TestApp::sqlite().await;
    let (_, a) = app.user("lee").await;
    let (_, b) = app.user("max").await;
    let (_, c) = app.user("ned").await;
    app.post(
        "/v1/coupons",
        Some(&app.admin),
        json!({"code": "spring10", "quota": 2, "discount_percent": 10}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/coupons",
        Some(&app.admin),
        json!({"code": "SPRING10", "quota": 2, "discount_percent": 10}),
    )
    .await
    .expect_error(409, "coupon_exists");
    for (body, code) in [
        (
            json!({"code": "X", "quota": 0, "discount_percent": 10}),
            "invalid_quota",
        ),
        (
            json!({"code": "X", "quota": 1, "discount_percent": 0}),
            "invalid_discount",
        ),
        (
            json!({"code": "X", "quota": 1, "discount_percent": 101}),
            "invalid_discount",
        ),
        (
            json!({"code": "no spaces", "quota": 1, "discount_percent": 5}),
            "invalid_coupon_code",
        ),
    ] {
        app.post("/v1/coupons", Some(&app.admin), body)
            .await
            .expect_error(422, code);
    }
    app.post("/v1/coupons/SPRING10/claims", Some(&a), json!(null))
        .await
        .expect(201);
    app.call(Method::POST, "/v1/coupons/SPRING10/claims", Some(&a), None)
        .await
        .expect_error(409, "already_claimed");
    app.call(Method::POST, "/v1/coupons/spring10/claims", Some(&b), None)
        .await
        .expect(201);
    app.call(Method::POST, "/v1/coupons/SPRING10/claims", Some(&c), None)
        .await
        .expect_error(409, "sold_out");
    app.call(Method::POST, "/v1/coupons/NOPE/claims", Some(&c), None)
        .await
        .expect_error(404, "not_found");
    app.call(Method::POST, "/v1/coupons/SPRING10/claims", None, None)
        .await
        .expect_error(401, "unauthorized");
    let audit = app
        .get("/v1/admin/coupons/SPRING10/audit", Some(&app.admin))
        .await
        .expect(200);
    assert_eq!(
        (audit.body["claims"].as_i64(), audit.body["quota"].as_i64()),
        (Some(2), Some(2))
    );
    let (_, round, _) = app.round(1, 4).await;
    let h = hold(&app, &a, round, json!({"quantity": 1}))
        .await
        .expect(201)
        .id();
    app.post(
        "/v1/bookings",
        Some(&a),
        json!({"hold_id": h, "coupon_code": "NOPE"}),
    )
    .await
    .expect_error(422, "unknown_coupon");
    let bk = app
        .post(
            "/v1/bookings",
            Some(&a),
            json!({"hold_id": h, "coupon_code": "spring10"}),
        )
        .await
        .expect(201);
    assert_eq!(bk.body["amount"], 9000);
    assert_eq!(bk.body["coupon_applied"], true);
    let h2 = hold(&app, &a, round, json!({"quantity": 1}))
        .await
        .expect(201)
        .id();
    app.post(
        "/v1/bookings",
        Some(&a),
        json!({"hold_id": h2, "coupon_code": "SPRING10"}),
    )
    .await
    .expect_error(409, "coupon_not_claimed");
    app.post(
        &format!("/v1/bookings/{}/pay", bk.id()),
        Some(&a),
        json!({"amount": 9000}),
    )
    .await
    .expect(200);
    let h3 = hold(&app, &c, round, json!({"quantity": 1}))
        .await
        .expect(201)
        .id();
    app.post(
        "/v1/bookings",
        Some(&c),
        json!({"hold_id": h3, "coupon_code": "SPRING10"}),
    )
    .await
    .expect_error(409, "coupon_not_claimed");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = TestApp::sqlite().await;
    app.get("/v2/nothing", None)
        .await
        .expect_error(404, "not_found");
    app.call(Method::PUT, "/v1/users", None, Some(json!({})))
        .await
        .expect_error(405, "method_not_allowed");
    app.call(Method::DELETE, "/v1/events", None, None)
        .await
        .expect_error(405, "method_not_allowed");
}

#[tokio::test]
async fn health_metrics_and_openapi_are_served() {
    let app = TestApp::sqlite().await;
    assert_eq!(
        app.get("/health/live", None).await.expect(200).body["status"],
        "ok"
    );
    let ready = app.get("/health/ready", None).await.expect(200);
    assert_eq!(
        ready.body["checks"],
        json!({"database": "ok", "payments": "ok"})
    );
    app.get("/v1/events", None).await.expect(200);
    let metrics = app.get("/metrics", None).await.expect(200);
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains("boxoffice_http_requests_total{method=\"GET\",route=\"/v1/events\",status_class=\"2xx\"} 1"), "{text}");
    assert!(text.contains("boxoffice_oversold_seats 0"));
    assert!(text.contains("boxoffice_build_info{"));
}

/// Every route the router serves is in the OpenAPI document with the right methods, and the
/// document names nothing the router does not serve.
#[tokio::test]
async fn the_openapi_document_describes_exactly_the_served_routes() {
    let app = TestApp::sqlite().await;
    let doc = app.get("/openapi.json", None).await.expect(200).body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected: &[(&str, &[&str])] = &[
        ("/v1/users", &["post"]),
        ("/v1/auth/token", &["post"]),
        ("/v1/venues", &["post"]),
        ("/v1/events", &["get", "post"]),
        ("/v1/events/{id}", &["get"]),
        ("/v1/events/{id}/rounds", &["post"]),
        ("/v1/rounds/{id}/availability", &["get"]),
        ("/v1/rounds/{id}/seats", &["get"]),
        ("/v1/rounds/{id}/holds", &["post"]),
        ("/v1/holds/{id}", &["delete", "get"]),
        ("/v1/bookings", &["post"]),
        ("/v1/bookings/{id}", &["get"]),
        ("/v1/bookings/{id}/pay", &["post"]),
        ("/v1/bookings/{id}/cancel", &["post"]),
        ("/v1/me/bookings", &["get"]),
        ("/v1/me/notifications", &["get"]),
        ("/v1/rounds/{id}/seats/stream", &["get"]),
        ("/v1/coupons", &["post"]),
        ("/v1/coupons/{code}/claims", &["post"]),
        ("/v1/admin/rounds/{id}/audit", &["get"]),
        ("/v1/admin/rounds/{id}/sales", &["get"]),
        ("/v1/admin/rounds/{id}/bookings", &["get"]),
        ("/v1/admin/rounds/{id}/holds", &["get"]),
        ("/v1/admin/coupons/{code}/audit", &["get"]),
        ("/v1/admin/payments/audit", &["get"]),
        ("/health/live", &["get"]),
        ("/health/ready", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<&String> = paths.keys().collect();
    documented.sort();
    let mut wanted: Vec<&str> = expected.iter().map(|(p, _)| *p).collect();
    wanted.sort();
    assert_eq!(documented, wanted);
    for (path, methods) in expected {
        let mut got: Vec<&String> = paths[*path]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
            .collect();
        got.sort();
        assert_eq!(got, *methods, "methods of {path}");
        // And the router really serves each documented method (never a 404/405).
        for m in *methods {
            let concrete = path.replace("{id}", "1").replace("{code}", "X");
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let res = app.call(method, &concrete, None, Some(json!({}))).await;
            assert!(
                res.status.as_u16() != 404
                    || res.code() != "not_found"
                    || res.body["error"]["message"] != "route not found",
                "{m} {concrete} is documented but not routed"
            );
            assert_ne!(
                res.status.as_u16(),
                405,
                "{m} {concrete} is documented but not routed"
            );
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in ["HoldResponse", "BookingResponse", "ErrorBody", "RoundAudit"] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn admin_listings_show_every_hold_and_booking_of_a_round() {
    let app = TestApp::sqlite().await;
    let (uid, token) = app.user("olga").await;
    let (_, round, _) = app.round(1, 5).await;
    let h1 = hold(&app, &token, round, json!({"quantity": 2}))
        .await
        .expect(201)
        .id();
    let _h2 = hold(&app, &token, round, json!({"quantity": 1}))
        .await
        .expect(201)
        .id();
    let b = app
        .post("/v1/bookings", Some(&token), json!({"hold_id": h1}))
        .await
        .expect(201)
        .id();
    let holds = app
        .get(&format!("/v1/admin/rounds/{round}/holds"), Some(&app.admin))
        .await
        .expect(200);
    assert_eq!(holds.body["holds"].as_array().unwrap().len(), 2);
    assert_eq!(holds.body["holds"][0]["status"], "booked");
    let bookings = app
        .get(
            &format!("/v1/admin/rounds/{round}/bookings"),
            Some(&app.admin),
        )
        .await
        .expect(200);
    assert_eq!(bookings.body["bookings"][0]["id"], b);
    assert_eq!(bookings.body["bookings"][0]["user_id"], uid);
    assert_eq!(
        bookings.body["bookings"][0]["seat_ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let audit = app
        .get(&format!("/v1/admin/rounds/{round}/audit"), Some(&app.admin))
        .await
        .expect(200);
    assert_eq!(audit.body["held"], 3);
    assert_eq!(audit.body["oversold"], 0);
    app.get("/v1/admin/rounds/999/holds", Some(&app.admin))
        .await
        .expect_error(404, "not_found");
}

/// Best available on PostgreSQL starts where the last search found free seats; seats released
/// below that point are still found (a search from the hint that finds too few starts over),
/// so a round sells out exactly, with no seat held twice.
#[tokio::test]
async fn best_available_on_postgres_finds_seats_released_below_where_it_last_looked() {
    let app = TestApp::new(support::Backend::Postgres, boxoffice::Strategy::Atomic).await;
    let (_, token) = app.user("vera").await;
    let (_, round, seats) = app.round(1, 10).await;
    let first = hold(&app, &token, round, json!({"quantity": 2}))
        .await
        .expect(201);
    assert_eq!(first.body["seat_ids"], json!([seats[0], seats[1]]));
    let second = hold(&app, &token, round, json!({"quantity": 2}))
        .await
        .expect(201);
    assert_eq!(second.body["seat_ids"], json!([seats[2], seats[3]]));
    app.call(
        Method::DELETE,
        &format!("/v1/holds/{}", first.id()),
        Some(&token),
        None,
    )
    .await
    .expect(204);
    // 8 seats are free again, two of them below every seat taken since.
    let mut taken: Vec<i64> = Vec::new();
    for _ in 0..4 {
        let h = hold(&app, &token, round, json!({"quantity": 2}))
            .await
            .expect(201);
        taken.extend(
            h.body["seat_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap()),
        );
    }
    taken.sort_unstable();
    let mut expected: Vec<i64> = seats.clone();
    expected.retain(|s| *s != seats[2] && *s != seats[3]);
    assert_eq!(taken, expected, "every free seat, each once");
    hold(&app, &token, round, json!({"quantity": 1}))
        .await
        .expect_error(409, "seats_unavailable");
    let audit = app.audit(round).await;
    assert_eq!(
        (
            audit.held,
            audit.available,
            audit.live_claims,
            audit.oversold
        ),
        (10, 0, 10, 0)
    );
}

/// The same contract on PostgreSQL, where the atomic strategy takes its one-statement path.
#[tokio::test]
async fn holds_on_postgres_answer_the_same_as_on_sqlite() {
    let app = TestApp::new(support::Backend::Postgres, boxoffice::Strategy::Atomic).await;
    let (_, token) = app.user("uma").await;
    let (_, round, seats) = app.round(2, 5).await;
    let (_, _, other) = app.round(1, 2).await;
    let h = hold(
        &app,
        &token,
        round,
        json!({"seat_ids": [seats[7], seats[2]]}),
    )
    .await
    .expect(201);
    assert_eq!(h.body["seat_ids"], json!([seats[2], seats[7]]));
    assert_eq!(h.body["amount"], 15000);
    let q = hold(&app, &token, round, json!({"quantity": 3}))
        .await
        .expect(201);
    assert_eq!(q.body["seat_ids"], json!([seats[0], seats[1], seats[3]]));
    assert_eq!(q.body["amount"], 30000);
    hold(&app, &token, round, json!({"seat_ids": [seats[2]]}))
        .await
        .expect_error(409, "seats_unavailable");
    hold(
        &app,
        &token,
        round,
        json!({"seat_ids": [seats[4], seats[2]]}),
    )
    .await
    .expect_error(409, "seats_unavailable");
    hold(&app, &token, round, json!({"seat_ids": [other[0]]}))
        .await
        .expect_error(422, "unknown_seats");
    hold(&app, &token, round, json!({"quantity": 6}))
        .await
        .expect_error(409, "seats_unavailable");
    hold(&app, &token, 999_999, json!({"quantity": 1}))
        .await
        .expect_error(404, "not_found");
    hold(&app, &token, 999_999, json!({"seat_ids": [seats[9]]}))
        .await
        .expect_error(404, "not_found");
    let audit = app.audit(round).await;
    assert_eq!((audit.held, audit.available, audit.live_claims), (5, 5, 5));
    let b = app
        .post("/v1/bookings", Some(&token), json!({"hold_id": h.id()}))
        .await
        .expect(201)
        .id();
    app.post(
        &format!("/v1/bookings/{b}/pay"),
        Some(&token),
        json!({"amount": 15000}),
    )
    .await
    .expect(200);
    assert_eq!(app.availability(round).await["sold"], 2);
}
