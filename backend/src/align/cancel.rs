//! Stopping a run from outside: the server's job sets a flag, and the training loop checks it
//! after every step. The flag is scoped to the thread that runs the job, so the long call chain
//! from `attack::run` to the trainer does not carry it in every signature, and a run started
//! from the command line (no flag) is never cancelled.

use std::{
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use thiserror::Error;

thread_local! {
    static FLAG: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// The run was cancelled.
#[derive(Debug, Error)]
#[error("the run was cancelled")]
pub struct Cancelled;

/// Runs `work` on this thread with `flag` as its cancellation flag.
pub fn scoped<T>(flag: Arc<AtomicBool>, work: impl FnOnce() -> T) -> T {
    struct Reset(Option<Arc<AtomicBool>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            FLAG.with(|slot| *slot.borrow_mut() = previous);
        }
    }
    let _reset = Reset(FLAG.with(|slot| slot.borrow_mut().replace(flag)));
    work()
}

/// `Err(Cancelled)` once the flag of this thread's run is set.
///
/// # Errors
/// When the run was cancelled.
pub fn check() -> Result<(), Cancelled> {
    let cancelled = FLAG.with(|slot| {
        slot.borrow()
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    });
    if cancelled { Err(Cancelled) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_applies_inside_its_scope_only() {
        let flag = Arc::new(AtomicBool::new(false));
        assert!(check().is_ok());
        scoped(flag.clone(), || {
            assert!(check().is_ok());
            flag.store(true, Ordering::Relaxed);
            assert!(check().is_err());
            // Another thread's run is not this one.
            std::thread::scope(|s| s.spawn(|| assert!(check().is_ok())).join().unwrap());
        });
        assert!(check().is_ok());
    }
}
