//! A client for the Toxiproxy HTTP API. It speaks only what Toxiproxy 2.x speaks (plus
//! `/metrics`), so the same client drives this crate's [`crate::server::ProxyServer`] and a
//! real Toxiproxy container in the docker-compose stack.
//!
//! It is written over `reqwest` rather than taken from a Toxiproxy client crate: a dozen routes,
//! sharing their types ([`crate::ToxicSpec`], [`crate::ProxyInfo`]) with the server so the two
//! cannot drift, plus `/metrics`.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::proxy::{ProxyConfig, ProxyInfo, ProxyUpdate};
use crate::toxics::ToxicSpec;

/// A Toxiproxy API client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ToxiproxyClient {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: String,
}

#[derive(Deserialize)]
struct Populated {
    proxies: Vec<ProxyInfo>,
}

#[derive(Deserialize)]
struct Version {
    version: String,
}

impl ToxiproxyClient {
    /// A client for the API at `base` (`http://127.0.0.1:8474`; a bare `host:port` gets
    /// `http://`).
    pub fn new(base: impl Into<String>) -> Self {
        let mut base = base.into();
        if !base.contains("://") {
            base = format!("http://{base}");
        }
        while base.ends_with('/') {
            base.pop();
        }
        ToxiproxyClient {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header(
                reqwest::header::USER_AGENT,
                concat!("chaos-client/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        if status.is_client_error() || status.is_server_error() {
            let text = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<ApiErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or(text);
            return Err(match (status, message.as_str()) {
                (StatusCode::NOT_FOUND, "proxy not found") => Error::ProxyNotFound,
                (StatusCode::NOT_FOUND, "toxic not found") => Error::ToxicNotFound,
                (StatusCode::CONFLICT, "proxy already exists") => Error::ProxyAlreadyExists,
                (StatusCode::CONFLICT, "toxic already exists") => Error::ToxicAlreadyExists,
                _ => Error::Api {
                    status: status.as_u16(),
                    message,
                },
            });
        }
        Ok(resp)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        Ok(self.send(method, path, body).await?.json().await?)
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<String> {
        let text = self
            .send(Method::GET, "/version", None)
            .await?
            .text()
            .await?;
        // Toxiproxy < 2.6 answered plain text; later versions answer JSON.
        Ok(serde_json::from_str::<Version>(&text)
            .map(|v| v.version)
            .unwrap_or_else(|_| text.trim().to_string()))
    }

    /// `GET /proxies`.
    pub async fn proxies(&self) -> Result<BTreeMap<String, ProxyInfo>> {
        self.json(Method::GET, "/proxies", None).await
    }

    /// `POST /proxies` (201; 409 if the name is taken).
    pub async fn create_proxy(&self, config: &ProxyConfig) -> Result<ProxyInfo> {
        self.json(Method::POST, "/proxies", Some(to_value(config)?))
            .await
    }

    /// `GET /proxies/{name}`.
    pub async fn proxy(&self, name: &str) -> Result<ProxyInfo> {
        self.json(Method::GET, &format!("/proxies/{}", seg(name)), None)
            .await
    }

    /// `POST /proxies/{name}` with the fields to change.
    pub async fn update_proxy(&self, name: &str, update: &ProxyUpdate) -> Result<ProxyInfo> {
        self.json(
            Method::POST,
            &format!("/proxies/{}", seg(name)),
            Some(to_value(update)?),
        )
        .await
    }

    /// Brings a proxy up.
    pub async fn enable(&self, name: &str) -> Result<ProxyInfo> {
        self.update_proxy(
            name,
            &ProxyUpdate {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
    }

    /// Takes a proxy down: new connections are refused, open ones dropped.
    pub async fn disable(&self, name: &str) -> Result<ProxyInfo> {
        self.update_proxy(
            name,
            &ProxyUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
    }

    /// `DELETE /proxies/{name}`.
    pub async fn delete_proxy(&self, name: &str) -> Result<()> {
        self.send(Method::DELETE, &format!("/proxies/{}", seg(name)), None)
            .await?;
        Ok(())
    }

    /// `GET /proxies/{name}/toxics`.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<ToxicSpec>> {
        self.json(
            Method::GET,
            &format!("/proxies/{}/toxics", seg(proxy)),
            None,
        )
        .await
    }

    /// `POST /proxies/{name}/toxics`.
    pub async fn add_toxic(&self, proxy: &str, toxic: &ToxicSpec) -> Result<ToxicSpec> {
        self.json(
            Method::POST,
            &format!("/proxies/{}/toxics", seg(proxy)),
            Some(to_value(toxic)?),
        )
        .await
    }

    /// `GET /proxies/{name}/toxics/{toxic}`.
    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<ToxicSpec> {
        self.json(
            Method::GET,
            &format!("/proxies/{}/toxics/{}", seg(proxy), seg(toxic)),
            None,
        )
        .await
    }

    /// `POST /proxies/{name}/toxics/{toxic}`: attributes absent from `attributes` keep their
    /// value; `toxicity` unchanged when `None`.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        attributes: serde_json::Value,
        toxicity: Option<f32>,
    ) -> Result<ToxicSpec> {
        let mut body = serde_json::json!({ "attributes": attributes });
        if let Some(t) = toxicity {
            body["toxicity"] = serde_json::json!(t);
        }
        self.json(
            Method::POST,
            &format!("/proxies/{}/toxics/{}", seg(proxy), seg(toxic)),
            Some(body),
        )
        .await
    }

    /// `DELETE /proxies/{name}/toxics/{toxic}`.
    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("/proxies/{}/toxics/{}", seg(proxy), seg(toxic)),
            None,
        )
        .await?;
        Ok(())
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    pub async fn reset(&self) -> Result<()> {
        self.send(Method::POST, "/reset", None).await?;
        Ok(())
    }

    /// `POST /populate`: creates or replaces the proxies.
    pub async fn populate(&self, proxies: &[ProxyConfig]) -> Result<Vec<ProxyInfo>> {
        let p: Populated = self
            .json(Method::POST, "/populate", Some(to_value(proxies)?))
            .await?;
        Ok(p.proxies)
    }

    /// `GET /metrics` (Prometheus text; this crate's server, or Toxiproxy with metrics on).
    pub async fn metrics(&self) -> Result<String> {
        Ok(self
            .send(Method::GET, "/metrics", None)
            .await?
            .text()
            .await?)
    }
}

fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::BadRequest(e.to_string()))
}

/// Percent-encodes a path segment (names are usually plain, but `/` or spaces must not break
/// the route).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
