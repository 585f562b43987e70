-- Whether a call is its caller's first to the company is decided as the call is written, by
-- looking for an earlier call from the same number: this index answers that, so no node keeps
-- every caller in memory.
CREATE INDEX calls_by_company_caller ON calls (company, caller);
