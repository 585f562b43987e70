//! DNI state: who holds which pool number, in memory, restored from the store at startup.
//!
//! Allocation happens under one lock per process, so two visitors can never be given the same
//! free number; the handler makes each lease durable before it answers (see `snippet.rs`).
//! Pools follow the configuration: a pool whose numbers changed is rebuilt from the sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use dialtone_core::config::{Company, Config, TrackerKind};
use dialtone_core::dni::{self, HourlyPeaks, KeyedLimit, LeaseSpan, Pool, Visit};
use dialtone_core::event::CallAttribution;
use dialtone_core::{PhoneNumber, TrackerRef};
use dialtone_store::{SessionWrite, StoredSession};

/// How long a visitor is remembered after their last lease ended: a visitor returning within it
/// keeps their source and, when it is free, their number.
pub const VISITOR_MEMORY_DAYS: i64 = 30;

/// What a visitor's page is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    Swap {
        session: u64,
        secret: String,
        visitor: String,
        tracker: String,
        number: PhoneNumber,
        expires_at: DateTime<Utc>,
        lease_s: u32,
        sharing: u32,
        resumed: bool,
        /// What to make durable before answering.
        writes: Vec<SessionWrite>,
    },
    Keep {
        visitor: Option<String>,
        reason: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DniError {
    #[error("too many new sessions from this {0}; try again in {1} s")]
    RateLimited(&'static str, i64),
    #[error("no such live session")]
    UnknownSession,
}

/// What the page sends to start or resume a session.
#[derive(Debug, Clone)]
pub struct Visiting<'a> {
    pub company: &'a Company,
    pub visitor: Option<&'a str>,
    /// `id.secret` from the visitor's cookie.
    pub session: Option<&'a str>,
    pub landing_url: &'a str,
    pub referrer: Option<&'a str>,
    pub user_agent: &'a str,
    pub client: Option<String>,
}

#[derive(Debug, Clone)]
struct Session {
    secret: String,
    company: String,
    tracker: String,
    /// The pool number held (its index is found in the pool as configured now).
    number: PhoneNumber,
    visitor: String,
    visit: Arc<Visit>,
    start: DateTime<Utc>,
    seen: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Session {
    fn from_stored(stored: StoredSession) -> Option<(u64, Session)> {
        let number = PhoneNumber::parse(&stored.number).ok()?;
        Some((
            stored.id,
            Session {
                secret: stored.secret,
                company: stored.company,
                tracker: stored.tracker,
                number,
                visitor: stored.visitor,
                visit: Arc::new(stored.visit),
                start: stored.created_at,
                seen: stored.seen_at,
                end: stored.expires_at,
            },
        ))
    }

    fn span(&self, id: u64) -> LeaseSpan {
        LeaseSpan {
            session: id,
            start: self.start,
            end: self.end,
            seen: self.seen,
        }
    }
}

struct PoolEntry {
    pool: Pool,
    numbers: Vec<PhoneNumber>,
}

/// Counters of one pool, for its health report and metrics.
#[derive(Debug, Clone, Copy, Default)]
struct PoolCounters {
    sessions: u64,
    shared_allocations: u64,
    attributed_calls: u64,
    shared_attributions: u64,
}

#[derive(Default)]
struct State {
    pools: HashMap<(String, String), PoolEntry>,
    counters: HashMap<(String, String), PoolCounters>,
    peaks: HashMap<(String, String), HourlyPeaks>,
    sessions: HashMap<u64, Session>,
    visitors: HashMap<String, u64>,
    /// Sessions each client address started in each pool, newest last: (company, tracker,
    /// address). Pruned with the sessions.
    by_client: HashMap<(String, String, String), Vec<u64>>,
    next_id: u64,
    /// With other nodes, session ids come from blocks the store reserves (`None`: none left).
    reserved: Option<std::ops::Range<u64>>,
    shared_ids: bool,
    limits: Option<((u32, u32, u32), KeyedLimit, KeyedLimit)>,
    last_prune: Option<DateTime<Utc>>,
    rng: Option<rand_chacha::ChaCha20Rng>,
}

#[derive(Default)]
pub struct Dni {
    state: Mutex<State>,
}

/// A pool's health, as the API reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolHealth {
    pub company: String,
    pub tracker: String,
    pub pool_size: usize,
    pub live_sessions: usize,
    pub numbers_in_use: usize,
    /// Numbers in use ÷ pool size, now.
    pub utilisation: f64,
    /// Most sessions live at one instant over the window.
    pub peak_concurrent_sessions: usize,
    pub window_days: i64,
    pub sessions_created: u64,
    /// Sessions given a number already held by another (the pool was exhausted).
    pub shared_allocations: u64,
    pub attributed_calls: u64,
    /// Calls attributed to a number several sessions held: less certain.
    pub shared_attributions: u64,
    /// Numbers the pool needs to keep its peak under 75 % use.
    pub recommended_pool_size: usize,
}

pub const HEALTH_WINDOW_DAYS: i64 = 7;

impl State {
    /// `bytes` random bytes as hex, from a ChaCha20 generator seeded once by the OS (a system
    /// call per session showed in profiles). Empty if the OS has no randomness to give: a
    /// guessable session secret would let anyone end a visitor's session.
    fn random_hex(&mut self, bytes: usize) -> String {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        if self.rng.is_none() {
            let mut seed = [0u8; 32];
            if getrandom::fill(&mut seed).is_err() {
                return String::new();
            }
            self.rng = Some(rand_chacha::ChaCha20Rng::from_seed(seed));
        }
        let Some(rng) = self.rng.as_mut() else {
            return String::new();
        };
        let mut out = String::with_capacity(bytes * 2);
        for _ in 0..bytes {
            let b = (rng.next_u32() & 0xff) as u8;
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        out
    }
}

/// Secrets compared in constant time (`subtle`): how long the answer takes says nothing of how
/// much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn visitor_id_ok(v: &str) -> bool {
    (8..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Dni {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the sessions the store remembers (leases and returning visitors).
    pub fn restore(&self, sessions: Vec<StoredSession>, next_id: u64, now: DateTime<Utc>) {
        let mut s = self.lock();
        s.next_id = s.next_id.max(next_id);
        for (id, session) in sessions.into_iter().filter_map(Session::from_stored) {
            s.visitors.insert(session.visitor.clone(), id);
            s.sessions.insert(id, session);
        }
        let mut spans: HashMap<(String, String), Vec<_>> = HashMap::new();
        for x in s.sessions.values() {
            spans
                .entry((x.company.clone(), x.tracker.clone()))
                .or_default()
                .push((x.start, x.end.min(now)));
        }
        s.peaks = spans
            .into_iter()
            .map(|(key, spans)| (key, HourlyPeaks::of(spans)))
            .collect();
        s.pools.clear();
        tracing::info!(
            sessions = s.sessions.len(),
            live = s.sessions.values().filter(|x| x.end > now).count(),
            "DNI sessions restored"
        );
    }

    /// Starts (or resumes) the session of a visitor on `v.company`'s website.
    pub fn start(
        &self,
        config: &Config,
        v: Visiting<'_>,
        now: DateTime<Utc>,
    ) -> Result<Started, DniError> {
        let company = v.company;
        if dni::is_bot(v.user_agent) {
            return Ok(Started::Keep {
                visitor: None,
                reason: "bot",
            });
        }
        let mut s = self.lock();
        s.prune(now);
        let lease = Duration::seconds(i64::from(company.website.lease_idle_s));

        // The same page, or the next page of the same visit: the session goes on.
        let resumed = v
            .session
            .and_then(|x| x.split_once('.'))
            .and_then(|(id, secret)| Some((id.parse::<u64>().ok()?, secret)))
            .and_then(|(id, secret)| s.resume(config, company, id, secret, now, now + lease));
        if let Some(resumed) = resumed {
            return Ok(resumed);
        }

        let (visit, params) = Visit::read(v.landing_url, v.referrer);
        let known = v.visitor.filter(|x| visitor_id_ok(x)).map(str::to_owned);
        let previous_id = known.as_ref().and_then(|x| s.visitors.get(x).copied());
        let previous = previous_id
            .and_then(|id| s.sessions.get(&id).cloned())
            .filter(|p| p.company == company.slug);
        let session_trackers = company
            .trackers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind == TrackerKind::Session);
        // A visit with no source of its own keeps the visitor's last one (CallRail keeps it in
        // a cookie): someone who clicked an ad yesterday and comes back typing the address is
        // still the ad's.
        let kept = previous
            .as_ref()
            .filter(|_| visit.is_direct())
            .and_then(|p| {
                company
                    .trackers
                    .iter()
                    .position(|t| t.kind == TrackerKind::Session && t.name == p.tracker)
                    .map(|i| (i, p.visit.clone()))
            });
        let chosen = kept.or_else(|| {
            dni::classify(
                session_trackers.map(|(i, t)| (i, t.swap.as_slice())),
                &visit,
                &params,
            )
            .map(|i| (i, Arc::new(visit.clone())))
        });
        let Some((tracker_index, visit)) = chosen else {
            return Ok(Started::Keep {
                visitor: known,
                reason: "no tracked source",
            });
        };
        let tracker = &company.trackers[tracker_index];

        // A visitor whose session is still live goes on with it even without naming it (an AMP
        // page keeps no session cookie; a reload of the landing page), unless they came back
        // with another source: one visitor, one number.
        // (A visit without a source of its own took the previous one's, above.)
        if let (Some(id), Some(p)) = (previous_id, previous.as_ref())
            && p.tracker == tracker.name
            && *p.visit == *visit
        {
            let secret = p.secret.clone();
            if let Some(resumed) = s.resume(config, company, id, &secret, now, now + lease) {
                return Ok(resumed);
            }
        }

        s.check_limits(config, v.client.as_deref(), known.as_deref(), now)?;
        let secret = s.random_hex(16);
        if secret.is_empty() {
            return Ok(Started::Keep {
                visitor: known,
                reason: "no randomness available",
            });
        }
        let visitor = known.unwrap_or_else(|| s.random_hex(11));
        let prefer = previous
            .as_ref()
            .filter(|p| p.tracker == tracker.name)
            .and_then(|p| tracker.numbers.iter().position(|n| *n == p.number));
        let id = if s.shared_ids {
            match s.reserved.as_mut().and_then(Iterator::next) {
                Some(id) => id,
                None => {
                    return Ok(Started::Keep {
                        visitor: Some(visitor),
                        reason: "unavailable",
                    });
                }
            }
        } else {
            let id = s.next_id.max(1);
            s.next_id = id + 1;
            id
        };
        let key = (company.slug.clone(), tracker.name.clone());
        // One address holds at most a few numbers of a pool; past that its visitors share them,
        // so one client cannot take the pool from everyone else.
        let held: Vec<usize> = v
            .client
            .as_ref()
            .and_then(|c| s_by_client(&s.by_client, &key, c))
            .map(|ids| {
                ids.iter()
                    .filter_map(|&x| s.pools.get(&key)?.pool.number_of(x, now))
                    .collect()
            })
            .unwrap_or_default();
        let entry = s.pool(config, &key, now);
        let Some(entry) = entry else {
            return Ok(Started::Keep {
                visitor: Some(visitor),
                reason: "no tracked source",
            });
        };
        let cap = dni::leases_per_address(config.dni.leases_per_address, entry.pool.size());
        let got = if held.len() >= cap {
            held.last()
                .and_then(|&n| entry.pool.share(id, n, now, now + lease))
        } else {
            entry.pool.allocate(id, prefer, now, now + lease)
        };
        let Some(got) = got else {
            return Ok(Started::Keep {
                visitor: Some(visitor),
                reason: "empty pool",
            });
        };
        let number = entry.numbers[got.number].clone();
        let live = entry.pool.live_sessions(now);
        s.peaks.entry(key.clone()).or_default().record(now, live);
        let mut writes = Vec::with_capacity(2);
        if let Some(evicted) = got.evicted {
            if let Some(e) = s.sessions.get_mut(&evicted) {
                e.end = now;
            }
            writes.push(SessionWrite::Release {
                id: evicted,
                at: now,
            });
        }
        let counters = s.counters.entry(key.clone()).or_default();
        counters.sessions += 1;
        if got.sharing > 1 {
            counters.shared_allocations += 1;
        }
        let session = Session {
            secret: secret.clone(),
            company: company.slug.clone(),
            tracker: tracker.name.clone(),
            number: number.clone(),
            visitor: visitor.clone(),
            visit: visit.clone(),
            start: now,
            seen: now,
            end: now + lease,
        };
        writes.push(SessionWrite::Start(Box::new(StoredSession {
            id,
            secret: secret.clone(),
            account: company.account.clone(),
            company: company.slug.clone(),
            tracker: tracker.name.clone(),
            number: number.to_string(),
            visitor: visitor.clone(),
            visit: (*visit).clone(),
            sharing: got.sharing,
            created_at: now,
            seen_at: now,
            expires_at: now + lease,
            released: false,
        })));
        s.sessions.insert(id, session);
        s.visitors.insert(visitor.clone(), id);
        if let Some(c) = v.client.clone() {
            s.by_client
                .entry((key.0.clone(), key.1.clone(), c))
                .or_default()
                .push(id);
        }
        Ok(Started::Swap {
            session: id,
            secret,
            visitor,
            tracker: tracker.name.clone(),
            number,
            expires_at: now + lease,
            lease_s: company.website.lease_idle_s,
            sharing: got.sharing,
            resumed: false,
            writes,
        })
    }

    /// Numbers sessions from blocks the store reserves (several nodes share the store).
    pub fn share_ids(&self) {
        self.lock().shared_ids = true;
    }

    /// Session ids this node may still use, when it shares them: `None` if it numbers its own.
    pub fn ids_left(&self) -> Option<u64> {
        let s = self.lock();
        s.shared_ids
            .then(|| s.reserved.as_ref().map_or(0, |r| r.end - r.start))
    }

    /// A block of ids reserved for this node (the rest of the previous one is dropped).
    pub fn add_ids(&self, ids: std::ops::Range<u64>) {
        let mut s = self.lock();
        let left = s.reserved.as_ref().map_or(0, |r| r.end - r.start);
        if left == 0 {
            s.reserved = Some(ids);
        }
    }

    /// What another node made durable: its visitors' sessions and leases, so calls to their
    /// numbers are attributed here too, their pages can go on through this node, and this
    /// node does not hand their numbers to someone else.
    pub fn apply_elsewhere(&self, config: &Config, write: SessionWrite, now: DateTime<Utc>) {
        let mut s = self.lock();
        match write {
            SessionWrite::Start(stored) => {
                let Some((id, session)) = Session::from_stored(*stored) else {
                    return;
                };
                let key = (session.company.clone(), session.tracker.clone());
                let (number, span) = (session.number.clone(), session.span(id));
                s.visitors.insert(session.visitor.clone(), id);
                s.sessions.insert(id, session);
                // A pool not built yet is built from the sessions when first used.
                if let Some(entry) = s.pools.get_mut(&key)
                    && let Some(i) = entry.numbers.iter().position(|n| *n == number)
                {
                    entry.pool.restore(i, span, now);
                }
            }
            SessionWrite::Renew {
                id,
                seen_at,
                expires_at,
            } => {
                let Some(x) = s.sessions.get_mut(&id) else {
                    return;
                };
                x.end = x.end.max(expires_at);
                x.seen = seen_at;
                let key = (x.company.clone(), x.tracker.clone());
                if let Some(entry) = s.pool(config, &key, now) {
                    entry.pool.renew(id, seen_at, expires_at);
                }
            }
            SessionWrite::Release { id, at } => {
                let Some(x) = s.sessions.get_mut(&id) else {
                    return;
                };
                x.end = x.end.min(at);
                let key = (x.company.clone(), x.tracker.clone());
                if let Some(entry) = s.pool(config, &key, now) {
                    entry.pool.release(id, at);
                }
            }
        }
    }

    /// What a session holds, as the key nodes claim it by: `dni:COMPANY:TRACKER:NUMBER`.
    pub fn claim_key(&self, session: u64) -> Option<String> {
        let s = self.lock();
        let x = s.sessions.get(&session)?;
        Some(format!(
            "dni:{}:{}:{}",
            x.company,
            x.tracker,
            x.number.as_str()
        ))
    }

    /// The company of a session, by its public id (`id.secret`), if it is live.
    pub fn company_of(&self, public_id: &str) -> Option<String> {
        let (id, _) = public_id.split_once('.')?;
        let s = self.lock();
        s.sessions.get(&id.parse().ok()?).map(|x| x.company.clone())
    }

    /// Takes back a session whose lease could not be made durable.
    pub fn abandon(&self, config: &Config, session: u64, now: DateTime<Utc>) {
        let mut s = self.lock();
        if let Some(x) = s.sessions.remove(&session) {
            let key = (x.company, x.tracker);
            if let Some(p) = s.pool(config, &key, now) {
                p.pool.release(session, now);
            }
            if let Some(c) = s.counters.get_mut(&key) {
                c.sessions = c.sessions.saturating_sub(1);
            }
        }
    }

    /// Extends a live session's lease; its new expiry.
    pub fn keepalive(
        &self,
        config: &Config,
        public_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, SessionWrite), DniError> {
        let mut s = self.lock();
        let (id, key, lease) = s.authenticate(config, public_id, now)?;
        let until = now + lease;
        let entry = s.pool(config, &key, now).ok_or(DniError::UnknownSession)?;
        entry
            .pool
            .renew(id, now, until)
            .ok_or(DniError::UnknownSession)?;
        let session = s.sessions.get_mut(&id).ok_or(DniError::UnknownSession)?;
        session.end = session.end.max(until);
        session.seen = now;
        Ok((
            session.end,
            SessionWrite::Renew {
                id,
                seen_at: now,
                expires_at: session.end,
            },
        ))
    }

    /// Ends a live session's lease now.
    pub fn release(
        &self,
        config: &Config,
        public_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SessionWrite, DniError> {
        let mut s = self.lock();
        let (id, key, _) = s.authenticate(config, public_id, now)?;
        if let Some(entry) = s.pool(config, &key, now) {
            entry.pool.release(id, now);
        }
        if let Some(session) = s.sessions.get_mut(&id) {
            session.end = now;
        }
        Ok(SessionWrite::Release { id, at: now })
    }

    /// The visitor a call to pool number `number` of `t` at `now` belongs to.
    pub fn attribute(
        &self,
        config: &Config,
        t: &TrackerRef<'_>,
        number: &str,
        now: DateTime<Utc>,
    ) -> Option<CallAttribution> {
        let index = t
            .tracker
            .numbers
            .iter()
            .position(|n| n.as_str() == number)?;
        let key = (t.company.slug.clone(), t.tracker.name.clone());
        let mut s = self.lock();
        let got = s.pool(config, &key, now)?.pool.attribute(index, now)?;
        let counters = s.counters.entry(key.clone()).or_default();
        counters.attributed_calls += 1;
        if got.shared_with > 1 {
            counters.shared_attributions += 1;
        }
        let session = s.sessions.get(&got.session)?;
        Some(CallAttribution {
            session: got.session,
            visitor: session.visitor.clone(),
            visit: (*session.visit).clone(),
            shared_with: got.shared_with,
        })
    }

    /// Health of every pool of `account`'s companies (every account's with `None`).
    pub fn health(
        &self,
        config: &Config,
        account: Option<&str>,
        now: DateTime<Utc>,
    ) -> Vec<PoolHealth> {
        let mut s = self.lock();
        let mut out = Vec::new();
        for company in config
            .companies
            .iter()
            .filter(|c| account.is_none_or(|a| a == c.account))
        {
            for tracker in company
                .trackers
                .iter()
                .filter(|t| t.kind == TrackerKind::Session)
            {
                let key = (company.slug.clone(), tracker.name.clone());
                let peak = s.peaks.get(&key).map_or(0, |p| p.peak(now));
                let counters = s.counters.get(&key).copied().unwrap_or_default();
                let Some(entry) = s.pool(config, &key, now) else {
                    continue;
                };
                entry.pool.expire(now);
                let size = entry.pool.size();
                let in_use = entry.pool.numbers_in_use(now);
                out.push(PoolHealth {
                    company: key.0,
                    tracker: key.1,
                    pool_size: size,
                    live_sessions: entry.pool.live_sessions(now),
                    numbers_in_use: in_use,
                    utilisation: in_use as f64 / size.max(1) as f64,
                    peak_concurrent_sessions: peak,
                    window_days: HEALTH_WINDOW_DAYS,
                    sessions_created: counters.sessions,
                    shared_allocations: counters.shared_allocations,
                    attributed_calls: counters.attributed_calls,
                    shared_attributions: counters.shared_attributions,
                    recommended_pool_size: dni::recommended_pool_size(peak),
                });
            }
        }
        out
    }
}

impl State {
    /// The pool of (company, tracker) as the configuration has it now, rebuilt from the
    /// sessions when its numbers changed (or it was never built).
    fn pool(
        &mut self,
        config: &Config,
        key: &(String, String),
        now: DateTime<Utc>,
    ) -> Option<&mut PoolEntry> {
        let company = config.company(&key.0)?;
        let tracker = company
            .trackers
            .iter()
            .find(|t| t.name == key.1 && t.kind == TrackerKind::Session)?;
        let grace = Duration::seconds(i64::from(config.dni.attribution_grace_s));
        let stale = self
            .pools
            .get(key)
            .is_none_or(|e| e.numbers != tracker.numbers);
        if stale {
            let mut pool = Pool::new(tracker.numbers.len(), grace);
            let mut ids: Vec<u64> = self
                .sessions
                .iter()
                .filter(|(_, x)| x.company == key.0 && x.tracker == key.1)
                .map(|(id, _)| *id)
                .collect();
            ids.sort_unstable();
            for id in ids {
                let Some(x) = self.sessions.get(&id) else {
                    continue;
                };
                if let Some(number) = tracker.numbers.iter().position(|n| *n == x.number) {
                    pool.restore(number, x.span(id), now);
                }
            }
            self.pools.insert(
                key.clone(),
                PoolEntry {
                    pool,
                    numbers: tracker.numbers.clone(),
                },
            );
        }
        self.pools.get_mut(key)
    }

    fn resume(
        &mut self,
        config: &Config,
        company: &Company,
        id: u64,
        secret: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<Started> {
        let x = self.sessions.get(&id)?;
        if x.company != company.slug || !same(&x.secret, secret) || x.end <= now {
            return None;
        }
        let key = (x.company.clone(), x.tracker.clone());
        let entry = self.pool(config, &key, now)?;
        let number = entry.pool.renew(id, now, until)?;
        let phone = entry.numbers.get(number)?.clone();
        let sharing = entry.pool.holders(number, now) as u32;
        let x = self.sessions.get_mut(&id)?;
        x.end = x.end.max(until);
        x.seen = now;
        Some(Started::Swap {
            session: id,
            secret: secret.to_owned(),
            visitor: x.visitor.clone(),
            tracker: x.tracker.clone(),
            number: phone,
            expires_at: x.end,
            lease_s: company.website.lease_idle_s,
            sharing,
            resumed: true,
            writes: vec![SessionWrite::Renew {
                id,
                seen_at: now,
                expires_at: x.end,
            }],
        })
    }

    fn authenticate(
        &mut self,
        config: &Config,
        public_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(u64, (String, String), Duration), DniError> {
        let (id, secret) = public_id.split_once('.').ok_or(DniError::UnknownSession)?;
        let id: u64 = id.parse().map_err(|_| DniError::UnknownSession)?;
        let x = self.sessions.get(&id).ok_or(DniError::UnknownSession)?;
        if !same(&x.secret, secret) || x.end <= now {
            return Err(DniError::UnknownSession);
        }
        let lease = config
            .company(&x.company)
            .map(|c| c.website.lease_idle_s)
            .unwrap_or(20 * 60);
        Ok((
            id,
            (x.company.clone(), x.tracker.clone()),
            Duration::seconds(i64::from(lease)),
        ))
    }

    fn check_limits(
        &mut self,
        config: &Config,
        client: Option<&str>,
        visitor: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), DniError> {
        let d = &config.dni;
        let want = (
            d.sessions_per_minute_per_address,
            d.sessions_per_minute_per_visitor,
            d.burst,
        );
        if self
            .limits
            .as_ref()
            .is_none_or(|(have, _, _)| *have != want)
        {
            self.limits = Some((
                want,
                KeyedLimit::new(want.0, want.2),
                KeyedLimit::new(want.1, want.2),
            ));
        }
        let Some((_, by_address, by_visitor)) = self.limits.as_mut() else {
            return Ok(());
        };
        if let Some(c) = client {
            by_address
                .check(c, now)
                .map_err(|wait| DniError::RateLimited("address", wait.num_seconds() + 1))?;
        }
        if let Some(v) = visitor {
            by_visitor
                .check(v, now)
                .map_err(|wait| DniError::RateLimited("visitor", wait.num_seconds() + 1))?;
        }
        Ok(())
    }

    /// Forgets sessions that ended longer ago than visitors are remembered (every 10 minutes).
    fn prune(&mut self, now: DateTime<Utc>) {
        if self
            .last_prune
            .is_some_and(|t| now - t < Duration::minutes(10))
        {
            return;
        }
        self.last_prune = Some(now);
        let horizon = now - Duration::days(VISITOR_MEMORY_DAYS);
        self.sessions.retain(|_, x| x.end >= horizon);
        let sessions = &self.sessions;
        self.visitors.retain(|_, id| sessions.contains_key(id));
        self.by_client.retain(|_, ids| {
            ids.retain(|id| sessions.get(id).is_some_and(|x| x.end > now));
            !ids.is_empty()
        });
    }
}

/// The sessions `client` started in the pool `key`.
fn s_by_client<'a>(
    by_client: &'a HashMap<(String, String, String), Vec<u64>>,
    key: &(String, String),
    client: &str,
) -> Option<&'a Vec<u64>> {
    by_client.get(&(key.0.clone(), key.1.clone(), client.to_owned()))
}
