//! A call flow as written made into the model: its steps and what they refer to.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::convert::{date, phone};
use super::error::Reporter;
use super::load::slug_ok;
use super::raw::*;
use super::*;
use crate::flow::{
    Action, CallerId, DialStep, Flow, FlowProblem, Menu, Message, Schedule, Step, StepId, Strategy,
};
use crate::phone::PhoneNumber;
use crate::schedule::WeeklyHours;

/// Resolves a step reference: (reporter, field name, step name, reference) → index.
pub(super) type StepLookup<'a> =
    dyn Fn(&mut Reporter, &str, &str, &Spanned<String>) -> Option<StepId> + 'a;

pub(super) type Resolver<'a> = dyn Fn(&mut Reporter, &Spanned<String>) -> Option<PhoneNumber> + 'a;

pub(super) fn convert_flow(
    company: &str,
    name: &str,
    f: RawFlow,
    r: &mut Reporter,
    resolve: &Resolver,
    recording: &RecordingPolicy,
) -> Option<Flow> {
    let errors_before = r.errors.len();
    let ids: Vec<String> = f.steps.keys().cloned().collect();
    let spans: Vec<Range<usize>> = f.steps.values().map(|s| s.span()).collect();
    for (id, span) in ids.iter().zip(&spans) {
        if !slug_ok(id) {
            r.at(
                Some(span.clone()),
                format!("flow `{name}`: step name `{id}` may only use letters, digits, - and _"),
            );
        }
    }
    let lookup =
        |r: &mut Reporter, field: &str, step: &str, s: &Spanned<String>| -> Option<StepId> {
            let found = ids.iter().position(|id| id == s.get_ref());
            if found.is_none() {
                r.at(
                    Some(s.span()),
                    format!(
                        "flow `{name}` step `{step}`: `{field}` refers to unknown step `{}`",
                        s.get_ref()
                    ),
                );
            }
            found
        };
    let start = ids.iter().position(|id| id == f.start.get_ref());
    if start.is_none() {
        r.at(
            Some(f.start.span()),
            format!(
                "flow `{name}`: `start` refers to unknown step `{}`",
                f.start.get_ref()
            ),
        );
    }
    let mut steps = Vec::new();
    for (id, raw) in f.steps {
        let span = raw.span();
        let action = convert_step(
            name,
            &id,
            span,
            raw.into_inner(),
            r,
            &lookup,
            resolve,
            recording,
        );
        steps.push(action.map(|action| Step { id, action }));
    }
    if r.errors.len() > errors_before {
        return None;
    }
    let flow = Flow {
        name: name.to_owned(),
        start: start?,
        steps: steps.into_iter().collect::<Option<Vec<_>>>()?,
    };
    let line_of = |id: StepId| Some(spans[id].clone());
    let names = |path: &[StepId]| {
        path.iter()
            .map(|s| flow.steps[*s].id.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    };
    for problem in flow.problems(recording.without_notice_reason.is_some()) {
        match problem {
            FlowProblem::Unreachable(s) => r.at(
                line_of(s),
                format!("flow `{name}` of `{company}`: step `{}` can never be reached from `start`", flow.steps[s].id),
            ),
            FlowProblem::EndlessLoop(cycle) => r.at(
                line_of(cycle[0]),
                format!(
                    "flow `{name}` of `{company}`: the steps {} → {} loop without the caller pressing a key, so the call could never end",
                    names(&cycle),
                    flow.steps[cycle[0]].id
                ),
            ),
            FlowProblem::RecordingWithoutNotice { record, path } => r.at(
                line_of(record),
                format!(
                    "flow `{name}` of `{company}`: step `{}` records the call but the path {} plays no recording notice first \
                     (add a `recording_notice` step, or set [companies.recording] without_notice_reason if the company records without one)",
                    flow.steps[record].id,
                    names(&path)
                ),
            ),
        }
    }
    Some(flow)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn convert_step(
    flow: &str,
    id: &str,
    span: Range<usize>,
    s: RawStep,
    r: &mut Reporter,
    lookup: &StepLookup,
    resolve: &Resolver,
    recording: &RecordingPolicy,
) -> Option<Action> {
    let here = format!("flow `{flow}` step `{id}`");
    let Some(kind) = &s.kind else {
        r.at(Some(span), format!("{here}: missing `type`"));
        return None;
    };
    let allowed: &[&str] = match kind.get_ref().as_str() {
        "greeting" => &["say", "play", "next"],
        "recording_notice" => &["text", "next"],
        "record" => &["next"],
        "menu" => &[
            "say",
            "play",
            "options",
            "default",
            "retries",
            "timeout_s",
            "invalid_say",
        ],
        "schedule" => &["hours", "holidays", "open", "closed"],
        "dial" => &[
            "strategy",
            "to",
            "ring_timeout_s",
            "whisper",
            "caller_id",
            "next",
        ],
        "voicemail" => &["say", "play", "max_length_s"],
        "hangup" => &["say", "play"],
        other => {
            r.at(
                Some(kind.span()),
                format!("{here}: unknown step type `{other}` (greeting, recording_notice, record, menu, schedule, dial, voicemail, hangup)"),
            );
            return None;
        }
    };
    let kind = kind.get_ref().as_str();
    let mut ok = true;
    for f in s.present_fields() {
        if !allowed.contains(&f) {
            r.at(
                Some(span.clone()),
                format!("{here}: `{f}` does not apply to a `{kind}` step"),
            );
            ok = false;
        }
    }
    let next = match &s.next {
        Some(n) => Some(lookup(r, "next", id, n)?),
        None => None,
    };
    let required = |field: &str, v: &Option<Spanned<String>>, r: &mut Reporter| -> Option<StepId> {
        match v {
            Some(v) => lookup(r, field, id, v),
            None => {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a `{kind}` step needs `{field}`"),
                );
                None
            }
        }
    };
    let message = |r: &mut Reporter, required: bool| -> Option<Option<Message>> {
        match (&s.say, &s.play) {
            (Some(t), None) => Some(Some(Message::Say(t.clone()))),
            (None, Some(u)) => Some(Some(Message::Play(u.clone()))),
            (None, None) if !required => Some(None),
            _ => {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a `{kind}` step needs exactly one of `say` or `play`"),
                );
                None
            }
        }
    };
    let action = match kind {
        "greeting" => Action::Greeting {
            message: message(r, true)??,
            next,
        },
        "recording_notice" => Action::RecordingNotice {
            text: s.text.clone().unwrap_or_else(|| recording.notice.clone()),
            next,
        },
        "record" => Action::Record { next },
        "menu" => {
            let prompt = message(r, true)??;
            let mut options = BTreeMap::new();
            for (digits, target) in s.options.iter().flatten() {
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'*') {
                    r.at(
                        Some(target.span()),
                        format!("{here}: option `{digits}` is not a key sequence (digits or *)"),
                    );
                    continue;
                }
                if let Some(t) = lookup(r, &format!("options.{digits}"), id, target) {
                    options.insert(digits.clone(), t);
                }
            }
            if options.is_empty() {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a menu needs at least one entry in `options`"),
                );
            }
            let Some(default) = &s.default else {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a menu needs a `default` step for callers who press nothing or an invalid key"),
                );
                return None;
            };
            Action::Menu(Menu {
                prompt,
                options,
                default: lookup(r, "default", id, default)?,
                retries: s.retries.unwrap_or(2).min(10),
                timeout_s: s.timeout_s.unwrap_or(5).clamp(1, 60),
                invalid_message: s
                    .invalid_say
                    .clone()
                    .unwrap_or_else(|| DEFAULT_INVALID_CHOICE.to_owned()),
            })
        }
        "schedule" => {
            let mut hours = Vec::new();
            for h in s.hours.iter().flatten() {
                match WeeklyHours::parse(h.get_ref()) {
                    Ok(h) => hours.push(h),
                    Err(e) => r.at(Some(h.span()), format!("{here}: {e}")),
                }
            }
            if s.hours.is_none() {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a schedule needs `hours`, like [\"mon-fri 08:00-18:00\"]"),
                );
            }
            let holidays = s
                .holidays
                .iter()
                .flatten()
                .filter_map(|d| date(r, d))
                .collect();
            let open = required("open", &s.open, r);
            let closed = required("closed", &s.closed, r);
            Action::Schedule(Schedule {
                hours,
                holidays,
                open: open?,
                closed: closed?,
            })
        }
        "dial" => {
            let strategy = match s
                .strategy
                .as_ref()
                .map(|s| (s.get_ref().as_str(), s.span()))
            {
                None | Some(("simulcall", _)) => Strategy::Simulcall,
                Some(("sequential", _)) => Strategy::Sequential,
                Some(("round_robin", _)) => Strategy::RoundRobin,
                Some((other, sp)) => {
                    r.at(
                        Some(sp),
                        format!(
                            "{here}: strategy `{other}` is not simulcall, sequential or round_robin"
                        ),
                    );
                    return None;
                }
            };
            let destinations: Vec<PhoneNumber> =
                s.to.iter()
                    .flatten()
                    .filter_map(|d| resolve(r, d))
                    .collect();
            if s.to.as_ref().is_none_or(|t| t.is_empty()) {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a dial step needs destinations in `to`"),
                );
            }
            if strategy == Strategy::Simulcall && destinations.len() > 10 {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a simulcall rings at most 10 destinations at once"),
                );
            }
            let caller_id = match s.caller_id.as_ref() {
                None => CallerId::Caller,
                Some(c) if c.get_ref() == "caller" => CallerId::Caller,
                Some(c) if c.get_ref() == "tracking_number" => CallerId::TrackingNumber,
                Some(c) => CallerId::Fixed(phone(r, c)?),
            };
            Action::Dial(DialStep {
                strategy,
                destinations,
                ring_timeout_s: s.ring_timeout_s.unwrap_or(20).clamp(5, 600),
                whisper: s.whisper.clone(),
                caller_id,
                next,
            })
        }
        "voicemail" => Action::Voicemail {
            prompt: message(r, false)?
                .unwrap_or_else(|| Message::Say(DEFAULT_VOICEMAIL_PROMPT.to_owned())),
            max_length_s: s.max_length_s.unwrap_or(120).clamp(5, 3600),
        },
        "hangup" => Action::Hangup {
            message: message(r, false)?,
        },
        _ => unreachable!("step types are matched above"),
    };
    ok.then_some(action)
}
