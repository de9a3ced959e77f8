//! The schedule grammar: fault text (`redis:kill@20s+10s`) and TOML drill files parsed into a
//! [`Schedule`], with start-time spreads drawn from the schedule's seed.
//!
//! Durations are parsed here rather than with `humantime`: the grammar also takes a bare number of
//! seconds and `~spread` suffixes, and every error names the fault it came from.

use std::path::Path;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use super::{FaultAction, Schedule, ScheduleError, ScheduledFault};
use crate::toxics::{
    bandwidth, latency, limit_data, reset_peer, slicer, slow_close, timeout, ToxicKind,
};

/// Parses `200ms`, `20s`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 500ms, 20s, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {s:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn ms_of(s: &str) -> Result<u64, String> {
    Ok(parse_duration(s)?.as_millis() as u64)
}

/// `a~b` → (a, Some(b)).
fn spread(s: &str) -> (&str, Option<&str>) {
    match s.split_once('~') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// Parses an action with its arguments (`kill`, `latency=200ms~50ms`, `bandwidth=100`, …).
pub fn parse_action(s: &str) -> Result<FaultAction, String> {
    let (name, args) = match s.split_once('=') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (s.trim(), None),
    };
    let need = |what: &str| args.ok_or_else(|| format!("{name} needs ={what}"));
    let toxic = |toxic| Ok(FaultAction::Toxic { toxic });
    match name {
        "kill" => Ok(FaultAction::Kill),
        "pause" => Ok(FaultAction::Pause),
        "stop" | "restart" => Ok(FaultAction::Stop),
        "failover" => Ok(FaultAction::Failover),
        "down" => Ok(FaultAction::Down),
        "partition" => Ok(FaultAction::Partition),
        "latency" => {
            let (l, j) = spread(need("LATENCY[~JITTER]")?);
            toxic(ToxicKind::Latency(latency::Config {
                latency: ms_of(l)?,
                jitter: j.map(ms_of).transpose()?.unwrap_or(0),
            }))
        }
        "bandwidth" => toxic(ToxicKind::Bandwidth(bandwidth::Config {
            rate: need("KB/s")?
                .trim_end_matches("kb")
                .trim_end_matches("KB")
                .parse()
                .map_err(|e| format!("bandwidth: {e}"))?,
        })),
        "timeout" => toxic(ToxicKind::Timeout(timeout::Config {
            timeout: args.map(ms_of).transpose()?.unwrap_or(0),
        })),
        "reset_peer" | "reset" => toxic(ToxicKind::ResetPeer(reset_peer::Config {
            timeout: args.map(ms_of).transpose()?.unwrap_or(0),
        })),
        "slow_close" => toxic(ToxicKind::SlowClose(slow_close::Config {
            delay: ms_of(need("DELAY")?)?,
        })),
        "limit_data" => toxic(ToxicKind::LimitData(limit_data::Config {
            bytes: need("BYTES")?
                .parse()
                .map_err(|e| format!("limit_data: {e}"))?,
        })),
        "slicer" => {
            let (avg, var) = spread(need("AVERAGE[~VARIATION]")?);
            let average_size: usize = avg.parse().map_err(|e| format!("slicer: {e}"))?;
            let size_variation: usize = var
                .map(str::parse)
                .transpose()
                .map_err(|e| format!("slicer: {e}"))?
                .unwrap_or(0);
            let cfg = slicer::Config {
                average_size,
                size_variation,
                delay: 0,
            };
            let kind =
                ToxicKind::from_parts("slicer", &serde_json::to_value(&cfg).unwrap_or_default())
                    .map_err(|e| e.to_string())?;
            toxic(kind)
        }
        other => Err(format!("unknown action {other:?}")),
    }
}

impl Schedule {
    /// Parses comma-separated faults. Start times with a spread (`@20s~5s`) are drawn
    /// uniformly from `[at - spread, at + spread]` with an RNG seeded by `seed`.
    pub fn parse(text: &str, seed: u64) -> Result<Schedule, ScheduleError> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut faults = Vec::new();
        for item in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            faults.push(
                parse_fault(item, &mut rng).map_err(|reason| ScheduleError::Parse {
                    fault: item.to_string(),
                    reason,
                })?,
            );
        }
        Ok(Schedule::new(None, seed, faults))
    }

    /// Parses a TOML drill:
    ///
    /// ```toml
    /// name = "redis-failover"
    /// seed = 1
    /// [[fault]]
    /// target = "redis"
    /// action = "failover"
    /// at = "20s"          # may be "20s~5s"
    /// duration = "30s"    # optional
    /// ```
    pub fn from_toml(text: &str) -> Result<Schedule, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            name: Option<String>,
            #[allow(dead_code)]
            description: Option<String>,
            #[serde(default)]
            seed: u64,
            #[serde(default)]
            fault: Vec<Fault>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fault {
            target: String,
            action: String,
            at: String,
            duration: Option<String>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut rng = SmallRng::seed_from_u64(file.seed);
        let faults = file
            .fault
            .into_iter()
            .map(|f| {
                let mut text = format!("{}:{}@{}", f.target, f.action, f.at);
                if let Some(d) = f.duration {
                    text.push('+');
                    text.push_str(&d);
                }
                parse_fault(&text, &mut rng).map_err(|e| format!("{text}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Schedule::new(file.name, file.seed, faults))
    }

    /// Loads a drill file.
    pub fn load(path: &Path) -> Result<Schedule, ScheduleError> {
        let err = |reason: String| ScheduleError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Schedule::from_toml(&text).map_err(err)
    }

    /// `spec` is a drill name (looked up as `<dir>/<name>.toml`), a path to a TOML file, or
    /// schedule text.
    pub fn resolve(spec: &str, drills_dir: &Path, seed: u64) -> Result<Schedule, ScheduleError> {
        let named = drills_dir.join(format!("{spec}.toml"));
        if !spec.contains(':') && named.is_file() {
            return Schedule::load(&named);
        }
        let path = Path::new(spec);
        if spec.ends_with(".toml") || path.is_file() {
            return Schedule::load(path);
        }
        Schedule::parse(spec, seed)
    }
}

fn parse_fault(text: &str, rng: &mut SmallRng) -> Result<ScheduledFault, String> {
    let (target, rest) = text
        .split_once(':')
        .ok_or("expected target:action@at[+duration]")?;
    let (action, when) = rest.rsplit_once('@').ok_or("missing @start (e.g. @20s)")?;
    let (at, duration) = match when.split_once('+') {
        Some((a, d)) => (a, Some(parse_duration(d)?)),
        None => (when, None),
    };
    let (at, jitter) = spread(at);
    let mut at = parse_duration(at)?;
    if let Some(j) = jitter {
        let j = parse_duration(j)?.as_millis() as i64;
        let offset = rng.gen_range(-j..=j);
        at = Duration::from_millis((at.as_millis() as i64 + offset).max(0) as u64);
    }
    let target = target.trim();
    if target.is_empty() {
        return Err("empty target".into());
    }
    Ok(ScheduledFault {
        target: target.to_string(),
        action: parse_action(action)?,
        at,
        duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_issue_example_parses_into_two_faults() {
        let sched =
            Schedule::parse("redis:kill@20s+10s,postgres:latency=200ms~50ms@40s+15s", 7).unwrap();
        assert_eq!(sched.seed, 7);
        assert_eq!(
            sched.faults,
            vec![
                ScheduledFault {
                    target: "redis".into(),
                    action: FaultAction::Kill,
                    at: s(20),
                    duration: Some(s(10)),
                },
                ScheduledFault {
                    target: "postgres".into(),
                    action: FaultAction::Toxic {
                        toxic: ToxicKind::Latency(latency::Config {
                            latency: 200,
                            jitter: 50
                        })
                    },
                    at: s(40),
                    duration: Some(s(15)),
                },
            ]
        );
        assert_eq!(sched.span(), s(55));
    }

    #[test]
    fn faults_are_sorted_by_start_and_may_have_no_end() {
        let sched = Schedule::parse("app-1:pause@30s+5s, payments:down@5s", 0).unwrap();
        assert_eq!(sched.faults[0].target, "payments");
        assert_eq!(sched.faults[0].duration, None);
        assert_eq!(sched.faults[1].action, FaultAction::Pause);
    }

    #[test]
    fn every_action_of_the_grammar_parses() {
        for a in [
            "kill",
            "pause",
            "stop",
            "failover",
            "down",
            "partition",
            "latency=100ms",
            "bandwidth=100",
            "timeout=0",
            "timeout=2s",
            "reset_peer=100ms",
            "slicer=64~32",
            "limit_data=1000",
            "slow_close=500ms",
        ] {
            parse_action(a).unwrap_or_else(|e| panic!("{a}: {e}"));
        }
        assert!(parse_action("explode").is_err());
        assert!(parse_action("latency").is_err());
        assert!(parse_action("slicer=10~10").is_err());
    }

    #[test]
    fn durations_accept_the_usual_units() {
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), s(120));
        assert_eq!(parse_duration("3").unwrap(), s(3));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn malformed_faults_say_what_is_wrong() {
        for bad in ["redis", "redis:kill", ":kill@1s", "redis:kill@later"] {
            let e = Schedule::parse(bad, 0).unwrap_err();
            assert!(matches!(e, ScheduleError::Parse { .. }), "{bad}");
        }
    }

    #[test]
    fn a_start_spread_is_drawn_from_the_seed_and_replays() {
        let text = "redis:kill@20s~5s+1s,redis:pause@60s~10s";
        let a = Schedule::parse(text, 42).unwrap();
        assert_eq!(a, Schedule::parse(text, 42).unwrap());
        assert!(a.faults[0].at >= s(15) && a.faults[0].at <= s(25));
        let differs = (0..20).any(|seed| Schedule::parse(text, seed).unwrap() != a);
        assert!(differs);
    }

    #[test]
    fn the_ready_made_drills_all_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules");
        for name in [
            "redis-failover",
            "postgres-restart",
            "postgres-failover",
            "kafka-down",
            "payments-slow",
            "payments-down",
            "app-crash",
            "app-pause",
            "partition-db",
        ] {
            let sched = Schedule::resolve(name, &dir, 0).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sched.name.as_deref(), Some(name));
            assert!(!sched.faults.is_empty(), "{name}");
        }
        // Text still works through resolve.
        assert_eq!(
            Schedule::resolve("redis:kill@1s", &dir, 0)
                .unwrap()
                .faults
                .len(),
            1
        );
    }
}
