-- The relay takes each user's oldest rows first (a round holds at most a
-- few of any one user's), which reads the outbox by partition key.
CREATE INDEX outbox_by_key ON outbox (partition_key, id);
