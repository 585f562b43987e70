//! What a request answered instead when its events were not durable in time.
//!
//! A webhook decides an answer (a flow's TwiML), appends the events saying so, and waits for them
//! to be durable. If they are not durable in time it answers backup routing instead, and the log
//! must then say backup, not the flow: a call log claiming a recording notice the caller never
//! heard is worse than no log. The events cannot be taken back from the writer's queue, so the
//! batch carries a [`Fallback`]: the handler, giving up, hands it the events of what it really
//! answered, and the writer writes those instead, in the same place in the log — unless it has
//! already begun writing the batch, which the handler is told.

use std::sync::Mutex;

use dialtone_core::event::Event;

/// Shared by a batch (in the writer's queue or spool) and the request that appended it.
#[derive(Debug, Default)]
pub struct Fallback {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
enum State {
    /// Queued or spooled, not being written.
    #[default]
    Pending,
    /// In a transaction now.
    Writing,
    /// Committed as appended.
    Written,
    /// The request answered otherwise: these events are written instead of the batch's.
    Replaced(Vec<Event>),
    /// The store refused the batch and will not try it again.
    Dropped,
}

/// What became of [`Fallback::replace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// The replacement will be written where the batch was.
    Replaced,
    /// The batch was already committed as appended: the original answer is durable after all.
    AlreadyWritten,
    /// The batch is in a transaction: it may commit as appended. Append the correction after it.
    Writing,
    /// The batch was refused and will not be written: append the replacement on its own.
    Dropped,
}

impl Fallback {
    /// The request answered something else than its batch says: write `events` instead.
    pub fn replace(&self, events: Vec<Event>) -> Replace {
        let mut state = self.lock();
        match &*state {
            State::Pending | State::Replaced(_) => {
                *state = State::Replaced(events);
                Replace::Replaced
            }
            State::Writing => Replace::Writing,
            State::Written => Replace::AlreadyWritten,
            State::Dropped => Replace::Dropped,
        }
    }

    /// The writer takes the batch into a transaction: the events it should write instead of the
    /// batch's, if the request replaced them.
    pub(crate) fn begin(&self) -> Option<Vec<Event>> {
        let mut state = self.lock();
        match &*state {
            State::Replaced(events) => Some(events.clone()),
            _ => {
                *state = State::Writing;
                None
            }
        }
    }

    /// The batch leaves memory for the spill file: the events to spill instead of the batch's,
    /// if the request replaced them. From now on the request can only append a correction.
    pub(crate) fn spill(&self) -> Option<Vec<Event>> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, State::Writing) {
            State::Replaced(events) => Some(events),
            _ => None,
        }
    }

    /// The transaction ended: committed, rolled back (to be tried again), or refused for good.
    pub(crate) fn end(&self, how: End) {
        let mut state = self.lock();
        if matches!(*state, State::Writing) {
            *state = match how {
                End::Committed => State::Written,
                End::RolledBack => State::Pending,
                End::Dropped => State::Dropped,
            };
        } else if how == End::Dropped {
            *state = State::Dropped;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Committed,
    RolledBack,
    Dropped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_wins_only_before_the_writer_begins() {
        let f = Fallback::default();
        assert_eq!(f.replace(vec![]), Replace::Replaced);
        assert_eq!(f.begin(), Some(vec![]), "the writer writes the replacement");

        let f = Fallback::default();
        assert_eq!(f.begin(), None);
        assert_eq!(f.replace(vec![]), Replace::Writing);
        f.end(End::RolledBack);
        assert_eq!(
            f.replace(vec![]),
            Replace::Replaced,
            "spooled again: replaceable"
        );

        let f = Fallback::default();
        f.begin();
        f.end(End::Committed);
        assert_eq!(f.replace(vec![]), Replace::AlreadyWritten);

        let f = Fallback::default();
        f.begin();
        f.end(End::Dropped);
        assert_eq!(f.replace(vec![]), Replace::Dropped);
    }
}
