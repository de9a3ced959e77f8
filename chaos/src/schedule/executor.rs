//! The executor: runs a [`Schedule`] against named targets, applying each fault at its offset
//! and reverting it after its duration, and records what happened when.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{FaultTarget, Schedule, ScheduleError, ScheduledFault};

/// What happened to one fault during a run, as offsets from the run's start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRecord {
    /// The fault as scheduled.
    pub fault: ScheduledFault,
    /// When applying it began (none if applying failed).
    pub applied_at: Option<Duration>,
    /// When reverting it finished (the component is back).
    pub reverted_at: Option<Duration>,
    /// Why applying or reverting failed, if it did.
    pub error: Option<String>,
}

/// Runs `schedule` against `targets`, starting now: each fault is applied at its offset and
/// reverted after its duration. Faults run concurrently (overlapping windows are allowed).
/// Fails before doing anything if a target is missing.
pub async fn run(
    schedule: &Schedule,
    targets: &HashMap<String, Arc<dyn FaultTarget>>,
) -> Result<Vec<FaultRecord>, ScheduleError> {
    for f in &schedule.faults {
        if !targets.contains_key(&f.target) {
            return Err(ScheduleError::UnknownTarget(f.target.clone()));
        }
    }
    let start = tokio::time::Instant::now();
    let tasks: Vec<_> = schedule
        .faults
        .iter()
        .cloned()
        .map(|fault| {
            let target = Arc::clone(&targets[&fault.target]);
            tokio::spawn(async move {
                let mut record = FaultRecord {
                    fault: fault.clone(),
                    applied_at: None,
                    reverted_at: None,
                    error: None,
                };
                tokio::time::sleep_until(start + fault.at).await;
                tracing::info!(target = %fault.target, action = %fault.action, "fault applied");
                // The fault starts when applying it starts: a failover or a stop takes a
                // while, and clients feel it from its first step.
                let began = start.elapsed();
                if let Err(e) = target.apply(&fault.action).await {
                    record.error = Some(e.to_string());
                    return record;
                }
                record.applied_at = Some(began);
                if let Some(d) = fault.duration {
                    tokio::time::sleep_until(start + fault.at + d).await;
                    tracing::info!(target = %fault.target, action = %fault.action, "fault reverted");
                    match target.revert(&fault.action).await {
                        Ok(()) => record.reverted_at = Some(start.elapsed()),
                        Err(e) => record.error = Some(e.to_string()),
                    }
                }
                record
            })
        })
        .collect();
    let mut records = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(r) = t.await {
            records.push(r);
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::schedule::{FaultAction, FaultFuture, FaultTarget, Schedule, ScheduleError};

    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
    }

    impl FaultTarget for Recorder {
        fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
            self.calls.lock().unwrap().push(format!("apply {action}"));
            Box::pin(async { Ok(()) })
        }
        fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
            self.calls.lock().unwrap().push(format!("revert {action}"));
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn run_applies_and_reverts_each_fault_on_time() {
        let redis = Arc::new(Recorder::default());
        let mut targets: HashMap<String, Arc<dyn FaultTarget>> = HashMap::new();
        targets.insert("redis".into(), redis.clone());
        let sched = Schedule::parse("redis:kill@100ms+100ms,redis:pause@300ms", 0).unwrap();
        let records = run(&sched, &targets).await.unwrap();
        let ms = Duration::from_millis;
        let within =
            |d: Option<Duration>, want: u64| d.is_some_and(|d| d >= ms(want) && d < ms(want + 80));
        assert!(within(records[0].applied_at, 100), "{records:?}");
        assert!(within(records[0].reverted_at, 200), "{records:?}");
        assert!(within(records[1].applied_at, 300), "{records:?}");
        assert_eq!(records[1].reverted_at, None);
        assert_eq!(
            *redis.calls.lock().unwrap(),
            ["apply kill", "revert kill", "apply pause"]
        );
        let missing = Schedule::parse("kafka:down@1s", 0).unwrap();
        assert!(matches!(
            run(&missing, &targets).await,
            Err(ScheduleError::UnknownTarget(_))
        ));
    }
}
