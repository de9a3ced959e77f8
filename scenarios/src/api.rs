//! A small client of the box office's HTTP API for everything outside the measured attack:
//! seeding (admin creates the catalogue, users register and log in) and reading the final
//! state through the admin audit endpoints, so the checker works against any stack,
//! including an already deployed one (`--stack url=…`).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::checker::{
    BookingRecord, CacheReading, CouponAudit, FinalState, HoldRecord, PaymentsAudit, RoundAudit,
    RoundSales, RoundState,
};
use crate::error::{Error, Result};

/// How many times the lab's own client sends a request the box office refused past capacity.
pub const OVERLOADED_TRIES: u32 = 30;
/// The API client; cheap to clone.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// A response: status and JSON body (`Value::Null` when the body was not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
}

impl Reply {
    /// `error.code` of an error body.
    pub fn error_code(&self) -> Option<&str> {
        self.body.pointer("/error/code").and_then(Value::as_str)
    }

    fn ok_or(self, context: &str) -> Result<Value> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(Error::api(
                context,
                format!("HTTP {}: {}", self.status, self.body),
            ))
        }
    }
}

impl Api {
    /// A client of the box office at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(128)
            .build()
            .map_err(|e| Error::api("building the HTTP client", e))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and reads the JSON body; transport errors are errors. A request the
    /// box office did not start (503 `overloaded` past capacity, or `database_unavailable`
    /// while its database is unreachable: sending it again is safe) is sent again after its `Retry-After`, jittered, up to
    /// [`OVERLOADED_TRIES`] times: the lab's own seeding and checking must not fail because
    /// the load it generates is being shed.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let mut tries = 1;
        loop {
            let (reply, retry_after) = self.send_once(method.clone(), path, token, body).await?;
            let code = reply.body.pointer("/error/code").and_then(Value::as_str);
            let not_started = crate::history::not_started(Some(reply.status), code);
            if !not_started || tries >= OVERLOADED_TRIES {
                return Ok(reply);
            }
            tries += 1;
            let wait = crate::call::refusal_delay(retry_after, &mut rand::thread_rng());
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(Reply, Option<u64>)> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req
            .send()
            .await
            .map_err(|e| Error::api(format!("{method} {path}"), e))?;
        let status = res.status().as_u16();
        let retry_after = crate::call::retry_after(res.headers());
        let bytes = res
            .bytes()
            .await
            .map_err(|e| Error::api(format!("{method} {path}"), e))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((Reply { status, body }, retry_after))
    }

    async fn get_as<T: DeserializeOwned>(&self, path: &str, token: &str) -> Result<T> {
        let v = self
            .send(reqwest::Method::GET, path, Some(token), None)
            .await?
            .ok_or(path)?;
        serde_json::from_value(v).map_err(|e| Error::api(path, e))
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
        context: &str,
    ) -> Result<Value> {
        self.send(reqwest::Method::POST, path, token, Some(&body))
            .await?
            .ok_or(context)
    }

    /// Waits until `GET /health/ready` answers 200, up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self
                .send(reqwest::Method::GET, "/health/ready", None, None)
                .await
            {
                Ok(r) if r.status == 200 => return Ok(()),
                other if tokio::time::Instant::now() >= deadline => {
                    let why = match other {
                        Ok(r) => format!("HTTP {} {}", r.status, r.body),
                        Err(e) => e.to_string(),
                    };
                    return Err(Error::Stack(format!("{} is not ready: {why}", self.base)));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Registers a user (a 409 for an existing e-mail is fine) and logs in; returns the
    /// user id and an access token.
    pub async fn register_and_login(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<(i64, String)> {
        let reg = self
            .send(
                reqwest::Method::POST,
                "/v1/users",
                None,
                Some(&json!({"email": email, "password": password, "name": name})),
            )
            .await?;
        if reg.status != 201 && reg.status != 409 {
            return Err(Error::api(
                format!("registering {email}"),
                format!("HTTP {}: {}", reg.status, reg.body),
            ));
        }
        let token = self.login(email, password).await?;
        let id = match reg.body.get("id").and_then(Value::as_i64) {
            Some(id) => id,
            None => user_id_from_token(&token)
                .ok_or_else(|| Error::api("reading the user id", "no id in the token"))?,
        };
        Ok((id, token))
    }

    /// Logs in; returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let v = self
            .post(
                "/v1/auth/token",
                None,
                json!({"email": email, "password": password}),
                &format!("logging in {email}"),
            )
            .await?;
        v.get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::api("logging in", "no access_token"))
    }

    /// `POST` as admin, returning the body of a 2xx.
    pub async fn admin_post(&self, token: &str, path: &str, body: Value) -> Result<Value> {
        self.post(path, Some(token), body, &format!("POST {path}"))
            .await
    }

    /// `GET` a JSON body.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> Result<Value> {
        self.send(reqwest::Method::GET, path, token, None)
            .await?
            .ok_or(path)
    }

    /// Reads the final state of `rounds` and `coupons` through the admin API. Listings the
    /// stack does not offer (404) are left out, and the checks that need them are skipped.
    pub async fn final_state(
        &self,
        admin_token: &str,
        rounds: &[i64],
        coupons: &[String],
    ) -> Result<FinalState> {
        let mut state = FinalState::default();
        for &id in rounds {
            let audit: RoundAudit = self
                .get_as(&format!("/v1/admin/rounds/{id}/audit"), admin_token)
                .await?;
            let bookings = self
                .optional_list::<BookingRecord>(
                    &format!("/v1/admin/rounds/{id}/bookings"),
                    admin_token,
                    "bookings",
                )
                .await?;
            let holds = self
                .optional_list::<HoldRecord>(
                    &format!("/v1/admin/rounds/{id}/holds"),
                    admin_token,
                    "holds",
                )
                .await?;
            let sales = self.settled_sales(id, admin_token).await?;
            state.rounds.push(RoundState {
                audit,
                bookings,
                holds,
                sales,
                cache: None,
            });
        }
        self.read_cache(&mut state, admin_token).await;
        state.payments = Some(
            self.get_as::<PaymentsAudit>("/v1/admin/payments/audit", admin_token)
                .await?,
        );
        for code in coupons {
            state.coupons.push(
                self.get_as::<CouponAudit>(&format!("/v1/admin/coupons/{code}/audit"), admin_token)
                    .await?,
            );
        }
        Ok(state)
    }

    /// The round's sales once the ledger has caught up with the database (polled for up to
    /// 20 s, since the outbox relay and the consumer run behind the writes); what was there at
    /// the deadline otherwise. `None` when the stack has no sales route.
    async fn settled_sales(&self, round: i64, token: &str) -> Result<Option<RoundSales>> {
        let path = format!("/v1/admin/rounds/{round}/sales");
        let began = std::time::Instant::now();
        loop {
            let r = self
                .send(reqwest::Method::GET, &path, Some(token), None)
                .await?;
            if r.status == 404 || r.status == 405 {
                return Ok(None);
            }
            let mut sales: RoundSales =
                serde_json::from_value(r.ok_or(&path)?).map_err(|e| Error::api(&path, e))?;
            sales.waited_ms = began.elapsed().as_millis() as i64;
            if sales.database == sales.ledger || began.elapsed() > Duration::from_secs(20) {
                return Ok(Some(sales));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Reads every round's public (cached) availability now and again after the cache TTL,
    /// beside the database's count (the audit, read again after the TTL in case the reaper
    /// released seats meanwhile).
    async fn read_cache(&self, state: &mut FinalState, token: &str) {
        async fn available(api: &Api, round: i64) -> Option<i64> {
            let r = api
                .send(
                    reqwest::Method::GET,
                    &format!("/v1/rounds/{round}/availability"),
                    None,
                    None,
                )
                .await
                .ok()?;
            (r.status == 200).then(|| r.body["available"].as_i64())?
        }
        let mut first = Vec::new();
        for r in &state.rounds {
            first.push(available(self, r.audit.round_id).await);
        }
        // Longer than the box office's default cache TTL (2 s).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        for (r, cached) in state.rounds.iter_mut().zip(first) {
            let id = r.audit.round_id;
            let after = available(self, id).await;
            let audit: Option<RoundAudit> = self
                .get_as(&format!("/v1/admin/rounds/{id}/audit"), token)
                .await
                .ok();
            if let (Some(cached), Some(after), Some(audit)) = (cached, after, audit) {
                r.cache = Some(CacheReading {
                    cached_available: cached,
                    after_ttl_available: after,
                    database_available: audit.available,
                });
            }
        }
    }

    async fn optional_list<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        field: &str,
    ) -> Result<Option<Vec<T>>> {
        let r = self
            .send(reqwest::Method::GET, path, Some(token), None)
            .await?;
        // The round was just audited, so a 404 here means the route itself is missing.
        if r.status == 404 || r.status == 405 {
            return Ok(None);
        }
        let body = r.ok_or(path)?;
        let list = body.get(field).cloned().unwrap_or(Value::Null);
        serde_json::from_value(list)
            .map(Some)
            .map_err(|e| Error::api(path, e))
    }
}

/// Reads `sub` from a JWT's payload without verifying it (it came from the server).
fn user_id_from_token(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64_url_decode(payload)?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    match v.get("sub")? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn base64_url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_id_is_read_from_a_token_payload() {
        // {"sub":"42"}
        assert_eq!(user_id_from_token("x.eyJzdWIiOiI0MiJ9.y"), Some(42));
        assert_eq!(user_id_from_token("garbage"), None);
    }
}
