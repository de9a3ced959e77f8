-- The box office schema (SQLite). Times are milliseconds since the Unix epoch (BIGINT);
-- money is in minor units (BIGINT). system/migrations/postgres holds the same schema for PostgreSQL.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    name          TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    role          TEXT   NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    BIGINT NOT NULL
);

CREATE TABLE venues (
    id         INTEGER PRIMARY KEY,
    name       TEXT   NOT NULL,
    capacity   BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE venue_seats (
    id        INTEGER PRIMARY KEY,
    venue_id  BIGINT NOT NULL REFERENCES venues (id),
    section   TEXT   NOT NULL,
    row_label TEXT   NOT NULL,
    number    BIGINT NOT NULL,
    tier      TEXT   NOT NULL,
    UNIQUE (venue_id, section, row_label, number)
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    title       TEXT   NOT NULL,
    venue_id    BIGINT NOT NULL REFERENCES venues (id),
    category    TEXT,
    description TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE rounds (
    id         INTEGER PRIMARY KEY,
    event_id   BIGINT NOT NULL REFERENCES events (id),
    starts_at  BIGINT NOT NULL,
    capacity   BIGINT NOT NULL,
    prices     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX rounds_event ON rounds (event_id, starts_at);

-- Seat inventory per round: the row every strategy fights over.
CREATE TABLE seats (
    id         INTEGER PRIMARY KEY,
    round_id   BIGINT NOT NULL REFERENCES rounds (id),
    label      TEXT   NOT NULL,
    section    TEXT   NOT NULL,
    row_label  TEXT   NOT NULL,
    number     BIGINT NOT NULL,
    tier       TEXT   NOT NULL,
    price      BIGINT NOT NULL,
    status     TEXT   NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'held', 'sold')),
    hold_id    BIGINT,
    booking_id BIGINT,
    version    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX seats_round_status ON seats (round_id, status, id);
CREATE INDEX seats_hold ON seats (hold_id);

CREATE TABLE holds (
    id         INTEGER PRIMARY KEY,
    round_id   BIGINT NOT NULL REFERENCES rounds (id),
    user_id    BIGINT NOT NULL REFERENCES users (id),
    status     TEXT   NOT NULL CHECK (status IN ('active', 'released', 'expired', 'booked')),
    amount     BIGINT NOT NULL,
    seat_count BIGINT NOT NULL,
    strategy   TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX holds_active_expiry ON holds (expires_at) WHERE status = 'active';

-- Which seats a hold (and the booking made from it) claims. `live` = 1 while the claim
-- stands. `guard` is the seat id for strategies that use the unique index as their last
-- guard (atomic) and NULL for the others, so that each strategy stands on its own logic
-- and the naive one can really oversell.
CREATE TABLE hold_seats (
    hold_id  BIGINT NOT NULL REFERENCES holds (id),
    seat_id  BIGINT NOT NULL REFERENCES seats (id),
    round_id BIGINT NOT NULL,
    live     BIGINT NOT NULL DEFAULT 1,
    guard    BIGINT,
    PRIMARY KEY (hold_id, seat_id)
);
CREATE UNIQUE INDEX hold_seats_guard ON hold_seats (guard) WHERE live = 1;

CREATE TABLE coupons (
    id               INTEGER PRIMARY KEY,
    code             TEXT   NOT NULL UNIQUE,
    quota            BIGINT NOT NULL,
    claimed          BIGINT NOT NULL DEFAULT 0,
    discount_percent BIGINT NOT NULL,
    version          BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL
);

-- `guard_user` is the user id for the atomic strategy (unique per coupon), NULL otherwise.
CREATE TABLE coupon_claims (
    id         INTEGER PRIMARY KEY,
    coupon_id  BIGINT NOT NULL REFERENCES coupons (id),
    user_id    BIGINT NOT NULL REFERENCES users (id),
    guard_user BIGINT,
    booking_id BIGINT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX coupon_claims_guard ON coupon_claims (coupon_id, guard_user);
CREATE INDEX coupon_claims_user ON coupon_claims (coupon_id, user_id);

CREATE TABLE bookings (
    id           INTEGER PRIMARY KEY,
    hold_id      BIGINT NOT NULL UNIQUE REFERENCES holds (id),
    user_id      BIGINT NOT NULL REFERENCES users (id),
    round_id     BIGINT NOT NULL REFERENCES rounds (id),
    status       TEXT   NOT NULL CHECK (status IN ('pending_payment', 'confirmed', 'cancelled', 'expired')),
    amount       BIGINT NOT NULL,
    coupon_id    BIGINT,
    seat_count   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    pay_by       BIGINT NOT NULL,
    confirmed_at BIGINT,
    closed_at    BIGINT,
    pay_key      TEXT
);
CREATE INDEX bookings_user ON bookings (user_id, id);
CREATE INDEX bookings_pending ON bookings (pay_by) WHERE status = 'pending_payment';
CREATE INDEX bookings_round ON bookings (round_id, status);

-- Money that moved at the provider: one row per capture or refund.
CREATE TABLE payments (
    id              INTEGER PRIMARY KEY,
    booking_id      BIGINT NOT NULL REFERENCES bookings (id),
    kind            TEXT   NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount          BIGINT NOT NULL,
    provider_ref    TEXT   NOT NULL,
    idempotency_key TEXT   NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL
);
CREATE INDEX payments_booking ON payments (booking_id);
