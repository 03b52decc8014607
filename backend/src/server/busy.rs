//! How many heavy requests (server-side analyses, co-failure tables) run at once: per user and in
//! all. Beyond either limit the answer is 429 with `Retry-After`, before any work starts.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use super::{Actor, AppError};

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeavyLimits {
    /// Heavy requests of one user at once.
    pub per_user: usize,
    /// Heavy requests at once in all.
    pub total: usize,
}

impl Default for HeavyLimits {
    fn default() -> Self {
        Self {
            per_user: 2,
            total: 4,
        }
    }
}

/// The heavy requests running now.
#[derive(Debug, Default)]
pub struct Heavy {
    limits: HeavyLimits,
    running: Mutex<HashMap<Option<String>, usize>>,
}

/// Held while a heavy request runs; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    heavy: Arc<Heavy>,
    user: Option<String>,
}

impl Heavy {
    /// No heavy request running, within `limits`.
    pub fn new(limits: HeavyLimits) -> Self {
        Self {
            limits,
            running: Mutex::default(),
        }
    }

    /// A slot for `actor`, or 429.
    ///
    /// # Errors
    /// When the user or the server runs as many heavy requests as allowed.
    pub fn slot(self: &Arc<Self>, actor: &Actor) -> Result<Slot, AppError> {
        let user = actor.name().map(str::to_owned);
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = running.values().sum();
        let mine = running.get(&user).copied().unwrap_or(0);
        if mine >= self.limits.per_user {
            return Err(AppError::busy(
                format!(
                    "you have {mine} analyses running on the server, the most allowed at once; \
                     wait for one to finish (the operator raises it with \
                     `fuselab serve --max-heavy-per-user N`)"
                ),
                5,
            ));
        }
        if total >= self.limits.total {
            return Err(AppError::busy(
                format!(
                    "the server runs {total} analyses, the most it runs at once; try again \
                     shortly (the operator raises it with `fuselab serve --max-heavy N`)"
                ),
                5,
            ));
        }
        *running.entry(user.clone()).or_default() += 1;
        Ok(Slot {
            heavy: self.clone(),
            user,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self
            .heavy
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.user);
            }
        }
    }
}
