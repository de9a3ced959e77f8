//! The progress line on stderr while a run is under way: users, requests/s, rejections,
//! errors and unknown outcomes (each apart: a sold-out answer is not an error), elapsed and
//! remaining time. Redrawn in place on a terminal, one line every 5 s otherwise.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::history::Counters;

/// What the line knows about the run's shape.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name.
    pub scenario: String,
    /// Virtual users.
    pub users: usize,
    /// Planned duration, when the run is time-boxed.
    pub duration: Option<Duration>,
}

/// Draws the line until dropped.
#[derive(Debug)]
pub struct Progress {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing.
    pub fn start(plan: Plan, counters: Arc<Counters>) -> Self {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let tty = std::io::stderr().is_terminal();
        let every = if tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut last = (start, 0u64);
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = ticker.tick() => {}
                }
                let now = Instant::now();
                let requests = counters.requests.load(Ordering::Relaxed);
                let rps =
                    (requests - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
                last = (now, requests);
                let line = render(&plan, &counters, start.elapsed(), rps);
                let mut err = std::io::stderr().lock();
                if tty {
                    let _ = write!(err, "\r\x1b[2K{line}");
                } else {
                    let _ = writeln!(err, "{line}");
                }
                let _ = err.flush();
            }
            if tty {
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
            }
        });
        Self {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops and erases the line.
    pub async fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// One line of progress.
pub fn render(plan: &Plan, c: &Counters, elapsed: Duration, rps: f64) -> String {
    let started = c.users_started.load(Ordering::Relaxed);
    let done = c.users_done.load(Ordering::Relaxed);
    let requests = c.requests.load(Ordering::Relaxed);
    let rejected = c.rejected.load(Ordering::Relaxed);
    let errors = c.errors.load(Ordering::Relaxed);
    let unknown = c.unknown.load(Ordering::Relaxed);
    let remaining = match plan.duration {
        Some(d) => format!("~{}s", d.saturating_sub(elapsed).as_secs()),
        None if done > 0 && (done as usize) < plan.users => {
            let per_user = elapsed.as_secs_f64() / done as f64;
            format!("~{:.0}s", per_user * (plan.users - done as usize) as f64)
        }
        None => "—".to_owned(),
    };
    let users = if started > 0 {
        format!(
            "users {}/{} (done {})",
            started.min(plan.users as u64),
            plan.users,
            done
        )
    } else {
        format!("users {}", plan.users)
    };
    format!(
        "{}  {users}  requests {requests} ({rps:.0}/s)  rejected {rejected}  errors {errors}  unknown {unknown}  elapsed {}s  remaining {remaining}",
        plan.scenario,
        elapsed.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_users_rate_errors_and_time() {
        let c = Counters::default();
        c.users_started.store(10, Ordering::Relaxed);
        c.users_done.store(5, Ordering::Relaxed);
        c.requests.store(30, Ordering::Relaxed);
        c.rejected.store(11, Ordering::Relaxed);
        c.errors.store(2, Ordering::Relaxed);
        c.unknown.store(3, Ordering::Relaxed);
        let plan = Plan {
            scenario: "flash-sale".into(),
            users: 10,
            duration: None,
        };
        let line = render(&plan, &c, Duration::from_secs(4), 7.5);
        assert_eq!(line, "flash-sale  users 10/10 (done 5)  requests 30 (8/s)  rejected 11  errors 2  unknown 3  elapsed 4s  remaining ~4s");
    }
}
