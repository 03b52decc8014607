//! Watching a run from outside: a job stops it, and hears of every metrics line and checkpoint,
//! through an [`Observer`] scoped to the thread that runs it. The long call chain from
//! `attack::run` to the trainer does not carry it in every signature, and a run started from
//! the command line (no observer) is never stopped and reports to no one.

use std::{cell::RefCell, rc::Rc};

use thiserror::Error;

/// What a run reports to, and asks whether to stop.
pub trait Observer {
    /// Whether the run should stop after its current step.
    fn stop(&self) -> bool;
    /// A training step's metrics line (one line of a stage's `metrics.jsonl`), as written.
    fn metrics(&self, line: &str);
    /// A stage wrote a checkpoint: what is on disk now is where a new attempt would resume.
    fn checkpoint(&self);
}

thread_local! {
    static OBSERVER: RefCell<Option<Rc<dyn Observer>>> = const { RefCell::new(None) };
}

/// The run was stopped.
#[derive(Debug, Error)]
#[error("the run was cancelled")]
pub struct Cancelled;

/// Runs `work` on this thread with `observer` watching it.
pub fn scoped<T>(observer: Rc<dyn Observer>, work: impl FnOnce() -> T) -> T {
    struct Reset(Option<Rc<dyn Observer>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            OBSERVER.with(|slot| *slot.borrow_mut() = previous);
        }
    }
    let _reset = Reset(OBSERVER.with(|slot| slot.borrow_mut().replace(observer)));
    work()
}

fn current() -> Option<Rc<dyn Observer>> {
    OBSERVER.with(|slot| slot.borrow().clone())
}

/// `Err(Cancelled)` once this thread's observer asks the run to stop.
///
/// # Errors
/// When the run was cancelled.
pub fn check() -> Result<(), Cancelled> {
    if current().is_some_and(|observer| observer.stop()) {
        Err(Cancelled)
    } else {
        Ok(())
    }
}

/// Tells this thread's observer of a metrics line.
pub fn metrics(line: &str) {
    if let Some(observer) = current() {
        observer.metrics(line);
    }
}

/// Tells this thread's observer that a checkpoint was written.
pub fn checkpoint() {
    if let Some(observer) = current() {
        observer.checkpoint();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[derive(Default)]
    struct Counting {
        stop: Cell<bool>,
        lines: RefCell<Vec<String>>,
        checkpoints: Cell<usize>,
    }

    impl Observer for Counting {
        fn stop(&self) -> bool {
            self.stop.get()
        }
        fn metrics(&self, line: &str) {
            self.lines.borrow_mut().push(line.to_owned());
        }
        fn checkpoint(&self) {
            self.checkpoints.set(self.checkpoints.get() + 1);
        }
    }

    #[test]
    fn the_observer_applies_inside_its_scope_only() {
        let observer = Rc::new(Counting::default());
        assert!(check().is_ok());
        scoped(observer.clone(), || {
            assert!(check().is_ok());
            metrics("{\"step\":1}");
            checkpoint();
            observer.stop.set(true);
            assert!(check().is_err());
            // Another thread's run is not this one.
            std::thread::scope(|s| s.spawn(|| assert!(check().is_ok())).join().unwrap());
        });
        assert!(check().is_ok());
        metrics("outside");
        assert_eq!(*observer.lines.borrow(), ["{\"step\":1}"]);
        assert_eq!(observer.checkpoints.get(), 1);
    }
}
