//! Stacks: where the box office under load runs. `embedded` builds it in-process on a fresh
//! SQLite file, `local` in-process on a fresh PostgreSQL server started as a child process
//! (compose/), `url` is an already deployed box office. Everything a stack starts lives in a
//! temp dir and stops when the [`Stack`] is dropped or [`Stack::stop`]ped.

use std::str::FromStr;

use boxoffice::Strategy;

use crate::error::{Error, Result};

/// Which stack to use, as `--stack` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackSpec {
    /// In-process box office on SQLite.
    Embedded,
    /// In-process box office on a local PostgreSQL child process.
    Local,
    /// An already running box office at this base URL.
    Url(String),
}

impl StackSpec {
    /// The name in reports: `embedded`, `local` or `url`.
    pub fn name(&self) -> &'static str {
        match self {
            StackSpec::Embedded => "embedded",
            StackSpec::Local => "local",
            StackSpec::Url(_) => "url",
        }
    }
}

impl FromStr for StackSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "embedded" => Ok(StackSpec::Embedded),
            "local" => Ok(StackSpec::Local),
            _ => match s.strip_prefix("url=").or_else(|| s.strip_prefix("url:")) {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                    Ok(StackSpec::Url(url.trim_end_matches('/').to_owned()))
                }
                _ => Err(format!(
                    "unknown stack {s:?}: use embedded, local or url=http://HOST:PORT"
                )),
            },
        }
    }
}

/// The admin account a run uses to seed and audit.
#[derive(Debug, Clone)]
pub struct AdminCredentials {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
}

/// How to build an in-process stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Concurrency strategy of the box office (ignored by `url`: it runs what it runs).
    pub strategy: Strategy,
    /// Admin account for in-process stacks, or the deployed stack's admin for `url`.
    pub admin: AdminCredentials,
    /// Database pool size of in-process stacks.
    pub db_max_connections: Option<u32>,
    /// Hold TTL of in-process stacks, seconds.
    pub hold_ttl_secs: Option<u64>,
    /// Share of payments the in-process provider declines.
    pub payments_decline_rate: f64,
}

/// A running stack.
#[derive(Debug)]
pub struct Stack {
    /// Which one.
    pub spec: StackSpec,
    /// Base URL of the box office.
    pub base_url: String,
    /// The strategy in force, when the lab chose it.
    pub strategy: Option<Strategy>,
    /// Admin account.
    pub admin: AdminCredentials,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<compose::LocalPostgres>,
}

impl Stack {
    /// Provisions the stack and waits until it is ready.
    pub async fn start(spec: &StackSpec, options: &StackOptions) -> Result<Stack> {
        let stack = match spec {
            StackSpec::Url(url) => Stack {
                spec: spec.clone(),
                base_url: url.clone(),
                strategy: None,
                admin: options.admin.clone(),
                shutdown: None,
                server: None,
                _dir: None,
                postgres: None,
            },
            StackSpec::Embedded => {
                let dir = tempfile::Builder::new()
                    .prefix("boxoffice-lab-")
                    .tempdir()
                    .map_err(|e| Error::io("creating the embedded stack's temp dir", e))?;
                let url = format!("sqlite://{}/boxoffice.db", dir.path().display());
                Self::in_process(spec, options, url, Some(dir), None).await?
            }
            StackSpec::Local => {
                let pg = compose::LocalPostgres::start()
                    .await
                    .map_err(|e| Error::Stack(format!("starting PostgreSQL: {e:#}")))?;
                let url = pg
                    .create_database()
                    .await
                    .map_err(|e| Error::Stack(format!("creating the database: {e:#}")))?;
                Self::in_process(spec, options, url, None, Some(pg)).await?
            }
        };
        crate::api::Api::new(&stack.base_url)?
            .wait_ready(std::time::Duration::from_secs(30))
            .await?;
        Ok(stack)
    }

    async fn in_process(
        spec: &StackSpec,
        options: &StackOptions,
        database_url: String,
        dir: Option<tempfile::TempDir>,
        postgres: Option<compose::LocalPostgres>,
    ) -> Result<Stack> {
        let mut cfg = boxoffice::Config::for_tests(database_url);
        cfg.strategy = options.strategy;
        cfg.reaper_interval_ms = 1000;
        cfg.admin_email = Some(options.admin.email.clone());
        cfg.admin_password = Some(options.admin.password.clone());
        cfg.payments_decline_rate = options.payments_decline_rate;
        if let Some(n) = options.db_max_connections {
            cfg.db_max_connections = n;
        }
        if let Some(ttl) = options.hold_ttl_secs {
            cfg.hold_ttl_secs = ttl;
        }
        let app = boxoffice::Application::build(cfg)
            .await
            .map_err(|e| Error::Stack(format!("building the box office: {e:#}")))?;
        let base_url = format!("http://{}", app.address());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Ok(Stack {
            spec: spec.clone(),
            base_url,
            strategy: Some(options.strategy),
            admin: options.admin.clone(),
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
            postgres,
        })
    }

    /// Stops what the stack started (nothing for `url`).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
        }
        if let Some(pg) = self.postgres.take() {
            let _ = pg.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_parse_from_their_command_line_names() {
        assert_eq!("embedded".parse(), Ok(StackSpec::Embedded));
        assert_eq!("local".parse(), Ok(StackSpec::Local));
        assert_eq!(
            "url=http://h:1/".parse(),
            Ok(StackSpec::Url("http://h:1".into()))
        );
        assert!("url=ftp://x".parse::<StackSpec>().is_err());
        assert!("docker".parse::<StackSpec>().is_err());
    }
}
