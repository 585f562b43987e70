-- Operator keys act on the whole installation (configuration reloads, backup routing across
-- accounts, carrier limits and alerts); they are made only from the command line. An account's
-- keys, admin or not, act on that account alone.
ALTER TABLE api_keys ADD COLUMN operator INTEGER NOT NULL DEFAULT 0;
