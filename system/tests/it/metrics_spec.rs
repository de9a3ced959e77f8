//! `system/METRICS.md` is the specification of `/metrics`: after traffic through the real
//! router (holds, bookings, payments, a cancellation, coupon claims, a notification stream),
//! the families the service renders are exactly the table's, with the same types and labels.

use crate::support::metrics_spec as spec;
use crate::support::TestApp;
use axum::http::Method;
use serde_json::json;

fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_the_service_emits_are_exactly_those_of_metrics_md() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.user("spec").await;
    let (round, _, _) = app.round(2, 5).await;
    app.availability(round).await;
    app.availability(round).await;
    // A paid booking, a cancelled paid booking, a hold of a seat that does not exist.
    for cancel in [false, true] {
        let (_, booking) = app.pending_booking(&token, round, 2).await;
        app.pay(&token, booking).await;
        if cancel {
            app.call(
                Method::POST,
                &format!("/v1/bookings/{booking}/cancel"),
                Some(&token),
                None,
            )
            .await
            .expect(200);
        }
    }
    app.post(
        &format!("/v1/rounds/{round}/holds"),
        Some(&token),
        json!({"seat_ids": [999_999]}),
    )
    .await;
    app.post(
        "/v1/coupons",
        Some(&app.admin),
        json!({"code": "SPEC", "quota": 5, "discount_percent": 10}),
    )
    .await
    .expect(201);
    app.call(Method::POST, "/v1/coupons/SPEC/claims", Some(&token), None)
        .await
        .expect(201);
    app.call(Method::POST, "/v1/coupons/SPEC/claims", Some(&token), None)
        .await
        .expect_error(409, "already_claimed");
    let stream = {
        use tower::ServiceExt as _;
        let req = axum::http::Request::get("/v1/me/notifications")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        app.router.clone().oneshot(req).await.unwrap()
    };
    assert_eq!(stream.status().as_u16(), 200);

    let text = app.get("/metrics", None).await.expect(200).body;
    let text = text.as_str().expect("text exposition");
    let emitted = spec::from_exposition(text);
    let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/METRICS.md"))
        .expect("system/METRICS.md");
    let specified = spec::from_markdown(&md);
    assert!(
        specified.len() >= 30,
        "METRICS.md table not parsed: {specified:?}"
    );
    let diff = spec::diff(&specified, &emitted);
    assert!(diff.is_empty(), "METRICS.md and /metrics differ:\n{diff}");

    // The traffic shows in the new families, not only as zero-valued series.
    for (series, at_least) in [
        ("boxoffice_seats_held_total{strategy=\"atomic\"}", 4.0),
        ("boxoffice_seats_sold_total{strategy=\"atomic\"}", 4.0),
        (
            "boxoffice_payments_total{operation=\"charge\",outcome=\"captured\"}",
            2.0,
        ),
        (
            "boxoffice_payments_total{operation=\"refund\",outcome=\"refunded\"}",
            1.0,
        ),
        (
            "boxoffice_payment_duration_seconds_count{operation=\"charge\"}",
            2.0,
        ),
        ("boxoffice_seats{state=\"sold\"}", 2.0),
        ("boxoffice_seats{state=\"available\"}", 8.0),
        ("boxoffice_sse_connections", 1.0),
        // Each write waits for its connection once: at least the two hold batches, the two
        // bookings and the two confirmations (inline on SQLite, behind the write lock).
        ("boxoffice_db_acquire_seconds_count", 6.0),
        ("boxoffice_db_pool_connections{state=\"max\"}", 16.0),
        // The two holds went through the group-commit writer: one batch each, or one for both.
        ("boxoffice_hold_batch_holds_count", 1.0),
        ("boxoffice_hold_batch_holds_sum", 2.0),
        ("boxoffice_outbox_backlog", 1.0),
        ("boxoffice_dependency_up{dependency=\"database\"}", 1.0),
        ("boxoffice_dependency_up{dependency=\"payments\"}", 1.0),
    ] {
        let v = metric_value(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(
            v >= at_least,
            "{series} = {v}, expected at least {at_least}"
        );
    }
    drop(stream);
    // The refresh is rate-limited, but the SSE gauge is not: it drops with the stream.
    let text = app.get("/metrics", None).await.expect(200).body;
    assert_eq!(
        metric_value(text.as_str().unwrap(), "boxoffice_sse_connections"),
        Some(0.0)
    );
}
