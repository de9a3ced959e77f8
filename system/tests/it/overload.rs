//! Past capacity (see `boxoffice::api::admission`): new work that cannot start within the
//! admission wait is refused with 503 `overloaded`, `Retry-After` and the documented JSON
//! error, changes nothing and is counted; a purchase's next step waits its turn and succeeds;
//! once a slot frees, the refused request goes through.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_capacity_a_hold_is_refused_fast_and_a_payment_under_way_waits_and_succeeds() {
    let app = TestApp::with_config(Backend::Sqlite, |c| {
        c.max_in_flight = 1;
        c.admission_wait_ms = 100;
        // A payment holds the one slot this long.
        c.payments_latency_ms = 600;
    })
    .await;
    let (_, round, _) = app.round(1, 10).await;
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    let (_, a) = app.pending_booking(&alice, round, 2).await;
    let (_, b) = app.pending_booking(&bob, round, 2).await;
    let amount = |id: i64, token: String| {
        let app = &app;
        async move {
            app.get(&format!("/v1/bookings/{id}"), Some(&token))
                .await
                .expect(200)
                .body["amount"]
                .clone()
        }
    };
    let (amount_a, amount_b) = (amount(a, alice.clone()).await, amount(b, bob.clone()).await);
    let before = app.availability(round).await;
    let holds = format!("/v1/rounds/{round}/holds");

    let (pay_a_path, pay_b_path) = (
        format!("/v1/bookings/{a}/pay"),
        format!("/v1/bookings/{b}/pay"),
    );
    let pay_a = app.post(&pay_a_path, Some(&alice), json!({"amount": amount_a}));
    let late = async {
        // Alice's payment has the slot by now.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = Instant::now();
        let pay_b = app.post(&pay_b_path, Some(&bob), json!({"amount": amount_b}));
        let hold_c = async {
            let res = app.post(&holds, Some(&carol), json!({"quantity": 1})).await;
            (res, t0.elapsed())
        };
        let (paid_b, (refused, refused_in)) = tokio::join!(pay_b, hold_c);
        (paid_b, refused, refused_in, t0.elapsed())
    };
    let (paid_a, (paid_b, refused, refused_in, b_in)) = tokio::join!(pay_a, late);

    paid_a.expect(200);
    // The continuation waited for the slot (past the 100 ms budget) and was not refused.
    paid_b.expect(200);
    assert!(b_in >= Duration::from_millis(400), "bob paid in {b_in:?}");
    // New work: refused once its 100 ms wait ran out, not after the payment.
    refused.expect_error(503, "overloaded");
    assert!(
        refused_in >= Duration::from_millis(100) && refused_in < Duration::from_millis(400),
        "{refused_in:?}"
    );
    // Nothing changed for the refused hold; the two paid bookings only moved held → sold.
    let after = app.availability(round).await;
    assert_eq!(
        after["available"], before["available"],
        "{before} → {after}"
    );
    let audit = app.audit(round).await;
    assert_eq!(
        (audit.sold, audit.held, audit.oversold),
        (4, 0, 0),
        "{audit:?}"
    );

    let metrics = app.get("/metrics", None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    let sample = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
    };
    assert_eq!(
        sample("boxoffice_admission_refused_total{reason=\"timeout\"}"),
        1.0
    );
    assert_eq!(
        sample("boxoffice_admission_refused_total{reason=\"queue_full\"}"),
        0.0
    );
    assert_eq!(sample("boxoffice_admission_in_flight"), 0.0);
    assert_eq!(sample("boxoffice_admission_queued"), 0.0);
    // Two requests queued: bob's payment and carol's hold.
    assert_eq!(sample("boxoffice_admission_wait_seconds_count"), 2.0);

    // A slot is free again: the same hold goes through.
    app.post(&holds, Some(&carol), json!({"quantity": 1}))
        .await
        .expect(201);
}

#[tokio::test]
async fn with_the_admission_wait_at_zero_nothing_is_limited() {
    let app = TestApp::with_config(Backend::Sqlite, |c| c.admission_wait_ms = 0).await;
    assert!(app.state.admission.is_none());
    let metrics = app.get("/metrics", None).await;
    let text = metrics.body.as_str().unwrap_or_default();
    // The series exist (at zero) whether or not the limit is on.
    assert!(text.contains("boxoffice_admission_refused_total{reason=\"queue_full\"} 0"));
}
