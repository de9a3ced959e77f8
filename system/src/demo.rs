//! The demo catalog (`--demo`, `BOXOFFICE_DEMO`): three venues, four events and six rounds of
//! different sizes (48, 320 and 2,000 seats), so that a newcomer's first `boxoffice` has
//! something to buy: the buyer's page and the README's curl path work at once.
//!
//! Seeding is deterministic (same names, seat maps, start times and prices every time) and
//! idempotent: when the demo's first venue already exists nothing is written, so restarting
//! with `--demo` on the same data keeps what buyers did. On an empty database the round ids
//! are 1…6 in the order of [`EVENTS`]; round 1 is the small jazz club whose first seats (floor,
//! best available) cost 100.00 each, the README's example.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::error::Result;
use crate::store::catalog::{self, RowSpec, SectionSpec};
use crate::store::Db;

/// A venue of the demo: name and sections as (section, [(first row, last row)], seats per
/// row, tier).
struct DemoVenue {
    name: &'static str,
    sections: &'static [(&'static str, char, char, i64, &'static str)],
}

/// The venues, by size. The first name marks the demo as seeded.
const VENUES: [DemoVenue; 3] = [
    DemoVenue {
        name: "Blue Note Cellar (demo)",
        sections: &[
            ("Floor", 'A', 'E', 8, "standard"),
            ("Booths", 'A', 'A', 8, "premium"),
        ],
    },
    DemoVenue {
        name: "Studio Theatre (demo)",
        sections: &[
            ("Stalls", 'A', 'D', 20, "front"),
            ("Stalls", 'E', 'L', 20, "stalls"),
            ("Balcony", 'A', 'E', 16, "balcony"),
        ],
    },
    DemoVenue {
        name: "Lab Arena (demo)",
        sections: &[
            ("Floor", 'A', 'J', 40, "floor"),
            ("Lower bowl", 'A', 'T', 40, "lower"),
            ("Upper bowl", 'A', 'T', 40, "upper"),
        ],
    },
];

/// An event of the demo: title, venue (index in [`VENUES`]), category, description, and its
/// rounds as (start, RFC 3339; prices per tier in minor units).
struct DemoEvent {
    title: &'static str,
    venue: usize,
    category: &'static str,
    description: &'static str,
    rounds: &'static [(&'static str, &'static [(&'static str, i64)])],
}

const JAZZ_PRICES: &[(&str, i64)] = &[("premium", 18_000), ("standard", 10_000)];
const THEATRE_PRICES: &[(&str, i64)] = &[("front", 9_000), ("stalls", 6_500), ("balcony", 4_000)];
const ARENA_PRICES: &[(&str, i64)] = &[("floor", 15_000), ("lower", 9_900), ("upper", 5_500)];

const EVENTS: [DemoEvent; 4] = [
    DemoEvent {
        title: "Late Night Jazz Trio",
        venue: 0,
        category: "jazz",
        description: "Three sets in a small cellar: 48 seats, booths up front.",
        rounds: &[
            ("2027-03-05T20:00:00Z", JAZZ_PRICES),
            ("2027-03-06T20:00:00Z", JAZZ_PRICES),
        ],
    },
    DemoEvent {
        title: "Hamlet",
        venue: 1,
        category: "theatre",
        description: "Shakespeare in the round, 320 seats over stalls and balcony.",
        rounds: &[
            ("2027-04-10T19:30:00Z", THEATRE_PRICES),
            ("2027-04-11T14:00:00Z", THEATRE_PRICES),
        ],
    },
    DemoEvent {
        title: "Flash Sale Live: The Headliners",
        venue: 2,
        category: "concert",
        description: "The big one: 2,000 seats that go in minutes. Watch them go.",
        rounds: &[("2027-05-01T20:00:00Z", ARENA_PRICES)],
    },
    DemoEvent {
        title: "Chamber Orchestra: Bach and Pärt",
        venue: 1,
        category: "classical",
        description: "A string orchestra in the studio theatre.",
        rounds: &[("2027-06-12T19:00:00Z", THEATRE_PRICES)],
    },
];

/// One seeded round, for the start line and the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoRound {
    /// Round id.
    pub id: i64,
    /// Its event's title.
    pub event: String,
    /// Seats.
    pub capacity: i64,
}

/// What the demo catalog holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demo {
    /// `true` when this call wrote it, `false` when it was already there.
    pub created: bool,
    /// Every demo round, in seeding order.
    pub rounds: Vec<DemoRound>,
}

fn sections(venue: &DemoVenue) -> Vec<SectionSpec> {
    let mut out: Vec<SectionSpec> = Vec::new();
    for (name, first, last, seats, tier) in venue.sections {
        let rows = (*first..=*last).map(|label| RowSpec {
            label: label.to_string(),
            seats: *seats,
            tier: (*tier).to_owned(),
        });
        // Two entries of one section (two tiers) make one section of the map.
        match out.iter_mut().find(|s| s.name == *name) {
            Some(s) => s.rows.extend(rows),
            None => out.push(SectionSpec {
                name: (*name).to_owned(),
                rows: rows.collect(),
            }),
        }
    }
    out
}

fn epoch_ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("the demo's dates are valid RFC 3339")
        .timestamp_millis()
}

/// Seeds the demo catalog unless it is there already; either way returns its rounds.
pub async fn seed(db: &Db, now: i64) -> Result<Demo> {
    if let Some(rounds) = existing(db).await? {
        return Ok(Demo {
            created: false,
            rounds,
        });
    }
    let mut venue_ids = Vec::with_capacity(VENUES.len());
    for v in &VENUES {
        venue_ids.push(
            catalog::create_venue(db, v.name, &sections(v), now)
                .await?
                .id,
        );
    }
    let mut rounds = Vec::new();
    for e in &EVENTS {
        let event = catalog::create_event(
            db,
            e.title,
            venue_ids[e.venue],
            Some(e.category),
            Some(e.description),
            now,
        )
        .await?;
        for (starts, prices) in e.rounds {
            let prices: BTreeMap<String, i64> =
                prices.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect();
            let r = catalog::create_round(db, event.id, epoch_ms(starts), &prices, now).await?;
            rounds.push(DemoRound {
                id: r.id,
                event: e.title.to_owned(),
                capacity: r.capacity,
            });
        }
    }
    Ok(Demo {
        created: true,
        rounds,
    })
}

/// The demo's rounds when its first venue exists.
async fn existing(db: &Db) -> Result<Option<Vec<DemoRound>>> {
    let venue = sqlx::query("SELECT id FROM venues WHERE name = $1 ORDER BY id LIMIT 1")
        .bind(VENUES[0].name)
        .fetch_optional(&db.pool)
        .await?;
    if venue.is_none() {
        return Ok(None);
    }
    let titles: Vec<&str> = EVENTS.iter().map(|e| e.title).collect();
    let rows = sqlx::query(
        "SELECT r.id, e.title, r.capacity FROM rounds r JOIN events e ON e.id = r.event_id
         JOIN venues v ON v.id = e.venue_id WHERE v.name LIKE '%(demo)' ORDER BY r.id",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut rounds = Vec::new();
    for row in rows {
        let event: String = row.try_get("title")?;
        if titles.contains(&event.as_str()) {
            rounds.push(DemoRound {
                id: row.try_get("id")?,
                event,
                capacity: row.try_get("capacity")?,
            });
        }
    }
    Ok(Some(rounds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_has_a_round_of_about_two_thousand_seats_and_smaller_ones() {
        let sizes: Vec<i64> = VENUES
            .iter()
            .map(|v| {
                sections(v)
                    .iter()
                    .flat_map(|s| &s.rows)
                    .map(|r| r.seats)
                    .sum()
            })
            .collect();
        assert_eq!(sizes, vec![48, 320, 2000]);
        // Every tier of a venue has a price in every round of its events.
        for e in &EVENTS {
            for (_, prices) in e.rounds {
                for (_, _, _, _, tier) in VENUES[e.venue].sections {
                    assert!(
                        prices.iter().any(|(t, _)| t == tier),
                        "{} lacks {tier}",
                        e.title
                    );
                }
            }
        }
    }
}
