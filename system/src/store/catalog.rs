//! The catalog: venues with their seat maps, events, rounds (showtimes) and each round's seat
//! inventory. A round copies its venue's seats into `seats` with the round's price per tier,
//! so that inventory, prices and statuses are per round.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{placeholders, Db};
use crate::error::{ApiError, Result};

/// One row of a section in a venue's seat map.
#[derive(Debug, Clone)]
pub struct RowSpec {
    /// Row label (`A`, `12`).
    pub label: String,
    /// Seats in the row, numbered 1..=seats.
    pub seats: i64,
    /// Price tier of every seat in the row.
    pub tier: String,
}

/// One section of a venue's seat map.
#[derive(Debug, Clone)]
pub struct SectionSpec {
    /// Section name.
    pub name: String,
    /// Its rows.
    pub rows: Vec<RowSpec>,
}

/// A stored venue.
#[derive(Debug, Clone)]
pub struct Venue {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Number of seats.
    pub capacity: i64,
    /// Seats per tier.
    pub tiers: BTreeMap<String, i64>,
}

/// Inserts a venue and its seat map in one transaction.
pub async fn create_venue(
    db: &Db,
    name: &str,
    sections: &[SectionSpec],
    now: i64,
) -> Result<Venue> {
    let capacity: i64 = sections.iter().flat_map(|s| &s.rows).map(|r| r.seats).sum();
    let mut tiers = BTreeMap::new();
    let mut seats: Vec<(&str, &str, i64, &str)> = Vec::with_capacity(capacity as usize);
    for section in sections {
        for row in &section.rows {
            *tiers.entry(row.tier.clone()).or_insert(0) += row.seats;
            for n in 1..=row.seats {
                seats.push((&section.name, &row.label, n, &row.tier));
            }
        }
    }
    let mut tx = db.begin_write().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO venues (name, capacity, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(capacity)
    .bind(now)
    .fetch_one(tx.conn())
    .await?
    .try_get("id")?;
    for chunk in seats.chunks(500) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, {})", placeholders(2 + i * 4, 4)))
            .collect();
        let sql = format!(
            "INSERT INTO venue_seats (venue_id, section, row_label, number, tier) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(id);
        for (section, row, n, tier) in chunk {
            q = q.bind(*section).bind(*row).bind(*n).bind(*tier);
        }
        q.execute(tx.conn()).await.map_err(|e| {
            if crate::error::is_unique_violation(&e) {
                ApiError::unprocessable(
                    "duplicate_row",
                    "a section lists the same row twice, or two sections share a name",
                )
            } else {
                e.into()
            }
        })?;
    }
    tx.commit().await?;
    Ok(Venue {
        id,
        name: name.to_owned(),
        capacity,
        tiers,
    })
}

/// The tiers of a venue with their seat counts; `None` when the venue does not exist.
pub async fn venue_tiers(db: &Db, venue_id: i64) -> Result<Option<BTreeMap<String, i64>>> {
    let exists = sqlx::query("SELECT id FROM venues WHERE id = $1")
        .bind(venue_id)
        .fetch_optional(&db.pool)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT tier, COUNT(*) AS n FROM venue_seats WHERE venue_id = $1 GROUP BY tier",
    )
    .bind(venue_id)
    .fetch_all(&db.pool)
    .await?;
    let mut tiers = BTreeMap::new();
    for row in rows {
        tiers.insert(
            row.try_get::<String, _>("tier")?,
            row.try_get::<i64, _>("n")?,
        );
    }
    Ok(Some(tiers))
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Venue id.
    pub venue_id: i64,
    /// Venue name.
    pub venue_name: String,
    /// Category (concert, musical, sports…).
    pub category: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

/// Inserts an event; 404 when the venue does not exist.
pub async fn create_event(
    db: &Db,
    title: &str,
    venue_id: i64,
    category: Option<&str>,
    description: Option<&str>,
    now: i64,
) -> Result<Event> {
    let venue = sqlx::query("SELECT name FROM venues WHERE id = $1")
        .bind(venue_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("venue"))?;
    let venue_name: String = venue.try_get("name")?;
    let id: i64 = sqlx::query(
        "INSERT INTO events (title, venue_id, category, description, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(title)
    .bind(venue_id)
    .bind(category)
    .bind(description)
    .bind(now)
    .fetch_one(&db.pool)
    .await?
    .try_get("id")?;
    Ok(Event {
        id,
        title: title.to_owned(),
        venue_id,
        venue_name,
        category: category.map(str::to_owned),
        description: description.map(str::to_owned),
    })
}

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<Event, sqlx::Error> {
    Ok(Event {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        venue_id: row.try_get("venue_id")?,
        venue_name: row.try_get("venue_name")?,
        category: row.try_get("category")?,
        description: row.try_get("description")?,
    })
}

const EVENT_COLUMNS: &str =
    "e.id, e.title, e.venue_id, v.name AS venue_name, e.category, e.description";

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// One page of events whose title or category contains `q` (case-insensitive), by id, and
/// the total number of matches.
pub async fn search_events(
    db: &Db,
    q: &str,
    page: i64,
    per_page: i64,
) -> Result<(Vec<Event>, i64)> {
    let pattern = like_pattern(q.trim());
    let filter = "(lower(e.title) LIKE $1 ESCAPE '\\' OR lower(COALESCE(e.category, '')) LIKE $1 ESCAPE '\\')";
    let total: i64 = sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM events e WHERE {filter}"
    ))
    .bind(&pattern)
    .fetch_one(&db.pool)
    .await?
    .try_get("n")?;
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN venues v ON v.id = e.venue_id
         WHERE {filter} ORDER BY e.id LIMIT $2 OFFSET $3"
    ))
    .bind(&pattern)
    .bind(per_page)
    .bind((page - 1) * per_page)
    .fetch_all(&db.pool)
    .await?;
    let events = rows.iter().map(event_from_row).collect::<Result<_, _>>()?;
    Ok((events, total))
}

/// One event.
pub async fn event(db: &Db, id: i64) -> Result<Option<Event>> {
    let row = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN venues v ON v.id = e.venue_id WHERE e.id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.as_ref().map(event_from_row).transpose()?)
}

/// A stored round.
#[derive(Debug, Clone)]
pub struct Round {
    /// Id.
    pub id: i64,
    /// Event id.
    pub event_id: i64,
    /// Start, epoch ms.
    pub starts_at: i64,
    /// Seats in its inventory.
    pub capacity: i64,
    /// Price per tier, minor units.
    pub prices: BTreeMap<String, i64>,
}

fn round_from_row(row: &sqlx::any::AnyRow) -> Result<Round, sqlx::Error> {
    let prices: String = row.try_get("prices")?;
    Ok(Round {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        starts_at: row.try_get("starts_at")?,
        capacity: row.try_get("capacity")?,
        prices: serde_json::from_str(&prices).unwrap_or_default(),
    })
}

/// Creates a round of an event and copies the venue's seats into its inventory, priced by
/// tier. 404 when the event does not exist; 422 when a tier of the venue has no price or a
/// price names a tier the venue does not have.
pub async fn create_round(
    db: &Db,
    event_id: i64,
    starts_at: i64,
    prices: &BTreeMap<String, i64>,
    now: i64,
) -> Result<Round> {
    let ev = event(db, event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let tiers = venue_tiers(db, ev.venue_id)
        .await?
        .ok_or_else(|| ApiError::not_found("venue"))?;
    if let Some(missing) = tiers.keys().find(|t| !prices.contains_key(*t)) {
        return Err(ApiError::unprocessable(
            "missing_price",
            format!("prices has no amount for tier {missing:?}"),
        ));
    }
    if let Some(unknown) = prices.keys().find(|t| !tiers.contains_key(*t)) {
        return Err(ApiError::unprocessable(
            "unknown_tier",
            format!("the venue has no tier {unknown:?}"),
        ));
    }
    let capacity: i64 = tiers.values().sum();
    let prices_json =
        serde_json::to_string(prices).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut tx = db.begin_write().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO rounds (event_id, starts_at, capacity, prices, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(event_id)
    .bind(starts_at)
    .bind(capacity)
    .bind(&prices_json)
    .bind(now)
    .fetch_one(tx.conn())
    .await?
    .try_get("id")?;
    // One statement copies the seat map; the price comes from a CASE over the tiers.
    let mut case = String::from("CASE tier");
    let mut next = 3;
    for _ in prices {
        case.push_str(&format!(" WHEN ${} THEN ${}", next, next + 1));
        next += 2;
    }
    case.push_str(" END");
    let sql = format!(
        "INSERT INTO seats (round_id, label, section, row_label, number, tier, price)
         SELECT $1, section || '-' || row_label || '-' || CAST(number AS TEXT), section, row_label, number, tier, {case}
         FROM venue_seats WHERE venue_id = $2 ORDER BY id"
    );
    let mut q = sqlx::query(&sql).bind(id).bind(ev.venue_id);
    for (tier, amount) in prices {
        q = q.bind(tier.as_str()).bind(*amount);
    }
    q.execute(tx.conn()).await?;
    tx.commit().await?;
    Ok(Round {
        id,
        event_id,
        starts_at,
        capacity,
        prices: prices.clone(),
    })
}

/// One round.
pub async fn round(db: &Db, id: i64) -> Result<Option<Round>> {
    let row =
        sqlx::query("SELECT id, event_id, starts_at, capacity, prices FROM rounds WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.as_ref().map(round_from_row).transpose()?)
}

/// The rounds of an event, by start time.
pub async fn rounds_of_event(db: &Db, event_id: i64) -> Result<Vec<Round>> {
    let rows = sqlx::query(
        "SELECT id, event_id, starts_at, capacity, prices FROM rounds WHERE event_id = $1 ORDER BY starts_at, id",
    )
    .bind(event_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(round_from_row).collect::<Result<_, _>>()?)
}

/// Seat counts of a round by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Availability {
    /// All seats.
    pub capacity: i64,
    /// Free seats.
    pub available: i64,
    /// Seats held (by a hold or an unpaid booking).
    pub held: i64,
    /// Seats of confirmed bookings.
    pub sold: i64,
}

/// Seat counts by status; `None` when the round does not exist.
pub async fn availability(db: &Db, round_id: i64) -> Result<Option<Availability>> {
    let Some(r) = round(db, round_id).await? else {
        return Ok(None);
    };
    let rows =
        sqlx::query("SELECT status, COUNT(*) AS n FROM seats WHERE round_id = $1 GROUP BY status")
            .bind(round_id)
            .fetch_all(&db.pool)
            .await?;
    let mut a = Availability {
        capacity: r.capacity,
        ..Default::default()
    };
    for row in rows {
        let n: i64 = row.try_get("n")?;
        match row.try_get::<String, _>("status")?.as_str() {
            "available" => a.available = n,
            "held" => a.held = n,
            "sold" => a.sold = n,
            _ => {}
        }
    }
    Ok(Some(a))
}

/// A seat of a round's inventory.
#[derive(Debug, Clone)]
pub struct Seat {
    /// Id (unique across rounds).
    pub id: i64,
    /// `section-row-number`.
    pub label: String,
    /// Section name.
    pub section: String,
    /// Row label.
    pub row: String,
    /// Price tier.
    pub tier: String,
    /// Price, minor units.
    pub price: i64,
    /// `available`, `held` or `sold`.
    pub status: String,
}

/// Every seat of a round, by id.
pub async fn seats(db: &Db, round_id: i64) -> Result<Vec<Seat>> {
    let rows = sqlx::query(
        "SELECT id, label, section, row_label, tier, price, status FROM seats WHERE round_id = $1 ORDER BY id",
    )
    .bind(round_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Seat {
                id: row.try_get("id")?,
                label: row.try_get("label")?,
                section: row.try_get("section")?,
                row: row.try_get("row_label")?,
                tier: row.try_get("tier")?,
                price: row.try_get("price")?,
                status: row.try_get("status")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}
