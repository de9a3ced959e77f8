-- Fencing tokens (strategy `fenced`): the highest lock token that has read a seat or a
-- coupon. A write whose token is not the row's comes from a lock holder whose lock expired
-- while it was paused and whose row a newer holder has read since: it is rejected
-- (reads: `SET fence = $token WHERE fence < $token`; writes: `WHERE fence = $token`).
ALTER TABLE seats ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
ALTER TABLE coupons ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
