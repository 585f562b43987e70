//! Dynamic number insertion: which marketing source a website visit came from, which pool number
//! its visitor is shown, and which visitor a call to a pool number belongs to.
//!
//! Pure: time is a parameter. The server keeps one [`Pool`] per session tracker in memory (and
//! every lease in the store); reconcile rebuilds the same answer from stored leases with
//! [`attribute`].

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Where a visit came from.

/// Landing-page parameters ad platforms add to their clicks: their presence alone means paid.
pub const CLICK_IDS: [(&str, &str); 3] = [
    ("gclid", "google"),
    ("msclkid", "bing"),
    ("fbclid", "facebook"),
];

/// Referrer groups, as the host suffixes that make them. A host matches a suffix when it is the
/// suffix or ends with `.suffix`; entries ending in `.` match any top-level domain (`google.`
/// matches google.com and google.co.uk).
pub const SEARCH_ENGINES: &[&str] = &[
    "google.",
    "bing.com",
    "yahoo.com",
    "duckduckgo.com",
    "baidu.com",
    "yandex.",
    "ecosia.org",
    "ask.com",
    "search.brave.com",
];
pub const SOCIAL_NETWORKS: &[&str] = &[
    "facebook.com",
    "instagram.com",
    "t.co",
    "twitter.com",
    "x.com",
    "linkedin.com",
    "pinterest.com",
    "reddit.com",
    "youtube.com",
    "tiktok.com",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferrerGroup {
    Search,
    Social,
}

impl ReferrerGroup {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "search" => Some(Self::Search),
            "social" => Some(Self::Social),
            _ => None,
        }
    }

    fn hosts(self) -> &'static [&'static str] {
        match self {
            Self::Search => SEARCH_ENGINES,
            Self::Social => SOCIAL_NETWORKS,
        }
    }

    /// The group a host belongs to, and the name of the site (`google`, `facebook`).
    pub fn of(host: &str) -> Option<(Self, &'static str)> {
        for group in [Self::Search, Self::Social] {
            for suffix in group.hosts() {
                if host_matches(host, suffix) {
                    let name = suffix.trim_end_matches('.');
                    let name = name.split('.').next().unwrap_or(name);
                    return Some((group, if name == "t" { "twitter" } else { name }));
                }
            }
        }
        None
    }
}

fn host_matches(host: &str, suffix: &str) -> bool {
    let host = host.trim_start_matches("www.");
    if let Some(prefix) = suffix.strip_suffix('.') {
        // `google.` matches google.com, google.co.uk, www.google.de, but not googleusercontent.com.
        let at = |h: &str| {
            h.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
        };
        at(host) || host.match_indices('.').any(|(i, _)| at(&host[i + 1..]))
    } else {
        host == suffix || host.ends_with(&format!(".{suffix}"))
    }
}

/// One rule of a session tracker saying which visits see its numbers. Rules of every tracker of a
/// company are tried in CallRail's precedence: landing-page rules first, then referring URLs, then
/// referrer groups, then the catch-alls.
#[derive(Debug, Clone, PartialEq)]
pub enum SwapRule {
    /// Every listed landing-page parameter is present with the value (case-insensitive; `*`
    /// means any value).
    Landing(Vec<(String, String)>),
    /// The referring URL starts with this (scheme and `www.` ignored).
    Referrer(String),
    ReferrerGroup(ReferrerGroup),
    /// Visits with no source at all.
    Direct,
    /// Every visit no other rule took.
    All,
}

impl SwapRule {
    fn rank(&self) -> u8 {
        match self {
            SwapRule::Landing(_) => 0,
            SwapRule::Referrer(_) => 1,
            SwapRule::ReferrerGroup(_) => 2,
            SwapRule::Direct => 3,
            SwapRule::All => 4,
        }
    }

    fn matches(&self, visit: &Visit, params: &[(String, String)]) -> bool {
        match self {
            SwapRule::Landing(want) => want.iter().all(|(k, v)| {
                params
                    .iter()
                    .any(|(pk, pv)| pk == k && (v == "*" || pv.eq_ignore_ascii_case(v)))
            }),
            SwapRule::Referrer(prefix) => visit
                .referrer
                .as_deref()
                .is_some_and(|r| strip_scheme(r).starts_with(strip_scheme(prefix))),
            SwapRule::ReferrerGroup(g) => visit.referrer_group == Some(*g),
            SwapRule::Direct => visit.medium == "direct",
            SwapRule::All => true,
        }
    }
}

fn strip_scheme(url: &str) -> &str {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.strip_prefix("www.").unwrap_or(rest)
}

/// What a visit tells about the marketing that brought it: what a call it leads to is attributed
/// to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// utm_source, the ad platform of a click id, the referring site's name, or `direct`.
    pub source: String,
    /// utm_medium, `cpc` for a click id, `organic`, `social`, `referral` or `direct`.
    pub medium: String,
    pub campaign: Option<String>,
    /// utm_term, or the ad platform's keyword parameter.
    pub keyword: Option<String>,
    pub content: Option<String>,
    pub gclid: Option<String>,
    pub msclkid: Option<String>,
    pub fbclid: Option<String>,
    pub landing_page: String,
    pub referrer: Option<String>,
    pub referrer_domain: Option<String>,
    #[serde(skip)]
    pub referrer_group: Option<ReferrerGroup>,
}

impl Visit {
    /// Reads a visit from its landing URL and referrer. A referrer on the landing page's own
    /// site is navigation, not a source.
    pub fn read(landing_url: &str, referrer: Option<&str>) -> (Visit, Vec<(String, String)>) {
        let landing = url::Url::parse(landing_url).ok();
        let params: Vec<(String, String)> = landing
            .as_ref()
            .map(|u| {
                u.query_pairs()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
                    .filter(|(_, v)| !v.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let landing_host = landing
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_owned));
        let referrer_url = referrer
            .filter(|r| !r.is_empty())
            .and_then(|r| url::Url::parse(r).ok())
            .filter(|r| matches!(r.scheme(), "http" | "https"));
        let referrer_host = referrer_url
            .as_ref()
            .and_then(|r| {
                r.host_str()
                    .map(|h| h.trim_start_matches("www.").to_owned())
            })
            .filter(|h| {
                Some(h.as_str())
                    != landing_host
                        .as_deref()
                        .map(|l| l.trim_start_matches("www."))
            });
        let group = referrer_host.as_deref().and_then(ReferrerGroup::of);

        let click = CLICK_IDS.iter().find(|(p, _)| param(p).is_some());
        let source = param("utm_source")
            .or_else(|| click.map(|(_, platform)| (*platform).to_owned()))
            .or_else(|| group.map(|(_, name)| name.to_owned()))
            .or_else(|| referrer_host.clone())
            .unwrap_or_else(|| "direct".to_owned());
        let medium = param("utm_medium")
            .or_else(|| click.map(|_| "cpc".to_owned()))
            .or_else(|| {
                group.map(|(g, _)| match g {
                    ReferrerGroup::Search => "organic".to_owned(),
                    ReferrerGroup::Social => "social".to_owned(),
                })
            })
            .or_else(|| referrer_host.as_ref().map(|_| "referral".to_owned()))
            .unwrap_or_else(|| {
                if param("utm_campaign").is_some() {
                    "(none)".to_owned()
                } else {
                    "direct".to_owned()
                }
            });
        let visit = Visit {
            source,
            medium,
            campaign: param("utm_campaign"),
            keyword: param("utm_term")
                .or_else(|| param("keyword"))
                .or_else(|| param("kw")),
            content: param("utm_content"),
            gclid: param("gclid"),
            msclkid: param("msclkid"),
            fbclid: param("fbclid"),
            landing_page: landing_url.to_owned(),
            referrer: referrer_url.as_ref().map(|r| r.to_string()),
            referrer_domain: referrer_url
                .as_ref()
                .and_then(|r| r.host_str().map(str::to_owned)),
            referrer_group: group.map(|(g, _)| g),
        };
        (visit, params)
    }

    /// Whether the visit has a source worth remembering over a later visit's (anything but direct).
    pub fn is_direct(&self) -> bool {
        self.medium == "direct"
    }
}

/// Which of a company's session trackers takes `visit`: the tracker whose best-ranked matching
/// rule ranks first (ties go to the tracker listed first). `None` when no rule matches.
pub fn classify<'a>(
    trackers: impl IntoIterator<Item = (usize, &'a [SwapRule])>,
    visit: &Visit,
    params: &[(String, String)],
) -> Option<usize> {
    trackers
        .into_iter()
        .filter_map(|(i, rules)| {
            rules
                .iter()
                .filter(|r| r.matches(visit, params))
                .map(SwapRule::rank)
                .min()
                .map(|rank| (rank, i))
        })
        .min()
        .map(|(_, i)| i)
}

/// Which proxies in front of dialtone may say who the client is, in `X-Forwarded-For`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustedProxies {
    /// This many proxies, each appending the address it was reached from (0: none).
    pub count: u8,
    /// Or: proxies at these addresses, wherever they are in the chain.
    pub cidrs: Vec<ipnet::IpNet>,
}

/// The client's address, from the connection's peer and the `X-Forwarded-For` header.
///
/// The header's left end is whatever the client wrote; only the hops appended by trusted proxies
/// can be believed, so the address is read from the right: the `count`-th hop from the right
/// (each trusted proxy appends the address it was reached from), or, with CIDRs, the first
/// address from the right (the peer included) that is not a trusted proxy. A request that did
/// not come through the proxies (the peer itself is not one) is its peer.
pub fn client_address(
    peer: std::net::IpAddr,
    forwarded_for: Option<&str>,
    trusted: &TrustedProxies,
) -> std::net::IpAddr {
    let hops = || {
        forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rev()
    };
    if !trusted.cidrs.is_empty() {
        let is_proxy = |ip: &std::net::IpAddr| trusted.cidrs.iter().any(|n| n.contains(ip));
        let mut current = peer;
        for hop in hops() {
            if !is_proxy(&current) {
                return current;
            }
            match hop.parse() {
                Ok(ip) => current = ip,
                // Garbage right of the proxies: the last proxy is as far as can be believed.
                Err(_) => return current,
            }
        }
        return current;
    }
    match trusted.count {
        0 => peer,
        n => hops()
            .nth(usize::from(n) - 1)
            .and_then(|h| h.parse().ok())
            .unwrap_or(peer),
    }
}

/// Live leases one client address may hold in a pool of `pool_size`: `configured`, but never
/// more than half the pool (at least one), so other visitors keep the rest.
pub fn leases_per_address(configured: u32, pool_size: usize) -> usize {
    (configured as usize).min((pool_size / 2).max(1))
}

/// User agents of crawlers, link previewers, monitors and headless browsers: they see the website
/// number, never a pool's. The patterns are the `isbot` crate's maintained list (which also knows
/// headless Chrome and Google's inspection tool), plus tools it lets through; an empty user agent
/// is a script.
pub fn is_bot(user_agent: &str) -> bool {
    static BOTS: std::sync::LazyLock<isbot::Bots> = std::sync::LazyLock::new(|| {
        let mut bots = isbot::Bots::default();
        bots.append(&[
            r"headlesschrome",
            r"google-inspectiontool",
            r"^curl/",
            r"^wget/",
        ]);
        bots
    });
    user_agent.trim().is_empty() || BOTS.is_bot(user_agent)
}

/// A website origin allowed to call the session API: exact (`https://www.acme.com`), any
/// subdomain (`https://*.acme.com`), or any port (`http://localhost:*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern(String);

impl OriginPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}` is not an origin (like https://www.example.com)"))?;
        let ok = matches!(scheme, "http" | "https")
            && !rest.is_empty()
            && !rest.contains('/')
            && rest.matches('*').count() <= 1
            && (!rest.contains('*') || rest.starts_with("*.") || rest.ends_with(":*"));
        if ok {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(format!(
                "`{s}` is not an origin pattern (scheme://host[:port], with `*.` for subdomains or `:*` for any port)"
            ))
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        let p = &self.0;
        if let Some(base) = p.strip_suffix(":*") {
            return origin == base
                || origin
                    .strip_prefix(base)
                    .and_then(|r| r.strip_prefix(':'))
                    .is_some_and(|port| {
                        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                    });
        }
        if let Some((scheme, suffix)) = p.split_once("://*.") {
            return origin
                .strip_prefix(scheme)
                .and_then(|r| r.strip_prefix("://"))
                .is_some_and(|host| host == suffix || host.ends_with(&format!(".{suffix}")));
        }
        origin == *p
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Pools and leases.

/// A visitor session's hold on a pool number, from `start` to `end` (its expiry while live; when
/// it was released or ran out once ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSpan {
    pub session: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The session's last sign of life (creation or keepalive).
    pub seen: DateTime<Utc>,
}

/// Who a call to a pool number belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributed {
    pub session: u64,
    /// Sessions holding the number when the call came (1: certain).
    pub shared_with: u32,
}

/// The session a call at `t` to one number belongs to, from that number's leases: the holder at
/// `t` last seen alive (the other holders are counted in `shared_with`); else, among the leases
/// that ended within `grace` before `t`, the one that ended last (the others counted likewise).
pub fn attribute(
    spans: impl IntoIterator<Item = LeaseSpan>,
    t: DateTime<Utc>,
    grace: Duration,
) -> Option<Attributed> {
    let key = |s: &LeaseSpan| (s.end.min(t), s.seen, s.start, s.session);
    let (mut holders, mut ended) = (0u32, 0u32);
    let mut best: Option<LeaseSpan> = None;
    let mut recent: Option<LeaseSpan> = None;
    for s in spans {
        if s.start <= t && t <= s.end {
            holders += 1;
            if best.is_none_or(|b| (s.seen, s.start, s.session) > (b.seen, b.start, b.session)) {
                best = Some(s);
            }
        } else if s.end < t && t <= s.end + grace {
            ended += 1;
            if recent.is_none_or(|r| key(&s) > key(&r)) {
                recent = Some(s);
            }
        }
    }
    match (best, recent) {
        (Some(b), _) => Some(Attributed {
            session: b.session,
            shared_with: holders,
        }),
        (None, Some(r)) => Some(Attributed {
            session: r.session,
            shared_with: ended,
        }),
        (None, None) => None,
    }
}

#[derive(Debug, Clone, Default)]
struct NumberState {
    /// Live leases and the ones that ended within the attribution grace.
    leases: Vec<LeaseSpan>,
    /// When the number last became free (never used: the epoch, so it goes first).
    free_since: Option<DateTime<Utc>>,
    last_assigned: Option<DateTime<Utc>>,
}

impl NumberState {
    fn live(&self, now: DateTime<Utc>) -> usize {
        self.leases.iter().filter(|l| l.end > now).count()
    }
}

/// Live sessions one number may be shared by. Past it, attribution means little anyway, and
/// the least recently seen holder loses the number (its page asks again at its next keepalive),
/// so a flood of visitors costs bounded memory and time per allocation.
pub const MAX_SHARING: usize = 32;

/// The number a new session was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub number: usize,
    /// Live sessions on the number including this one: more than 1 when the pool was exhausted.
    pub sharing: u32,
    /// A holder that lost the number because it was shared by [`MAX_SHARING`] sessions already.
    pub evicted: Option<u64>,
}

/// One session tracker's pool: who holds which number, in memory.
#[derive(Debug, Clone)]
pub struct Pool {
    numbers: Vec<NumberState>,
    grace: Duration,
    /// Where each live session is: session → number.
    holder_of: HashMap<u64, usize>,
    /// The last `expire`: leases that ended before it are already out of `holder_of`.
    expired_at: Option<DateTime<Utc>>,
}

impl Pool {
    pub fn new(size: usize, grace: Duration) -> Self {
        Self {
            numbers: vec![NumberState::default(); size],
            grace,
            holder_of: HashMap::new(),
            expired_at: None,
        }
    }

    pub fn size(&self) -> usize {
        self.numbers.len()
    }

    /// Restores a lease read back from the store (at startup). Leases past their grace are
    /// only remembered for when their number became free.
    pub fn restore(&mut self, number: usize, span: LeaseSpan, now: DateTime<Utc>) {
        let Some(n) = self.numbers.get_mut(number) else {
            return;
        };
        n.last_assigned = n.last_assigned.max(Some(span.start));
        if span.end > now {
            self.holder_of.insert(span.session, number);
            n.leases.push(span);
        } else {
            n.free_since = n.free_since.max(Some(span.end));
            if span.end + self.grace >= now {
                n.leases.push(span);
            }
        }
    }

    /// Ends leases that ran out by `now` and forgets the ones past their grace. Of the leases
    /// in their grace, a number keeps the [`MAX_SHARING`] that ended last: under a flood of
    /// visitors thousands end every grace period, and the calls that come then are uncertain
    /// anyway.
    pub fn expire(&mut self, now: DateTime<Utc>) {
        // Leases that ended before this are past their grace (computed once: date arithmetic
        // per lease showed in profiles).
        let forgotten = now - self.grace;
        let previously = self.expired_at.replace(now);
        for n in &mut self.numbers {
            let mut ended = None;
            let mut in_grace = 0;
            n.leases.retain(|l| {
                if l.end <= now {
                    ended = ended.max(Some(l.end));
                    if previously.is_none_or(|p| l.end > p) {
                        self.holder_of.remove(&l.session);
                    }
                    in_grace += usize::from(l.end >= forgotten);
                }
                l.end >= forgotten
            });
            if in_grace > MAX_SHARING {
                let mut ends: Vec<DateTime<Utc>> = n
                    .leases
                    .iter()
                    .filter(|l| l.end <= now)
                    .map(|l| l.end)
                    .collect();
                ends.sort_unstable_by(|a, b| b.cmp(a));
                let keep_from = ends[MAX_SHARING - 1];
                n.leases.retain(|l| l.end > now || l.end >= keep_from);
            }
            if ended.is_some() && n.live(now) == 0 {
                n.free_since = n.free_since.max(ended);
            }
        }
    }

    fn is_free(&self, number: usize, now: DateTime<Utc>) -> bool {
        self.numbers[number].live(now) == 0
    }

    /// Gives `session` a number until `until`: `prefer` (a returning visitor's number) if it is
    /// free, else the free number released longest ago, else — the pool exhausted — the number
    /// assigned longest ago, shared.
    pub fn allocate(
        &mut self,
        session: u64,
        prefer: Option<usize>,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<Allocation> {
        if self.numbers.is_empty() {
            return None;
        }
        self.expire(now);
        let free = prefer
            .filter(|&p| p < self.numbers.len() && self.is_free(p, now))
            .or_else(|| {
                (0..self.numbers.len())
                    .filter(|&i| self.is_free(i, now))
                    .min_by_key(|&i| (self.numbers[i].free_since, i))
            });
        let number = free.unwrap_or_else(|| {
            (0..self.numbers.len())
                .min_by_key(|&i| (self.numbers[i].last_assigned, i))
                .unwrap_or(0)
        });
        Some(self.place(session, number, now, until))
    }

    /// Gives `session` a share of `number` until `until` (a client address past its cap shares
    /// the numbers it holds rather than take another).
    pub fn share(
        &mut self,
        session: u64,
        number: usize,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<Allocation> {
        if number >= self.numbers.len() {
            return None;
        }
        self.expire(now);
        Some(self.place(session, number, now, until))
    }

    fn place(
        &mut self,
        session: u64,
        number: usize,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Allocation {
        let n = &mut self.numbers[number];
        let mut evicted = None;
        if n.live(now) >= MAX_SHARING {
            let stale = n
                .leases
                .iter_mut()
                .filter(|l| l.end > now)
                .min_by_key(|l| (l.seen, l.start, l.session));
            if let Some(l) = stale {
                l.end = now;
                evicted = Some(l.session);
            }
        }
        if let Some(e) = evicted {
            self.holder_of.remove(&e);
        }
        let n = &mut self.numbers[number];
        n.leases.push(LeaseSpan {
            session,
            start: now,
            end: until,
            seen: now,
        });
        n.last_assigned = Some(now);
        self.holder_of.insert(session, number);
        Allocation {
            number,
            sharing: n.live(now) as u32,
            evicted,
        }
    }

    /// Extends a live session's lease to `until`; `None` if it holds nothing (ran out, released).
    pub fn renew(
        &mut self,
        session: u64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<usize> {
        let number = *self.holder_of.get(&session)?;
        let lease = self.numbers[number]
            .leases
            .iter_mut()
            .find(|l| l.session == session && l.end > now)?;
        lease.end = lease.end.max(until);
        lease.seen = now;
        Some(number)
    }

    /// Ends a session's lease now; the number it held, if any.
    pub fn release(&mut self, session: u64, now: DateTime<Utc>) -> Option<usize> {
        let number = self.holder_of.remove(&session)?;
        let n = &mut self.numbers[number];
        let lease = n
            .leases
            .iter_mut()
            .find(|l| l.session == session && l.end > now)?;
        lease.end = now;
        if n.live(now) == 0 {
            n.free_since = Some(now);
        }
        Some(number)
    }

    /// The number a live session holds.
    pub fn number_of(&self, session: u64, now: DateTime<Utc>) -> Option<usize> {
        let &n = self.holder_of.get(&session)?;
        self.numbers[n]
            .leases
            .iter()
            .any(|l| l.session == session && l.end > now)
            .then_some(n)
    }

    /// The session a call to `number` at `now` belongs to.
    pub fn attribute(&self, number: usize, now: DateTime<Utc>) -> Option<Attributed> {
        let n = self.numbers.get(number)?;
        attribute(n.leases.iter().copied(), now, self.grace)
    }

    /// Live sessions holding `number` at `now`.
    pub fn holders(&self, number: usize, now: DateTime<Utc>) -> usize {
        self.numbers.get(number).map_or(0, |n| n.live(now))
    }

    /// Live sessions at `now`.
    pub fn live_sessions(&self, now: DateTime<Utc>) -> usize {
        self.numbers.iter().map(|n| n.live(now)).sum()
    }

    /// Numbers held by at least one live session at `now`.
    pub fn numbers_in_use(&self, now: DateTime<Utc>) -> usize {
        self.numbers.iter().filter(|n| n.live(now) > 0).count()
    }
}

/// The most leases live at one instant among `spans` (start inclusive, end exclusive).
pub fn peak_concurrent(spans: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>) -> usize {
    live_at_starts(spans)
        .map(|(_, live)| live)
        .max()
        .unwrap_or(0)
}

/// Sweeps leases in time order: at each lease's start, how many are live (it included).
fn live_at_starts(
    spans: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>,
) -> impl Iterator<Item = (DateTime<Utc>, usize)> {
    let mut edges: Vec<(DateTime<Utc>, i32)> = Vec::new();
    for (start, end) in spans {
        if end > start {
            edges.push((start, 1));
            edges.push((end, -1));
        }
    }
    // Ends sort before starts at the same instant: a lease that ends as another starts frees its
    // number for it.
    edges.sort_unstable();
    let mut live = 0i32;
    edges.into_iter().filter_map(move |(at, d)| {
        live += d;
        (d > 0).then_some((at, live as usize))
    })
}

/// The most sessions a pool had live at once, hour by hour, kept as allocations happen so a
/// health report does not walk every session.
#[derive(Debug, Clone, Default)]
pub struct HourlyPeaks {
    /// (hours since the epoch, the most live sessions seen in it), oldest first.
    hours: VecDeque<(i64, u32)>,
}

/// Hours of peaks kept: the health window.
const PEAK_HOURS: i64 = 7 * 24;

impl HourlyPeaks {
    /// `live` sessions were live at `now`.
    pub fn record(&mut self, now: DateTime<Utc>, live: usize) {
        let hour = now.timestamp().div_euclid(3600);
        let live = u32::try_from(live).unwrap_or(u32::MAX);
        match self.hours.back_mut() {
            Some((h, peak)) if *h == hour => *peak = (*peak).max(live),
            Some((h, _)) if *h > hour => {
                // The clock went back: count it in the latest hour.
                if let Some((_, peak)) = self.hours.back_mut() {
                    *peak = (*peak).max(live);
                }
            }
            _ => self.hours.push_back((hour, live)),
        }
        while self
            .hours
            .front()
            .is_some_and(|(h, _)| hour - h >= PEAK_HOURS)
        {
            self.hours.pop_front();
        }
    }

    /// The peak over the hours of the last week up to `now`.
    pub fn peak(&self, now: DateTime<Utc>) -> usize {
        let hour = now.timestamp().div_euclid(3600);
        self.hours
            .iter()
            .filter(|(h, _)| hour - h < PEAK_HOURS)
            .map(|(_, p)| *p as usize)
            .max()
            .unwrap_or(0)
    }

    /// The peaks of a history of leases (start inclusive, end exclusive), as if recorded live.
    pub fn of(spans: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>) -> Self {
        let mut peaks = Self::default();
        for (at, live) in live_at_starts(spans) {
            peaks.record(at, live);
        }
        peaks
    }
}

/// Target utilisation at the busiest moment: above it, numbers start being shared by bursts
/// (call-tracking vendors add numbers when a pool is regularly above 75 % used).
pub const TARGET_PEAK_UTILISATION: f64 = 0.75;

/// Numbers a pool needs so its observed peak of concurrent sessions stays under the target
/// utilisation; never fewer than 1.
pub fn recommended_pool_size(peak_concurrent: usize) -> usize {
    ((peak_concurrent as f64 / TARGET_PEAK_UTILISATION).ceil() as usize).max(1)
}

// ---------------------------------------------------------------------------------------------
// Rate limiting of session creation.

/// GCRA per key: `per_minute` sessions a minute, `burst` at once. Keys are forgotten once idle
/// for longer than their bucket takes to drain.
#[derive(Debug, Clone)]
pub struct KeyedLimit {
    interval: Duration,
    tolerance: Duration,
    tat: HashMap<String, DateTime<Utc>>,
    last_sweep: Option<DateTime<Utc>>,
}

impl KeyedLimit {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let interval = Duration::milliseconds(60_000 / i64::from(per_minute.max(1)));
        Self {
            interval,
            tolerance: interval * (burst.max(1) as i32 - 1),
            tat: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Whether one more request from `key` at `now` is allowed; records it when it is. When
    /// refused, how long until the next one would be allowed.
    pub fn check(&mut self, key: &str, now: DateTime<Utc>) -> Result<(), Duration> {
        if self
            .last_sweep
            .is_none_or(|t| now - t > Duration::seconds(60))
        {
            self.tat.retain(|_, tat| *tat > now);
            self.last_sweep = Some(now);
        }
        let tat = self.tat.get(key).copied().unwrap_or(now).max(now);
        if tat - now > self.tolerance {
            return Err(tat - now - self.tolerance);
        }
        self.tat.insert(key.to_owned(), tat + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).expect("valid")
    }

    #[test]
    fn reads_google_ads_click() {
        let (v, params) = Visit::read(
            "https://acme.example/?utm_source=google&utm_medium=cpc&utm_term=emergency+plumber&gclid=X",
            None,
        );
        assert_eq!(v.source, "google");
        assert_eq!(v.medium, "cpc");
        assert_eq!(v.keyword.as_deref(), Some("emergency plumber"));
        assert_eq!(v.gclid.as_deref(), Some("X"));
        assert_eq!(params.len(), 4);
    }

    #[test]
    fn click_id_alone_is_paid_search() {
        let (v, _) = Visit::read("https://acme.example/?msclkid=abc", None);
        assert_eq!((v.source.as_str(), v.medium.as_str()), ("bing", "cpc"));
    }

    #[test]
    fn referrers_make_organic_social_referral_or_nothing() {
        let cases = [
            ("https://www.google.co.uk/search?q=x", "google", "organic"),
            ("https://duckduckgo.com/", "duckduckgo", "organic"),
            ("https://m.facebook.com/story", "facebook", "social"),
            ("https://t.co/abc", "twitter", "social"),
            (
                "https://blog.partner.example/post",
                "blog.partner.example",
                "referral",
            ),
            ("https://acme.example/services", "direct", "direct"),
            (
                "https://googleusercontent.com/x",
                "googleusercontent.com",
                "referral",
            ),
        ];
        for (referrer, source, medium) in cases {
            let (v, _) = Visit::read("https://acme.example/", Some(referrer));
            assert_eq!(
                (v.source.as_str(), v.medium.as_str()),
                (source, medium),
                "{referrer}"
            );
        }
    }

    #[test]
    fn precedence_is_landing_then_referrer_url_then_group_then_direct() {
        let ads = vec![SwapRule::Landing(vec![("gclid".into(), "*".into())])];
        let partner = vec![SwapRule::Referrer("https://partner.example/".into())];
        let search = vec![SwapRule::ReferrerGroup(ReferrerGroup::Search)];
        let rest = vec![SwapRule::All];
        let trackers = || {
            [
                (3, rest.as_slice()),
                (2, search.as_slice()),
                (1, partner.as_slice()),
                (0, ads.as_slice()),
            ]
        };
        let pick = |landing: &str, referrer: Option<&str>| {
            let (v, p) = Visit::read(landing, referrer);
            classify(trackers(), &v, &p)
        };
        assert_eq!(
            pick(
                "https://a.example/?gclid=1",
                Some("https://partner.example/x")
            ),
            Some(0)
        );
        assert_eq!(
            pick("https://a.example/", Some("https://partner.example/x")),
            Some(1)
        );
        assert_eq!(
            pick("https://a.example/", Some("https://www.bing.com/")),
            Some(2)
        );
        assert_eq!(pick("https://a.example/", None), Some(3));
        assert_eq!(
            classify(
                [(0, ads.as_slice())],
                &Visit::read("https://a.example/", None).0,
                &[]
            ),
            None
        );
    }

    #[test]
    fn landing_rules_need_every_parameter() {
        let rule = SwapRule::Landing(vec![
            ("utm_source".into(), "google".into()),
            ("utm_medium".into(), "cpc".into()),
        ]);
        let m = |url: &str| {
            let (v, p) = Visit::read(url, None);
            rule.matches(&v, &p)
        };
        assert!(m("https://a.example/?utm_source=Google&utm_medium=CPC"));
        assert!(!m("https://a.example/?utm_source=google"));
        assert!(!m("https://a.example/?utm_source=google&utm_medium=email"));
    }

    #[test]
    fn the_client_address_is_read_from_the_right_past_trusted_proxies() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let peer = ip("10.0.0.2");
        let none = TrustedProxies::default();
        let one = TrustedProxies {
            count: 1,
            cidrs: vec![],
        };
        let two = TrustedProxies {
            count: 2,
            cidrs: vec![],
        };
        let cidrs = TrustedProxies {
            count: 0,
            cidrs: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        };
        let spoofed = Some("6.6.6.6, 203.0.113.7");
        // Trusting nobody, the header is ignored.
        assert_eq!(client_address(peer, spoofed, &none), peer);
        // One proxy appended the client's address: the rightmost hop, whatever the client wrote.
        assert_eq!(client_address(peer, spoofed, &one), ip("203.0.113.7"));
        assert_eq!(
            client_address(peer, Some("203.0.113.7"), &one),
            ip("203.0.113.7")
        );
        // Two proxies: the second from the right.
        assert_eq!(
            client_address(peer, Some("6.6.6.6, 203.0.113.7, 10.0.0.9"), &two),
            ip("203.0.113.7")
        );
        // Fewer hops than proxies, or garbage where an address should be: the peer.
        assert_eq!(client_address(peer, None, &one), peer);
        assert_eq!(client_address(peer, Some("not-an-ip"), &one), peer);
        // By network: past every trusted proxy from the right.
        assert_eq!(
            client_address(peer, Some("6.6.6.6, 203.0.113.7, 10.1.2.3"), &cidrs),
            ip("203.0.113.7")
        );
        // A peer that is not a proxy is the client, whatever it says.
        assert_eq!(
            client_address(ip("198.51.100.4"), spoofed, &cidrs),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_address(peer, Some("garbage, 10.0.0.7"), &cidrs),
            ip("10.0.0.7"),
            "as far as the proxies can be believed"
        );
    }

    #[test]
    fn an_address_holds_at_most_half_a_pool() {
        assert_eq!(leases_per_address(2, 4), 2);
        assert_eq!(leases_per_address(10, 4), 2);
        assert_eq!(leases_per_address(10, 3), 1);
        assert_eq!(leases_per_address(2, 1), 1);
        assert_eq!(leases_per_address(1, 100), 1);
    }

    #[test]
    fn bots_are_recognised_and_browsers_are_not() {
        assert!(is_bot(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        ));
        assert!(is_bot("facebookexternalhit/1.1"));
        // Headless browsers and Google's own page testers are not visitors.
        assert!(is_bot(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"
        ));
        assert!(is_bot(
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 (compatible; Google-InspectionTool/1.0;)"
        ));
        assert!(is_bot("curl/8.5.0"));
        assert!(is_bot("python-requests/2.31"));
        assert!(is_bot(""));
        for browser in [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ] {
            assert!(!is_bot(browser), "{browser}");
        }
    }

    #[test]
    fn origin_patterns() {
        let p = |s: &str| OriginPattern::parse(s).expect(s);
        assert!(p("http://127.0.0.1:*").allows("http://127.0.0.1:41234"));
        assert!(p("http://127.0.0.1:*").allows("http://127.0.0.1"));
        assert!(!p("http://127.0.0.1:*").allows("http://127.0.0.1.evil.example:80"));
        assert!(p("https://*.acme.example").allows("https://shop.acme.example"));
        assert!(p("https://*.acme.example").allows("https://acme.example"));
        assert!(!p("https://*.acme.example").allows("https://evilacme.example"));
        assert!(!p("https://*.acme.example").allows("http://shop.acme.example"));
        assert!(p("https://www.acme.example").allows("https://WWW.acme.example"));
        assert!(OriginPattern::parse("acme.example").is_err());
        assert!(OriginPattern::parse("https://acme.example/path").is_err());
        assert!(OriginPattern::parse("https://a*b.example").is_err());
    }

    #[test]
    fn returning_visitor_gets_their_number_back_when_free() {
        let mut pool = Pool::new(3, Duration::seconds(60));
        let a = pool.allocate(1, None, at(0), at(100)).expect("number");
        pool.allocate(2, None, at(1), at(100)).expect("number");
        pool.expire(at(200));
        // Number a was freed first but visitor 3 prefers number 1 (its last one).
        let b = pool.allocate(3, Some(1), at(201), at(300)).expect("number");
        assert_eq!(b.number, 1);
        assert_ne!(a.number, 1);
    }

    #[test]
    fn exhausted_pool_shares_the_number_assigned_longest_ago() {
        let mut pool = Pool::new(2, Duration::seconds(60));
        pool.allocate(1, None, at(0), at(1000)).expect("number");
        pool.allocate(2, None, at(5), at(1000)).expect("number");
        let third = pool.allocate(3, None, at(10), at(1000)).expect("number");
        assert_eq!(third.number, pool.number_of(1, at(10)).expect("live"));
        assert_eq!(third.sharing, 2);
        let call = pool.attribute(third.number, at(20)).expect("attributed");
        assert_eq!((call.session, call.shared_with), (3, 2));
        // A keepalive from the first holder makes it the likelier caller.
        pool.renew(1, at(30), at(1030));
        assert_eq!(
            pool.attribute(third.number, at(31)).map(|a| a.session),
            Some(1)
        );
    }

    #[test]
    fn grace_after_expiry_then_nobody() {
        let mut pool = Pool::new(1, Duration::seconds(60));
        pool.allocate(7, None, at(0), at(100)).expect("number");
        assert_eq!(pool.attribute(0, at(130)).map(|a| a.session), Some(7));
        pool.expire(at(161));
        assert_eq!(pool.attribute(0, at(161)), None);
    }

    #[test]
    fn peak_and_recommendation() {
        let spans = [
            (at(0), at(10)),
            (at(5), at(15)),
            (at(10), at(20)),
            (at(12), at(13)),
        ];
        assert_eq!(peak_concurrent(spans), 3);
        assert_eq!(recommended_pool_size(3), 4);
        assert_eq!(recommended_pool_size(0), 1);
    }

    #[test]
    fn hourly_peaks_agree_with_the_sweep_and_forget_after_a_week() {
        let spans = [
            (at(0), at(10)),
            (at(5), at(15)),
            (at(10), at(20)),
            (at(12), at(13)),
        ];
        let peaks = HourlyPeaks::of(spans);
        assert_eq!(peaks.peak(at(30)), peak_concurrent(spans));
        let mut live = HourlyPeaks::default();
        live.record(at(0), 7);
        live.record(at(3600), 2);
        assert_eq!(live.peak(at(3601)), 7);
        assert_eq!(
            live.peak(at(7 * 24 * 3600 + 10)),
            2,
            "the first hour is a week old"
        );
    }

    #[test]
    fn keyed_limit_allows_a_burst_then_the_rate() {
        let mut l = KeyedLimit::new(60, 3);
        for _ in 0..3 {
            assert!(l.check("a", at(0)).is_ok());
        }
        assert!(l.check("a", at(0)).is_err());
        assert!(l.check("b", at(0)).is_ok());
        assert!(l.check("a", at(1)).is_ok());
        assert!(l.check("a", at(1)).is_err());
    }
}
