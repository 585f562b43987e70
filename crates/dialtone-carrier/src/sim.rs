//! A deterministic virtual-time executor for replay.
//!
//! Tasks are futures on one thread; time is a number of seconds that jumps to the next timer
//! whenever no task can make progress. Ready tasks run in the order they were woken and timers
//! fire in (time, creation) order, so a run depends only on its inputs. Time has the resolution
//! of an `f64`, not a timer wheel's millisecond: queueing tests compare waits of milliseconds.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

type Task = Pin<Box<dyn Future<Output = ()>>>;

struct Timer {
    at: f64,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    /// Reversed: the heap pops the earliest timer, ties in creation order.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Task ids woken and not yet polled. Wakers must be `Send + Sync`, hence the mutex: in virtual
/// time it is only taken from the executor's thread; in real time, I/O (HTTP) wakes tasks from
/// the runtime's threads, and `woken` tells the waiting executor.
#[derive(Default)]
struct ReadyQueue {
    ids: Mutex<VecDeque<usize>>,
    woken: tokio::sync::Notify,
}

impl ReadyQueue {
    fn push(&self, id: usize) {
        if let Ok(mut q) = self.ids.lock() {
            q.push_back(id);
        }
        self.woken.notify_one();
    }
    fn pop(&self) -> Option<usize> {
        self.ids.lock().ok().and_then(|mut q| q.pop_front())
    }
}

/// One per task, for its whole life: a sleep compares wakers to know it is already registered,
/// and a task woken many times before it runs is queued once.
struct TaskWaker {
    id: usize,
    /// A background task (a queue's server) does not keep a real-time run going.
    background: bool,
    ready: Arc<ReadyQueue>,
    queued: std::sync::atomic::AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, AtomicOrdering::AcqRel) {
            self.ready.push(self.id);
        }
    }
}

struct Inner {
    now: Cell<f64>,
    /// `now` for readers outside the executor's tasks (a server's clock), as f64 bits.
    shared_now: Arc<AtomicU64>,
    seq: Cell<u64>,
    timers: RefCell<BinaryHeap<Timer>>,
    tasks: RefCell<Vec<Option<Task>>>,
    wakers: RefCell<Vec<Arc<TaskWaker>>>,
    /// Spawned while another task was being polled; moved into `tasks` by the run loop.
    spawned: RefCell<Vec<(Task, bool)>>,
    /// Foreground tasks not yet finished.
    live: Cell<usize>,
    ready: Arc<ReadyQueue>,
    timers_fired: Cell<u64>,
}

/// A handle on the executor: cheap to clone, used by tasks to read the time, sleep and spawn.
#[derive(Clone)]
pub struct Sim {
    inner: Rc<Inner>,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    pub fn new() -> Self {
        Self {
            inner: Rc::new(Inner {
                now: Cell::new(0.0),
                shared_now: Arc::new(AtomicU64::new(0.0_f64.to_bits())),
                seq: Cell::new(0),
                timers: RefCell::new(BinaryHeap::new()),
                tasks: RefCell::new(Vec::new()),
                wakers: RefCell::new(Vec::new()),
                spawned: RefCell::new(Vec::new()),
                live: Cell::new(0),
                ready: Arc::new(ReadyQueue::default()),
                timers_fired: Cell::new(0),
            }),
        }
    }

    /// Seconds since the start of the run.
    pub fn now(&self) -> f64 {
        self.inner.now.get()
    }

    /// The virtual time for code that cannot hold the executor (it is not `Send`).
    pub fn time(&self) -> SimTime {
        SimTime(self.inner.shared_now.clone())
    }

    pub fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.inner
            .spawned
            .borrow_mut()
            .push((Box::pin(task), false));
    }

    /// A task that serves others and may never finish: a real-time run does not wait for it.
    pub fn spawn_background(&self, task: impl Future<Output = ()> + 'static) {
        self.inner.spawned.borrow_mut().push((Box::pin(task), true));
    }

    pub fn sleep(&self, seconds: f64) -> Sleep {
        self.sleep_until(self.now() + seconds.max(0.0))
    }

    pub fn sleep_until(&self, at: f64) -> Sleep {
        Sleep {
            sim: self.clone(),
            at,
            registered: None,
        }
    }

    /// Runs until no task can make progress and no timer is left. `progress` is told the time
    /// every `every_timers` timers, for a progress bar.
    pub fn run(&self, every_timers: u64, progress: &mut dyn FnMut(f64)) {
        loop {
            self.run_ready();
            let next = self.inner.timers.borrow_mut().pop();
            let Some(timer) = next else { return };
            if timer.at > self.now() {
                self.set_now(timer.at);
            }
            let fired = self.inner.timers_fired.get() + 1;
            self.inner.timers_fired.set(fired);
            if every_timers > 0 && fired.is_multiple_of(every_timers) {
                progress(self.now());
            }
            timer.waker.wake();
        }
    }

    /// Runs in real time: the clock is the wall clock since this call, timers fire when it
    /// reaches them, and tasks may wait on real I/O (the runtime's reactor wakes them). Returns
    /// when every task but background ones has finished. `tick` is told the time whenever the executor goes idle.
    pub async fn run_realtime(&self, tick: &mut dyn FnMut(f64)) {
        let origin = tokio::time::Instant::now();
        loop {
            let wall = origin.elapsed().as_secs_f64();
            if wall > self.now() {
                self.set_now(wall);
            }
            self.run_ready();
            let mut fired = false;
            loop {
                let due = self
                    .inner
                    .timers
                    .borrow()
                    .peek()
                    .is_some_and(|t| t.at <= self.now());
                if !due {
                    break;
                }
                if let Some(timer) = self.inner.timers.borrow_mut().pop() {
                    timer.waker.wake();
                    fired = true;
                }
            }
            if fired {
                continue;
            }
            tick(self.now());
            if self.inner.live.get() == 0 {
                return;
            }
            let next = self.inner.timers.borrow().peek().map(|t| t.at);
            let woken = self.inner.ready.woken.notified();
            match next {
                Some(at) => {
                    let deadline = origin + std::time::Duration::from_secs_f64(at.max(0.0));
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => woken.await,
            }
        }
    }

    /// Polls every task that can make progress, and those they spawn, until none can.
    fn run_ready(&self) {
        self.adopt_spawned();
        while let Some(id) = self.inner.ready.pop() {
            self.poll_task(id);
            self.adopt_spawned();
        }
    }

    fn set_now(&self, t: f64) {
        self.inner.now.set(t);
        self.inner
            .shared_now
            .store(t.to_bits(), AtomicOrdering::Relaxed);
    }

    fn adopt_spawned(&self) {
        let spawned: Vec<(Task, bool)> = std::mem::take(&mut *self.inner.spawned.borrow_mut());
        for (task, background) in spawned {
            let mut tasks = self.inner.tasks.borrow_mut();
            tasks.push(Some(task));
            if !background {
                self.inner.live.set(self.inner.live.get() + 1);
            }
            let waker = Arc::new(TaskWaker {
                id: tasks.len() - 1,
                background,
                ready: self.inner.ready.clone(),
                queued: std::sync::atomic::AtomicBool::new(false),
            });
            waker.wake_by_ref();
            self.inner.wakers.borrow_mut().push(waker);
        }
    }

    fn poll_task(&self, id: usize) {
        // Taken out while polled, so the task may spawn and touch the executor.
        let Some(mut task) = self
            .inner
            .tasks
            .borrow_mut()
            .get_mut(id)
            .and_then(Option::take)
        else {
            return;
        };
        let task_waker = self.inner.wakers.borrow()[id].clone();
        task_waker.queued.store(false, AtomicOrdering::Release);
        let waker = Waker::from(task_waker);
        let mut cx = Context::from_waker(&waker);
        if task.as_mut().poll(&mut cx).is_pending() {
            self.inner.tasks.borrow_mut()[id] = Some(task);
        } else if !self.inner.wakers.borrow()[id].background {
            self.inner.live.set(self.inner.live.get() - 1);
        }
    }

    fn add_timer(&self, at: f64, waker: Waker) {
        let seq = self.inner.seq.get();
        self.inner.seq.set(seq + 1);
        self.inner
            .timers
            .borrow_mut()
            .push(Timer { at, seq, waker });
    }
}

/// A thread-safe view of a [`Sim`]'s clock.
#[derive(Clone)]
pub struct SimTime(Arc<AtomicU64>);

impl SimTime {
    pub fn seconds(&self) -> f64 {
        f64::from_bits(self.0.load(AtomicOrdering::Relaxed))
    }
}

/// Completes when the virtual clock reaches its time.
pub struct Sleep {
    sim: Sim,
    at: f64,
    registered: Option<Waker>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.sim.now() >= self.at {
            return Poll::Ready(());
        }
        let fresh = match &self.registered {
            Some(w) => !w.will_wake(cx.waker()),
            None => true,
        };
        if fresh {
            self.sim.add_timer(self.at, cx.waker().clone());
            self.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_see_time_jump_to_their_timers_in_order() {
        let sim = Sim::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        for (name, delay) in [("b", 2.5), ("a", 0.001), ("c", 2.5)] {
            let (s, log) = (sim.clone(), log.clone());
            sim.spawn(async move {
                s.sleep(delay).await;
                log.borrow_mut().push((name, s.now()));
                let inner = s.clone();
                s.spawn(async move {
                    inner.sleep(1.0).await;
                });
            });
        }
        let mut ticks = Vec::new();
        sim.run(1, &mut |t| ticks.push(t));
        assert_eq!(*log.borrow(), vec![("a", 0.001), ("b", 2.5), ("c", 2.5)]);
        assert_eq!(sim.now(), 3.5, "the tasks spawned last ran too");
        assert_eq!(ticks.len(), 6);
    }

    /// In real time a task may wait on something outside the executor (here a thread standing
    /// in for a socket), and timers wait for the wall clock.
    #[tokio::test]
    async fn real_time_waits_for_the_wall_clock_and_for_outside_wakeups() {
        let sim = Sim::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<&str>();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            let _ = tx.send("from another thread");
        });
        let (s, l) = (sim.clone(), log.clone());
        sim.spawn(async move {
            s.sleep(0.06).await;
            l.borrow_mut().push(("timer", s.now()));
        });
        let (s, l) = (sim.clone(), log.clone());
        sim.spawn(async move {
            let what = rx.await.unwrap_or("dropped");
            l.borrow_mut().push((what, s.now()));
        });
        let started = std::time::Instant::now();
        sim.run_realtime(&mut |_| {}).await;
        let wall = started.elapsed().as_secs_f64();
        let log = log.borrow();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[0].0, "from another thread");
        assert!(log[0].1 >= 0.03, "woken no earlier than sent: {log:?}");
        assert_eq!(log[1].0, "timer");
        assert!(log[1].1 >= 0.06 && wall >= 0.06, "{log:?}, wall {wall}");
    }
}
