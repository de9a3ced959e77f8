-- Transactional outbox: each state change writes its event here in the same transaction;
-- the relay publishes unsent rows to Kafka in id order and sets sent_at only after the
-- broker acknowledged them (so a row may be published twice, never lost).
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    event_id   TEXT   NOT NULL UNIQUE,
    topic      TEXT   NOT NULL,
    event_key  TEXT   NOT NULL,
    payload    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at    BIGINT
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- The ledger consumer's projection: sales per round, from booking events.
CREATE TABLE ledger_sales (
    round_id           BIGINT PRIMARY KEY,
    confirmed_bookings BIGINT NOT NULL DEFAULT 0,
    seats_sold         BIGINT NOT NULL DEFAULT 0,
    revenue            BIGINT NOT NULL DEFAULT 0
);

-- Events a consumer has applied, inserted in the same transaction as the effect: a
-- redelivered event finds its id here and is skipped (exactly once in effect).
CREATE TABLE processed_events (
    consumer     TEXT   NOT NULL,
    event_id     TEXT   NOT NULL,
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
