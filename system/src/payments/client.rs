//! The box office's client of the payment provider.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

/// What a charge came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Money captured; the provider's charge id.
    Captured(String),
    /// The provider declined.
    Declined,
}

/// Why a call to the provider did not give an answer we can act on.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// Unreachable, timed out, or a 5xx: the outcome is unknown.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (a bug on our side).
    #[error("payment provider rejected the request: {0}")]
    Rejected(String),
}

/// HTTP client of the payment provider.
#[derive(Debug, Clone)]
pub struct PaymentsClient {
    base: String,
    http: reqwest::Client,
    /// Where calls are counted and timed (`boxoffice_payments_total`, `…_duration_seconds`).
    metrics: Option<crate::metrics::Metrics>,
}

#[derive(Debug, Deserialize)]
struct ChargeBody {
    id: String,
}

impl PaymentsClient {
    /// A client of the provider at `base_url` with a per-call `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .pool_max_idle_per_host(64)
                .build()
                .expect("reqwest client builds"),
            metrics: None,
        }
    }

    /// Counts and times every charge and refund in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn observe(&self, operation: &str, outcome: &str, began: std::time::Instant) {
        if let Some(m) = &self.metrics {
            m.payment(operation, outcome, began.elapsed());
        }
    }

    /// The provider's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Captures `amount` (minor units). Retrying with the same `key` never charges twice.
    #[tracing::instrument(name = "payments.charge", skip_all, fields(otel.kind = "client", amount = amount))]
    pub async fn charge(
        &self,
        key: &str,
        amount: i64,
        reference: &str,
    ) -> Result<ChargeOutcome, PaymentError> {
        let began = std::time::Instant::now();
        let result = self.charge_once(key, amount, reference).await;
        let outcome = match &result {
            Ok(ChargeOutcome::Captured(_)) => "captured",
            Ok(ChargeOutcome::Declined) => "declined",
            Err(PaymentError::Unavailable(_)) => "unavailable",
            Err(PaymentError::Rejected(_)) => "rejected",
        };
        self.observe("charge", outcome, began);
        result
    }

    async fn charge_once(
        &self,
        key: &str,
        amount: i64,
        reference: &str,
    ) -> Result<ChargeOutcome, PaymentError> {
        let res = self
            .http
            .post(format!("{}/v1/charges", self.base))
            .headers(crate::telemetry::trace_headers())
            .header("Idempotency-Key", key)
            .json(&json!({"amount": amount, "reference": reference}))
            .send()
            .await
            .map_err(|e| PaymentError::Unavailable(e.to_string()))?;
        let status = res.status();
        if status.as_u16() == 402 {
            return Ok(ChargeOutcome::Declined);
        }
        if status.is_server_error() {
            return Err(PaymentError::Unavailable(format!("status {status}")));
        }
        if !status.is_success() {
            let text = res.text().await.unwrap_or_default();
            return Err(PaymentError::Rejected(format!("status {status}: {text}")));
        }
        let body: ChargeBody = res
            .json()
            .await
            .map_err(|e| PaymentError::Unavailable(e.to_string()))?;
        Ok(ChargeOutcome::Captured(body.id))
    }

    /// Refunds `amount` of charge `charge_id`. Retrying with the same `key` refunds once.
    #[tracing::instrument(name = "payments.refund", skip_all, fields(otel.kind = "client", amount = amount))]
    pub async fn refund(
        &self,
        charge_id: &str,
        key: &str,
        amount: i64,
    ) -> Result<String, PaymentError> {
        let began = std::time::Instant::now();
        let result = self.refund_once(charge_id, key, amount).await;
        let outcome = match &result {
            Ok(_) => "refunded",
            Err(PaymentError::Unavailable(_)) => "unavailable",
            Err(PaymentError::Rejected(_)) => "rejected",
        };
        self.observe("refund", outcome, began);
        result
    }

    async fn refund_once(
        &self,
        charge_id: &str,
        key: &str,
        amount: i64,
    ) -> Result<String, PaymentError> {
        let res = self
            .http
            .post(format!("{}/v1/charges/{charge_id}/refunds", self.base))
            .headers(crate::telemetry::trace_headers())
            .header("Idempotency-Key", key)
            .json(&json!({"amount": amount}))
            .send()
            .await
            .map_err(|e| PaymentError::Unavailable(e.to_string()))?;
        let status = res.status();
        if status.is_server_error() {
            return Err(PaymentError::Unavailable(format!("status {status}")));
        }
        if !status.is_success() {
            let text = res.text().await.unwrap_or_default();
            return Err(PaymentError::Rejected(format!("status {status}: {text}")));
        }
        let body: ChargeBody = res
            .json()
            .await
            .map_err(|e| PaymentError::Unavailable(e.to_string()))?;
        Ok(body.id)
    }

    /// Whether the provider answers its health check.
    pub async fn healthy(&self) -> bool {
        self.http
            .get(format!("{}/health", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    }
}
