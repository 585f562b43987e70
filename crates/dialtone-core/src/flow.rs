//! Call flows: the steps a call goes through, and the checks that make a flow safe to run.

use std::collections::{BTreeMap, BTreeSet};

use crate::phone::PhoneNumber;
use crate::schedule::WeeklyHours;
use chrono::NaiveDate;

/// Index of a step in its flow.
pub type StepId = usize;

#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub name: String,
    pub start: StepId,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The name the configuration gives the step; it also appears in callback URLs.
    pub id: String,
    pub action: Action,
}

/// What a caller hears: text spoken by the carrier, or an audio file it plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Say(String),
    Play(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Greeting {
        message: Message,
        next: Option<StepId>,
    },
    RecordingNotice {
        text: String,
        next: Option<StepId>,
    },
    /// Records the rest of the call from here on (every later dial is recorded).
    Record {
        next: Option<StepId>,
    },
    Menu(Menu),
    Schedule(Schedule),
    Dial(DialStep),
    Voicemail {
        prompt: Message,
        max_length_s: u32,
    },
    Hangup {
        message: Option<Message>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    pub prompt: Message,
    /// Digits pressed → step.
    pub options: BTreeMap<String, StepId>,
    /// Where callers go who press nothing or keep pressing invalid keys.
    pub default: StepId,
    /// How many times the menu is repeated before the default is taken.
    pub retries: u32,
    pub timeout_s: u32,
    pub invalid_message: String,
}

impl Menu {
    /// Digits the carrier should collect: the longest option.
    pub fn num_digits(&self) -> u32 {
        self.options
            .keys()
            .map(|k| k.len() as u32)
            .max()
            .unwrap_or(1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub hours: Vec<WeeklyHours>,
    /// Closed dates for this step, on top of the company's holidays.
    pub holidays: BTreeSet<NaiveDate>,
    pub open: StepId,
    pub closed: StepId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Ring everyone at once; the first to answer gets the call.
    Simulcall,
    /// Ring one after the other, in the configured order.
    Sequential,
    /// Like sequential, but each call starts with the next destination in turn.
    RoundRobin,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Simulcall => "simulcall",
            Strategy::Sequential => "sequential",
            Strategy::RoundRobin => "round_robin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerId {
    /// The caller's own number (the carrier's default).
    Caller,
    /// The tracking number that was called, so agents know the call came through tracking.
    TrackingNumber,
    Fixed(PhoneNumber),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DialStep {
    pub strategy: Strategy,
    pub destinations: Vec<PhoneNumber>,
    pub ring_timeout_s: u32,
    /// Spoken to the agent who answers, before the caller is connected.
    pub whisper: Option<String>,
    pub caller_id: CallerId,
    /// Where the call goes when nobody answers; `None` ends the call.
    pub next: Option<StepId>,
}

/// An edge of the step graph. `Automatic` edges are taken without the caller doing anything, so a
/// cycle of them is a loop that cannot end; `Choice` edges need a key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Automatic(StepId),
    Choice(StepId),
}

impl Action {
    pub fn edges(&self) -> Vec<Edge> {
        use Edge::*;
        match self {
            Action::Greeting { next, .. }
            | Action::RecordingNotice { next, .. }
            | Action::Record { next } => next.iter().map(|n| Automatic(*n)).collect(),
            Action::Menu(m) => {
                let mut e: Vec<Edge> = m.options.values().map(|s| Choice(*s)).collect();
                e.push(Automatic(m.default));
                e
            }
            Action::Schedule(s) => vec![Automatic(s.open), Automatic(s.closed)],
            Action::Dial(d) => d.next.iter().map(|n| Automatic(*n)).collect(),
            Action::Voicemail { .. } | Action::Hangup { .. } => vec![],
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Action::Greeting { .. } => "greeting",
            Action::RecordingNotice { .. } => "recording_notice",
            Action::Record { .. } => "record",
            Action::Menu(_) => "menu",
            Action::Schedule(_) => "schedule",
            Action::Dial(_) => "dial",
            Action::Voicemail { .. } => "voicemail",
            Action::Hangup { .. } => "hangup",
        }
    }
}

/// A problem in a flow's shape, naming the steps involved by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowProblem {
    Unreachable(StepId),
    /// Steps of a cycle taken without any key press: the call would never end.
    EndlessLoop(Vec<StepId>),
    /// A record step that some path reaches without a recording notice first.
    RecordingWithoutNotice {
        record: StepId,
        path: Vec<StepId>,
    },
}

impl Flow {
    pub fn step_index(&self, id: &str) -> Option<StepId> {
        self.steps.iter().position(|s| s.id == id)
    }

    /// Checks reachability, endless loops and recording consent. `allow_recording_without_notice`
    /// is the company's explicit, documented opt-out.
    pub fn problems(&self, allow_recording_without_notice: bool) -> Vec<FlowProblem> {
        let mut problems = Vec::new();
        let reachable = self.reachable_from(self.start, |_| true);
        for id in 0..self.steps.len() {
            if !reachable.contains(&id) {
                problems.push(FlowProblem::Unreachable(id));
            }
        }
        if let Some(cycle) = self.automatic_cycle() {
            problems.push(FlowProblem::EndlessLoop(cycle));
        }
        if !allow_recording_without_notice {
            for (id, step) in self.steps.iter().enumerate() {
                if matches!(step.action, Action::Record { .. })
                    && reachable.contains(&id)
                    && let Some(path) = self.path_avoiding_notices(id)
                {
                    problems.push(FlowProblem::RecordingWithoutNotice { record: id, path });
                }
            }
        }
        problems
    }

    fn reachable_from(&self, from: StepId, through: impl Fn(StepId) -> bool) -> BTreeSet<StepId> {
        let mut seen = BTreeSet::from([from]);
        let mut stack = vec![from];
        while let Some(s) = stack.pop() {
            if !through(s) {
                continue;
            }
            for e in self.steps[s].action.edges() {
                let (Edge::Automatic(n) | Edge::Choice(n)) = e;
                if seen.insert(n) {
                    stack.push(n);
                }
            }
        }
        seen
    }

    /// A cycle of automatic edges, if there is one (depth-first search with colours).
    fn automatic_cycle(&self) -> Option<Vec<StepId>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Colour {
            White,
            Grey,
            Black,
        }
        let n = self.steps.len();
        let mut colour = vec![Colour::White; n];
        for root in 0..n {
            if colour[root] != Colour::White {
                continue;
            }
            // Iterative DFS keeping the current path so the cycle can be reported.
            let mut path: Vec<(StepId, Vec<StepId>)> =
                vec![(root, self.automatic_successors(root))];
            colour[root] = Colour::Grey;
            while let Some((node, succ)) = path.last_mut() {
                let node = *node;
                match succ.pop() {
                    Some(next) if colour[next] == Colour::Grey => {
                        let start = path.iter().position(|(s, _)| *s == next).unwrap_or(0);
                        return Some(path[start..].iter().map(|(s, _)| *s).collect());
                    }
                    Some(next) if colour[next] == Colour::White => {
                        colour[next] = Colour::Grey;
                        path.push((next, self.automatic_successors(next)));
                    }
                    Some(_) => {}
                    None => {
                        colour[node] = Colour::Black;
                        path.pop();
                    }
                }
            }
        }
        None
    }

    fn automatic_successors(&self, id: StepId) -> Vec<StepId> {
        self.steps[id]
            .action
            .edges()
            .into_iter()
            .filter_map(|e| match e {
                Edge::Automatic(n) => Some(n),
                Edge::Choice(_) => None,
            })
            .collect()
    }

    /// A path from the start to `target` that passes no recording notice (breadth-first, so the
    /// shortest such path is reported).
    fn path_avoiding_notices(&self, target: StepId) -> Option<Vec<StepId>> {
        let is_notice = |s: StepId| matches!(self.steps[s].action, Action::RecordingNotice { .. });
        if is_notice(self.start) {
            return None;
        }
        let mut parent: BTreeMap<StepId, StepId> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([self.start]);
        let mut seen = BTreeSet::from([self.start]);
        while let Some(s) = queue.pop_front() {
            if s == target {
                let mut path = vec![s];
                let mut cur = s;
                while let Some(p) = parent.get(&cur) {
                    path.push(*p);
                    cur = *p;
                }
                path.reverse();
                return Some(path);
            }
            for e in self.steps[s].action.edges() {
                let (Edge::Automatic(n) | Edge::Choice(n)) = e;
                if !is_notice(n) && seen.insert(n) {
                    parent.insert(n, s);
                    queue.push_back(n);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, action: Action) -> Step {
        Step {
            id: id.into(),
            action,
        }
    }

    fn greeting(next: Option<StepId>) -> Action {
        Action::Greeting {
            message: Message::Say("hi".into()),
            next,
        }
    }

    fn hangup() -> Action {
        Action::Hangup { message: None }
    }

    fn menu(options: &[(&str, StepId)], default: StepId) -> Action {
        Action::Menu(Menu {
            prompt: Message::Say("press".into()),
            options: options.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            default,
            retries: 1,
            timeout_s: 5,
            invalid_message: "no".into(),
        })
    }

    #[test]
    fn a_straight_flow_has_no_problems() {
        let flow = Flow {
            name: "f".into(),
            start: 0,
            steps: vec![step("a", greeting(Some(1))), step("b", hangup())],
        };
        assert!(flow.problems(false).is_empty());
    }

    #[test]
    fn finds_unreachable_steps() {
        let flow = Flow {
            name: "f".into(),
            start: 0,
            steps: vec![step("a", hangup()), step("b", greeting(Some(0)))],
        };
        assert_eq!(flow.problems(false), vec![FlowProblem::Unreachable(1)]);
    }

    #[test]
    fn automatic_cycles_are_endless_but_choices_may_loop() {
        let endless = Flow {
            name: "f".into(),
            start: 0,
            steps: vec![step("a", greeting(Some(1))), step("b", greeting(Some(0)))],
        };
        assert_eq!(
            endless.problems(false),
            vec![FlowProblem::EndlessLoop(vec![0, 1])]
        );

        // "Press 9 to hear this again" is a loop the caller chooses and can leave.
        let repeat = Flow {
            name: "f".into(),
            start: 0,
            steps: vec![
                step("menu", menu(&[("1", 1), ("9", 0)], 1)),
                step("bye", hangup()),
            ],
        };
        assert!(repeat.problems(false).is_empty());

        // A menu whose default leads back to itself loops forever for a silent caller.
        let silent = Flow {
            name: "f".into(),
            start: 0,
            steps: vec![
                step("greet", greeting(Some(1))),
                step("menu", menu(&[("1", 2)], 0)),
                step("bye", hangup()),
            ],
        };
        assert_eq!(
            silent.problems(false),
            vec![FlowProblem::EndlessLoop(vec![0, 1])]
        );
    }

    #[test]
    fn recording_needs_a_notice_on_every_path() {
        let notice = Action::RecordingNotice {
            text: "recorded".into(),
            next: Some(2),
        };
        // menu: 1 → notice → record; 2 → record directly.
        let flow = Flow {
            name: "f".into(),
            start: 0,
            steps: vec![
                step("menu", menu(&[("1", 1), ("2", 2)], 3)),
                step("notice", notice),
                step("record", Action::Record { next: Some(3) }),
                step("bye", hangup()),
            ],
        };
        assert_eq!(
            flow.problems(false),
            vec![FlowProblem::RecordingWithoutNotice {
                record: 2,
                path: vec![0, 2]
            }]
        );
        assert!(
            flow.problems(true).is_empty(),
            "the company's opt-out allows it"
        );
    }
}
