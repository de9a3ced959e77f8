//! The simulated payment provider over real HTTP: idempotency keys, declines, refunds.

use std::time::{Duration, Instant};

use boxoffice::payments::{provider, ChargeOutcome, PaymentsClient, ProviderConfig, ProviderState};

async fn provider_with(config: ProviderConfig) -> PaymentsClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(provider::serve(
        listener,
        ProviderState::new(config),
        std::future::pending(),
    ));
    PaymentsClient::new(&format!("http://{addr}"), Duration::from_secs(5))
}

#[tokio::test]
async fn the_same_idempotency_key_captures_once() {
    let client = provider_with(ProviderConfig::default()).await;
    let a = client.charge("k1", 500, "booking-1").await.unwrap();
    let b = client.charge("k1", 500, "booking-1").await.unwrap();
    assert_eq!(a, b);
    let c = client.charge("k2", 500, "booking-1").await.unwrap();
    assert_ne!(a, c);
    let stats: serde_json::Value = reqwest::get(format!("{}/v1/stats", client.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["captured"], 1000);
    assert_eq!(stats["charges"], 2);
}

#[tokio::test]
async fn reusing_a_key_for_another_amount_is_refused() {
    let client = provider_with(ProviderConfig::default()).await;
    client.charge("k", 500, "r").await.unwrap();
    let err = client.charge("k", 600, "r").await.unwrap_err();
    assert!(err.to_string().contains("422"), "{err}");
}

#[tokio::test]
async fn a_decline_rate_of_one_declines_everything_and_zero_nothing() {
    let all = provider_with(ProviderConfig {
        decline_rate: 1.0,
        ..Default::default()
    })
    .await;
    for i in 0..5 {
        assert_eq!(
            all.charge(&format!("k{i}"), 100, "r").await.unwrap(),
            ChargeOutcome::Declined
        );
    }
    let none = provider_with(ProviderConfig::default()).await;
    for i in 0..5 {
        assert!(matches!(
            none.charge(&format!("k{i}"), 100, "r").await.unwrap(),
            ChargeOutcome::Captured(_)
        ));
    }
}

#[tokio::test]
async fn a_seeded_decline_rate_declines_about_that_share_and_replays_identically() {
    let run = || async {
        let p = provider_with(ProviderConfig {
            decline_rate: 0.3,
            seed: 42,
            ..Default::default()
        })
        .await;
        let mut out = Vec::new();
        for i in 0..200 {
            out.push(
                p.charge(&format!("k{i}"), 100, "r").await.unwrap() == ChargeOutcome::Declined,
            );
        }
        out
    };
    let a = run().await;
    let b = run().await;
    assert_eq!(a, b, "same seed, same declines");
    let share = a.iter().filter(|d| **d).count() as f64 / a.len() as f64;
    assert!((0.2..0.4).contains(&share), "declined share {share}");
}

#[tokio::test]
async fn refunds_are_bounded_by_the_capture_and_idempotent() {
    let client = provider_with(ProviderConfig::default()).await;
    let ChargeOutcome::Captured(id) = client.charge("k", 1000, "r").await.unwrap() else {
        panic!("declined")
    };
    let r1 = client.refund(&id, "rk", 600).await.unwrap();
    let again = client.refund(&id, "rk", 600).await.unwrap();
    assert_eq!(r1, again);
    assert!(
        client.refund(&id, "rk2", 600).await.is_err(),
        "refunded more than captured"
    );
    client.refund(&id, "rk3", 400).await.unwrap();
    assert!(client.refund("ch_missing", "rk4", 1).await.is_err());
}

#[tokio::test]
async fn configured_latency_delays_each_charge() {
    let client = provider_with(ProviderConfig {
        latency_ms: 150,
        ..Default::default()
    })
    .await;
    let start = Instant::now();
    client.charge("k", 100, "r").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_provider_that_is_gone_is_unavailable_not_a_decline() {
    let client = PaymentsClient::new("http://127.0.0.1:9", Duration::from_millis(300));
    let err = client.charge("k", 100, "r").await.unwrap_err();
    assert!(
        matches!(err, boxoffice::payments::PaymentError::Unavailable(_)),
        "{err}"
    );
    assert!(!client.healthy().await);
}
