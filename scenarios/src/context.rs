//! What every virtual user shares during an attack: the seeded world, the history
//! recorder, the seed, and how users arrive — all together through a [`Gate`] (closed
//! model, a flash-sale crowd, which first gathers on the sale's page in a lobby) or on a
//! fixed schedule through a [`Pacer`] (open model).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use goose::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::call::{send, Request};
use crate::history::{OpKind, Recorder};
use crate::seed::{SeededUser, World};

/// The future a transaction function returns.
pub type TxFuture<'a> = Pin<Box<dyn Future<Output = TransactionResult> + Send + 'a>>;

/// A persona's step: a plain function of the Goose user and the shared context.
pub type Step = for<'a> fn(&'a mut GooseUser, Arc<RunContext>) -> TxFuture<'a>;

/// How many times a closed-model buyer tries a request again after the box office refused
/// it past capacity (see [`RunContext::after_refusal`]).
pub const REFUSED_RETRIES: u32 = 5;

/// Knobs the personas read.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Share of holds that pick seats (the rest ask for a quantity), 0..=1.
    pub chosen_seats_share: f64,
    /// Share of holds given back before booking (browse-and-buy), 0..=1.
    pub abandon_share: f64,
    /// Share of paid bookings cancelled afterwards (browse-and-buy), 0..=1.
    pub cancel_share: f64,
    /// Share of coupon hunters who click twice (coupon-rush), 0..=1.
    pub double_claim_share: f64,
    /// Mean think time between steps, ms (0 = none).
    pub think_ms: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            chosen_seats_share: 0.5,
            abandon_share: 0.25,
            cancel_share: 0.1,
            double_claim_share: 0.1,
            think_ms: 0,
        }
    }
}

/// Shared by every virtual user of a run.
#[derive(Debug)]
pub struct RunContext {
    /// The history.
    pub recorder: Recorder,
    /// The seeded world.
    pub world: World,
    /// The run's seed.
    pub seed: u64,
    /// Releases a closed-model crowd together.
    pub gate: Option<Gate>,
    /// Gathers a closed-model crowd on the sale's page before its gate (see
    /// [`RunContext::arrive`]); `None` with `--cold-open` and in the open model.
    pub lobby: Option<Gate>,
    /// Schedules open-model arrivals.
    pub pacer: Option<Pacer>,
    /// Persona knobs.
    pub knobs: Knobs,
}

impl RunContext {
    /// The buyer a Goose user plays (virtual users map onto seeded users round-robin).
    pub fn buyer(&self, user: &GooseUser) -> SeededUser {
        self.world.users[user.weighted_users_index % self.world.users.len()].clone()
    }

    /// A random generator for one iteration of one virtual user, derived from the seed, so
    /// the same seed makes the same choices.
    pub fn rng(&self, user: &GooseUser) -> SmallRng {
        let index = user.weighted_users_index as u64;
        let iteration = user.get_iterations() as u64;
        SmallRng::seed_from_u64(
            self.seed
                ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ iteration
                    .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                    .rotate_left(17),
        )
    }

    /// How long to wait before trying a request again that the box office did not start
    /// (503 `overloaded` past capacity, or `database_unavailable`), as a buyer in a crowd does: its `Retry-After`, jittered
    /// by ±50 % so the crowd does not come back in one wave, for at most
    /// [`REFUSED_RETRIES`] tries of one request (`tries`: refusals so far). `None` when the
    /// answer was not a refusal, the tries are spent, or the run is open-model: there an
    /// arrival refused is an arrival lost, the measure of the service's refusals.
    pub fn after_refusal(
        &self,
        answer: &crate::call::Response,
        tries: u32,
        rng: &mut SmallRng,
    ) -> Option<Duration> {
        if !answer.not_started() || self.pacer.is_some() || tries > REFUSED_RETRIES {
            return None;
        }
        Some(crate::call::refusal_delay(answer.retry_after_s, rng))
    }

    /// Waits for this user's turn: its slot on the open-model schedule or the crowd's gate.
    /// An open-model schedule starts once every user runs (behind the same gate), so its
    /// first step is not spent starting users; each arrival's lag (how late it began)
    /// corrects every request of its journey. An arrival due after the load's end is
    /// [`Turn::Over`]: the user skips it at once rather than wait for it (Goose lets a user
    /// finish its transaction, so a user asleep until a slot far beyond the end would hold
    /// the run open).
    pub async fn arrive(&self, user: &mut GooseUser) -> Turn {
        if let Some(g) = &self.gate {
            if user.get_iterations() == 0 {
                if let Some(lobby) = &self.lobby {
                    lobby.arrive().await;
                    self.load_the_sale_page(user).await;
                }
                g.arrive().await;
            }
        }
        let Some(p) = &self.pacer else {
            return Turn::Go(None);
        };
        let at = p.slot(user.weighted_users_index, user.get_iterations());
        if let Some(end) = p.end().filter(|&end| at >= end) {
            // Waits for the end (at least a moment), so that the user does not spin through
            // its remaining arrivals while Goose has not stopped it yet.
            let nap = Instant::now() + Duration::from_millis(100);
            tokio::time::sleep_until(end.max(nap).into()).await;
            return Turn::Over;
        }
        tokio::time::sleep_until(at.into()).await;
        p.began(at);
        let due_ms = at
            .saturating_duration_since(self.recorder.epoch())
            .as_secs_f64()
            * 1000.0;
        crate::call::begin_arrival(user, due_ms, self.recorder.now_ms());
        Turn::Go(Some(due_ms))
    }

    /// A buyer waiting for the open has the sale's page loaded, and its browser the
    /// connection that loaded it: `GET /v1/events/{id}` of the first round, recorded as
    /// `event`, so that its latency (a crowd connecting at once) is reported where it is paid.
    /// The crowd loads it together, after the lobby: a shared client's pool then keeps a
    /// connection per user for the rush instead of lending one to many page loads. A page
    /// that fails to load does not stop the buyer.
    async fn load_the_sale_page(&self, user: &mut GooseUser) {
        let Some(round) = self.world.rounds.first() else {
            return;
        };
        let buyer = self.buyer(user);
        let path = format!("/v1/events/{}", round.event_id);
        if let Ok(r) = send(
            user,
            &self.recorder,
            Request::get(OpKind::Event, &path, Some(&buyer.token)),
        )
        .await
        {
            self.recorder.record(r.op(buyer.id));
        }
    }

    /// Sleeps a think time drawn around the configured mean (uniform 0.5×–1.5×).
    pub async fn think(&self, rng: &mut SmallRng) {
        if self.knobs.think_ms > 0 {
            let ms =
                rand::Rng::gen_range(rng, self.knobs.think_ms / 2..=self.knobs.think_ms * 3 / 2);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// A user's turn, as [`RunContext::arrive`] gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Turn {
    /// Go now; in an open-model run, with when the arrival was due (history ms), which the
    /// journey's first request records as its intended start.
    Go(Option<f64>),
    /// The arrival would be due after the load's end: skip the journey.
    Over,
}

/// Builds a Goose transaction from a step and the shared context.
pub fn transaction(ctx: &Arc<RunContext>, name: &str, step: Step) -> Transaction {
    let ctx = ctx.clone();
    let f: TransactionFunction = Arc::new(move |user| step(user, ctx.clone()));
    Transaction::new(f).set_name(name)
}

/// Holds the first `expected` arrivals until all are there (or `timeout` passed, so a user
/// that never starts cannot hang the run), then releases them together.
#[derive(Debug)]
pub struct Gate {
    expected: usize,
    arrived: AtomicUsize,
    open: tokio::sync::watch::Sender<bool>,
    timeout: Duration,
}

impl Gate {
    /// A gate for `expected` users.
    pub fn new(expected: usize, timeout: Duration) -> Self {
        Self {
            expected,
            arrived: AtomicUsize::new(0),
            open: tokio::sync::watch::channel(false).0,
            timeout,
        }
    }

    /// Waits at the gate.
    pub async fn arrive(&self) {
        let mut rx = self.open.subscribe();
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 >= self.expected {
            self.open.send_replace(true);
            return;
        }
        if tokio::time::timeout(self.timeout, rx.wait_for(|open| *open))
            .await
            .is_err()
        {
            // Open it for everyone: late starters must not wait a timeout each.
            self.open.send_replace(true);
        }
    }
}

/// Open-model arrivals: arrival `n` is due at a time fixed in advance by the rate,
/// whatever the responses do. User `u` takes arrivals `u, u + users, u + 2·users, …`, so a
/// slow response delays only that user's next arrival — which the coordinated-omission-
/// corrected latency shows. The rate may step up (capacity): `rates[i]` holds for
/// `step` seconds, the last rate until the end.
#[derive(Debug)]
pub struct Pacer {
    rates: Vec<f64>,
    step_s: f64,
    users: usize,
    start: OnceLock<Instant>,
    /// How long the schedule runs (the run time), if it is time-boxed.
    run_for: Option<Duration>,
    /// Arrivals that began.
    started: AtomicUsize,
    /// Of those, arrivals that began more than [`LATE`] after they were due (their user was
    /// still busy with its previous one): the corrected latency covers their wait.
    late: AtomicUsize,
}

/// An arrival that begins this long after it was due counts as late.
pub const LATE: Duration = Duration::from_millis(100);

/// What became of the open model's arrivals by the end of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Arrivals {
    /// Due by the rate between the first arrival and the end of the load.
    pub due: usize,
    /// Begun by a virtual user.
    pub started: usize,
    /// Begun, but more than 100 ms after they were due.
    pub late: usize,
    /// Due but never begun: no virtual user was free before the load ended.
    pub dropped: usize,
}

impl Pacer {
    /// `rate_per_s` arrivals per second spread over `users` virtual users.
    pub fn new(rate_per_s: f64, users: usize) -> Self {
        Self::stepped(vec![rate_per_s], Duration::MAX, users)
    }

    /// A stepped schedule: `rates[i]` arrivals per second during step `i`.
    pub fn stepped(rates: Vec<f64>, step: Duration, users: usize) -> Self {
        let rates = if rates.is_empty() { vec![1.0] } else { rates };
        Self {
            rates: rates.into_iter().map(|r| r.max(1e-3)).collect(),
            step_s: if step == Duration::MAX {
                f64::INFINITY
            } else {
                step.as_secs_f64().max(1e-3)
            },
            users: users.max(1),
            start: OnceLock::new(),
            run_for: None,
            started: AtomicUsize::new(0),
            late: AtomicUsize::new(0),
        }
    }

    /// Ends the schedule `run_for` after its start: later arrivals are not due.
    pub fn ending_after(mut self, run_for: Option<Duration>) -> Self {
        self.run_for = run_for;
        self
    }

    /// When the schedule ends, if it has started and is time-boxed.
    pub fn end(&self) -> Option<Instant> {
        Some(*self.start.get()? + self.run_for?)
    }

    /// Whether an arrival due at `at` falls after the schedule's end.
    pub fn is_past_the_end(&self, at: Instant) -> bool {
        self.end().is_some_and(|end| at >= end)
    }

    /// Arrivals due in the first `secs` seconds of the schedule.
    pub fn due_within(&self, secs: f64) -> usize {
        let (mut due, mut from) = (0.0, 0.0);
        for (i, rate) in self.rates.iter().enumerate() {
            let last = i + 1 == self.rates.len();
            let to = if last {
                f64::INFINITY
            } else {
                (i + 1) as f64 * self.step_s
            };
            due += (secs.min(to) - from).max(0.0) * rate;
            if secs <= to {
                break;
            }
            from = to;
        }
        due.ceil() as usize
    }

    /// Records that an arrival due at `at` began now.
    pub fn began(&self, at: Instant) {
        self.started.fetch_add(1, Ordering::Relaxed);
        if Instant::now().saturating_duration_since(at) > LATE {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// When the schedule started (the first arrival was due), if it has.
    pub fn started_at(&self) -> Option<Instant> {
        self.start.get().copied()
    }

    /// The arrivals so far: due since the first one, begun, late, dropped.
    pub fn arrivals(&self) -> Arrivals {
        let due = self.start.get().map_or(0, |s| {
            let elapsed = s.elapsed();
            let within = self.run_for.map_or(elapsed, |r| elapsed.min(r));
            self.due_within(within.as_secs_f64())
        });
        let started = self.started.load(Ordering::Relaxed);
        Arrivals {
            due,
            started,
            late: self.late.load(Ordering::Relaxed),
            dropped: due.saturating_sub(started),
        }
    }

    /// Seconds after the start at which arrival `n` is due.
    pub fn offset_s(&self, n: usize) -> f64 {
        let mut before = 0.0;
        let n = n as f64;
        for (i, rate) in self.rates.iter().enumerate() {
            let last = i + 1 == self.rates.len();
            let in_step = rate * self.step_s;
            if last || n < before + in_step {
                return i as f64
                    * if self.step_s.is_finite() {
                        self.step_s
                    } else {
                        0.0
                    }
                    + (n - before) / rate;
            }
            before += in_step;
        }
        0.0
    }

    /// When user `index`'s `iteration`-th arrival is due (the schedule starts at the first
    /// call).
    pub fn slot(&self, index: usize, iteration: usize) -> Instant {
        let start = *self.start.get_or_init(Instant::now);
        let n = iteration * self.users + index % self.users;
        start + Duration::from_secs_f64(self.offset_s(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_spaced_by_the_rate_across_users() {
        let p = Pacer::new(10.0, 4);
        let t0 = p.slot(0, 0);
        assert_eq!(p.slot(1, 0) - t0, Duration::from_millis(100));
        assert_eq!(p.slot(0, 1) - t0, Duration::from_millis(400));
    }

    #[test]
    fn a_stepped_schedule_speeds_up_at_each_step() {
        let p = Pacer::stepped(vec![10.0, 20.0], Duration::from_secs(1), 1);
        assert!((p.offset_s(5) - 0.5).abs() < 1e-9);
        assert!((p.offset_s(10) - 1.0).abs() < 1e-9);
        assert!((p.offset_s(20) - 1.5).abs() < 1e-9);
        assert!(
            (p.offset_s(50) - 3.0).abs() < 1e-9,
            "the last rate holds after the last step"
        );
    }

    #[test]
    fn arrivals_due_follow_the_steps_and_the_unbegun_are_dropped() {
        let p = Pacer::stepped(vec![10.0, 20.0], Duration::from_secs(1), 2);
        assert_eq!(p.due_within(0.5), 5);
        assert_eq!(p.due_within(1.0), 10);
        assert_eq!(
            p.due_within(2.0),
            30,
            "the last rate holds after the last step"
        );
        assert_eq!(Pacer::new(4.0, 1).due_within(2.5), 10);
        let t0 = p.slot(0, 0);
        p.began(t0);
        p.began(t0 - Duration::from_millis(500));
        let a = p.arrivals();
        assert_eq!((a.started, a.late), (2, 1));
        assert_eq!(a.dropped, a.due.saturating_sub(2));
    }

    #[test]
    fn arrivals_after_the_end_are_not_due_and_not_waited_for() {
        let p = Pacer::new(10.0, 2).ending_after(Some(Duration::from_secs(1)));
        let t0 = p.slot(0, 0);
        assert!(!p.is_past_the_end(t0));
        assert!(!p.is_past_the_end(p.slot(1, 4)), "due at 0.9 s");
        assert!(p.is_past_the_end(p.slot(0, 5)), "due at 1.0 s, the end");
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(p.arrivals().due, 10, "due stops counting at the end");
        assert!(!Pacer::new(10.0, 2).is_past_the_end(t0 + Duration::from_secs(3600)));
    }

    #[tokio::test]
    async fn a_gate_releases_everyone_when_the_last_user_arrives() {
        let gate = Arc::new(Gate::new(3, Duration::from_secs(30)));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let g = gate.clone();
            set.spawn(async move { g.arrive().await });
        }
        let all = tokio::time::timeout(Duration::from_secs(5), async {
            while set.join_next().await.is_some() {}
        });
        assert!(all.await.is_ok());
    }
}
