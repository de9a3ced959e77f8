//! Seeding: everything a run needs before the measured attack, deterministic from `--seed`.
//! The admin creates a venue of `seats` seats, events and their rounds, and coupons; `users`
//! buyers register and log in, concurrently (bounded), so the attack measures buying, not
//! password hashing.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::api::Api;
use crate::error::{Error, Result};
use crate::stack::AdminCredentials;

/// Seats per row of the seeded venue.
pub const SEATS_PER_ROW: usize = 25;
/// Concurrent registrations/logins while seeding.
const SEED_CONCURRENCY: usize = 32;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// Makes names and choices reproducible.
    pub seed: u64,
    /// Buyers to register and log in.
    pub users: usize,
    /// Seats of the venue (so of every round).
    pub seats: usize,
    /// Events to create.
    pub events: usize,
    /// Rounds per event.
    pub rounds_per_event: usize,
    /// Coupons to create, as (quota, discount percent).
    pub coupons: Vec<(i64, i64)>,
    /// Distinguishes this run's coupon codes on a shared (`url`) stack.
    pub run_tag: String,
}

/// A buyer, logged in.
#[derive(Debug, Clone)]
pub struct SeededUser {
    /// Box office user id.
    pub id: i64,
    /// Access token.
    pub token: Arc<str>,
}

/// A round on sale.
#[derive(Debug, Clone)]
pub struct SeededRound {
    /// Id.
    pub id: i64,
    /// Its event.
    pub event_id: i64,
    /// Every seat id, in seat-map order.
    pub seat_ids: Vec<i64>,
}

/// What the run seeded.
#[derive(Debug, Clone)]
pub struct World {
    /// The admin's access token (for the final audit).
    pub admin_token: String,
    /// Buyers, by virtual-user index.
    pub users: Vec<SeededUser>,
    /// Events.
    pub events: Vec<i64>,
    /// Rounds, event by event.
    pub rounds: Vec<SeededRound>,
    /// Coupon codes.
    pub coupons: Vec<String>,
    /// Words that find events in a search.
    pub search_terms: Vec<String>,
}

impl World {
    /// A world with nothing in it (the benchmark's probe needs none).
    pub fn empty() -> Self {
        Self {
            admin_token: String::new(),
            users: Vec::new(),
            events: Vec::new(),
            rounds: Vec::new(),
            coupons: Vec::new(),
            search_terms: Vec::new(),
        }
    }
}

const TITLES: [&str; 8] = [
    "Seoul Philharmonic",
    "Hanbit Musical",
    "Busan Jazz Night",
    "K-Pop Arena",
    "Baseball Derby",
    "Opera Gala",
    "Indie Rooftop",
    "Comedy Hour",
];
const CATEGORIES: [&str; 4] = ["concert", "musical", "sports", "theatre"];

/// Rows of [`SEATS_PER_ROW`] seats; large venues (the capacity ramp's 100,000 seats) use rows
/// of [`LARGE_SEATS_PER_ROW`] and sections of at most [`ROWS_PER_SECTION`] rows, so the seat
/// map stays within the service's limits (500 rows a section, 64 KiB a request body).
fn venue_body(seed: u64, seats: usize) -> Value {
    let per_row = if seats <= 10_000 {
        SEATS_PER_ROW
    } else {
        LARGE_SEATS_PER_ROW
    };
    let rows = seats.div_ceil(per_row);
    let premium_rows = rows.div_ceil(3);
    let rows: Vec<Value> = (0..rows)
        .map(|r| {
            let n = per_row.min(seats - r * per_row);
            json!({"label": format!("R{}", r + 1), "seats": n, "tier": if r < premium_rows { "premium" } else { "standard" }})
        })
        .collect();
    let sections: Vec<Value> = rows
        .chunks(ROWS_PER_SECTION)
        .enumerate()
        .map(|(i, chunk)| {
            let name = if i == 0 {
                "Main".to_owned()
            } else {
                format!("Main-{}", i + 1)
            };
            json!({"name": name, "rows": chunk})
        })
        .collect();
    json!({"name": format!("Lab Hall {seed}"), "sections": sections})
}

/// Seats per row in venues of more than 10,000 seats.
const LARGE_SEATS_PER_ROW: usize = 250;
/// Rows per section.
const ROWS_PER_SECTION: usize = 200;

/// Seeds a world as `admin` on the box office at `api`.
pub async fn seed(api: &Api, admin: &AdminCredentials, spec: &SeedSpec) -> Result<World> {
    if spec.seats == 0 || spec.users == 0 {
        return Err(Error::Usage(
            "--users and --seats must be at least 1".into(),
        ));
    }
    let admin_token = api.login(&admin.email, &admin.password).await?;
    let venue = api
        .admin_post(
            &admin_token,
            "/v1/venues",
            venue_body(spec.seed, spec.seats),
        )
        .await?;
    let venue_id = venue["id"]
        .as_i64()
        .ok_or_else(|| Error::api("creating the venue", "no id"))?;
    // Price exactly the tiers the venue has: a small venue may be all premium.
    let prices: serde_json::Map<String, Value> = [("premium", 15000), ("standard", 9000)]
        .into_iter()
        .filter(|(tier, _)| venue["tiers"].get(*tier).is_some())
        .map(|(tier, amount)| (tier.to_owned(), json!(amount)))
        .collect();
    let mut events = Vec::new();
    let mut rounds = Vec::new();
    let mut search_terms = Vec::new();
    for e in 0..spec.events.max(1) {
        let pick = (spec.seed as usize + e) % TITLES.len();
        let title = format!("{} {}", TITLES[pick], spec.seed * 100 + e as u64);
        search_terms.push(TITLES[pick].split(' ').next().unwrap_or("Lab").to_owned());
        let ev = api
            .admin_post(
                &admin_token,
                "/v1/events",
                json!({"title": title, "venue_id": venue_id, "category": CATEGORIES[pick % CATEGORIES.len()]}),
            )
            .await?;
        let event_id = ev["id"]
            .as_i64()
            .ok_or_else(|| Error::api("creating an event", "no id"))?;
        events.push(event_id);
        for r in 0..spec.rounds_per_event.max(1) {
            let day = 1 + (e * spec.rounds_per_event + r) % 28;
            let round = api
                .admin_post(
                    &admin_token,
                    &format!("/v1/events/{event_id}/rounds"),
                    json!({"starts_at": format!("2031-03-{day:02}T19:00:00Z"), "prices": prices}),
                )
                .await?;
            let round_id = round["id"]
                .as_i64()
                .ok_or_else(|| Error::api("creating a round", "no id"))?;
            let seats = api
                .get_json(&format!("/v1/rounds/{round_id}/seats"), None)
                .await?;
            let seat_ids = seats["seats"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s["id"].as_i64()).collect())
                .unwrap_or_default();
            rounds.push(SeededRound {
                id: round_id,
                event_id,
                seat_ids,
            });
        }
    }
    search_terms.sort();
    search_terms.dedup();
    let mut coupons = Vec::new();
    for (i, (quota, discount)) in spec.coupons.iter().enumerate() {
        let code = format!("RUSH{}{}{i}", spec.seed, spec.run_tag).to_uppercase();
        api.admin_post(
            &admin_token,
            "/v1/coupons",
            json!({"code": code, "quota": quota, "discount_percent": discount}),
        )
        .await?;
        coupons.push(code);
    }
    let users = register_users(api, spec.seed, spec.users).await?;
    Ok(World {
        admin_token,
        users,
        events,
        rounds,
        coupons,
        search_terms,
    })
}

/// Registers and logs in `n` buyers with e-mails derived from `seed`, `SEED_CONCURRENCY`
/// at a time; returns them in index order.
async fn register_users(api: &Api, seed: u64, n: usize) -> Result<Vec<SeededUser>> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(SEED_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let api = api.clone();
        let semaphore = semaphore.clone();
        set.spawn(async move {
            let _permit = semaphore
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let email = format!("buyer{i}.s{seed}@lab.boxoffice.test");
            let password = format!("lab-password-{seed}");
            api.register_and_login(&email, &password, &format!("Buyer {i}"))
                .await
                .map(|(id, token)| {
                    (
                        i,
                        SeededUser {
                            id,
                            token: token.into(),
                        },
                    )
                })
        });
    }
    let mut users: Vec<Option<SeededUser>> = vec![None; n];
    while let Some(joined) = set.join_next().await {
        let (i, user) = joined.map_err(|e| Error::api("registering users", e))??;
        users[i] = Some(user);
    }
    Ok(users.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hundred_thousand_seat_venue_fits_the_service_limits() {
        let v = venue_body(1, 100_000);
        let sections = v["sections"].as_array().unwrap();
        assert_eq!(sections.len(), 2);
        let total: i64 = sections
            .iter()
            .flat_map(|s| s["rows"].as_array().unwrap())
            .map(|r| r["seats"].as_i64().unwrap())
            .sum();
        assert_eq!(total, 100_000);
        assert!(sections
            .iter()
            .all(|s| s["rows"].as_array().unwrap().len() <= 500));
        assert!(
            v.to_string().len() < 64 * 1024,
            "fits the default body limit"
        );
    }

    #[test]
    fn the_venue_has_exactly_the_requested_seats_in_rows_of_twenty_five() {
        let v = venue_body(1, 60);
        let rows = v["sections"][0]["rows"].as_array().unwrap();
        let total: i64 = rows.iter().map(|r| r["seats"].as_i64().unwrap()).sum();
        assert_eq!(total, 60);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["tier"], "premium");
        assert_eq!(rows[2]["tier"], "standard");
    }
}
