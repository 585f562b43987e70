-- The shape of the call's dial when dialtone asked for fewer legs because of the carrier's dial
-- limit (primary_first, primary_only); NULL when it rang as its flow says.
ALTER TABLE calls ADD COLUMN dial_shape TEXT;
