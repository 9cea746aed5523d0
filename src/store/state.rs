//! Per-account state that logins change, whatever the backend: the last accepted step,
//! the HOTP counter, failure counts and the lock, and the rules by which a verdict
//! changes them (the same rules for every backend).

#![forbid(unsafe_code)]

use super::{Accepted, Kind, Lockout, Used};

// The file backend's state file, by the names it had before the backends were split.
pub use super::file::state::{decode_file, FILE_LEN};

/// What logins remember about an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// TOTP: the last time step whose code was accepted.
    pub last_step: Option<u64>,
    /// HOTP: the next counter not yet used.
    pub next_counter: u64,
    /// Wrong codes since `failure_window_start`.
    pub failures: u32,
    pub failure_window_start: u64,
    /// Unix time until which the account's second factor is locked (0: not locked).
    pub locked_until: u64,
    /// Unix time of the last accepted code (0: never).
    pub last_success: u64,
    /// The audit session (/proc/self/sessionid) of the last accepted code, if it had one.
    pub verified_session: Option<u32>,
    /// When that session passed its code.
    pub verified_at: u64,
    /// Wrong codes typed with the password (`combined`), checked before the password is:
    /// counted apart, so that someone who does not know the password can lock only that
    /// way in, never the account's other logins.
    pub combined: FailureCount,
    /// TOTP: how many steps the last accepted code lay from the step of the module's clock
    /// (+3: the device's clock is about three steps ahead); None before the first
    /// accepted code, and in files written before this was recorded.
    pub clock_offset: Option<i32>,
}

/// Wrong codes counted in a fixed window: `failures` since `window_start`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureCount {
    pub failures: u32,
    pub window_start: u64,
}

impl FailureCount {
    /// The count after one more wrong code at `now`.
    pub fn after_failure(self, lockout_seconds: u64, now: u64) -> FailureCount {
        if self.failures == 0 || now.saturating_sub(self.window_start) >= lockout_seconds {
            FailureCount {
                failures: 1,
                window_start: now,
            }
        } else {
            FailureCount {
                failures: self.failures.saturating_add(1),
                ..self
            }
        }
    }

    /// Until when `max_failures` within `lockout_seconds` lock, if they do at `now`.
    pub fn locked_until(self, max_failures: u32, lockout_seconds: u64, now: u64) -> Option<u64> {
        let end = self.window_start.saturating_add(lockout_seconds);
        (self.failures >= max_failures && now < end).then_some(end)
    }
}

impl State {
    /// The state after a wrong (or missing) code at `now`: failures are counted within
    /// a window of `lockout_seconds`; the `max_failures`-th locks the second factor for
    /// `lockout_seconds`.
    pub fn after_failure(&self, max_failures: u32, lockout_seconds: u64, now: u64) -> State {
        let mut next = *self;
        let window_over = now.saturating_sub(self.failure_window_start) >= lockout_seconds;
        if self.failures == 0 || window_over {
            next.failures = 1;
            next.failure_window_start = now;
        } else {
            next.failures = self.failures.saturating_add(1);
        }
        if next.failures >= max_failures {
            next.locked_until = now.saturating_add(lockout_seconds);
            next.failures = 0;
            next.failure_window_start = 0;
        }
        next
    }

    /// Whether the second factor is locked at `now`.
    pub fn locked_at(&self, now: u64) -> bool {
        self.locked_until > now
    }

    /// Until when a login counted by `lockout` is refused at `now` before any code is
    /// checked: the account's lock, and for `combined` its combined count too.
    pub fn refused_until(&self, lockout: &Lockout, now: u64) -> Option<u64> {
        if self.locked_at(now) {
            return Some(self.locked_until);
        }
        if lockout.combined {
            return self
                .combined
                .locked_until(lockout.max_failures, lockout.lockout_seconds, now);
        }
        None
    }

    /// The state after a valid code at `now`: failures and locks cleared, the step or
    /// counter used up, the session remembered. (A recovery code is burned apart.)
    pub fn after_success(&self, accepted: &Accepted, now: u64) -> State {
        let mut next = State {
            failures: 0,
            failure_window_start: 0,
            locked_until: 0,
            last_success: now,
            combined: FailureCount::default(),
            verified_session: accepted.session,
            verified_at: now,
            ..*self
        };
        match accepted.used {
            Used::Step { step, clock_offset } => {
                next.last_step = Some(step);
                next.clock_offset = Some(clock_offset);
            }
            Used::Counter(counter) => next.next_counter = counter.saturating_add(1),
            Used::RecoveryHash(_) => {}
        }
        next
    }

    /// The state after an admin's unlock at time step `current`: failure counts and locks
    /// cleared, and a last used TOTP step that lies beyond `current` (left by a clock
    /// that ran ahead, under which every code of today's steps reads as used) pulled back
    /// to `current`, so that codes up to now stay used and the next one works. The HOTP
    /// counter is kept.
    pub fn unlocked(&self, kind: Kind, current: u64) -> State {
        let ahead = kind == Kind::Totp && self.last_step.is_some_and(|last| last > current);
        State {
            failures: 0,
            failure_window_start: 0,
            locked_until: 0,
            combined: FailureCount::default(),
            last_step: if ahead { Some(current) } else { self.last_step },
            clock_offset: if ahead { None } else { self.clock_offset },
            ..*self
        }
    }

    /// How many steps the last used TOTP step lies beyond time step `current`, if it does.
    pub fn steps_ahead(&self, current: u64) -> Option<u64> {
        self.last_step
            .filter(|last| *last > current)
            .map(|last| last - current)
    }

    /// The state after a wrong code at `now`: with `combined`, counted apart (it locks
    /// only that way in); otherwise by `after_failure`.
    pub fn after_wrong(&self, lockout: &Lockout, now: u64) -> State {
        if lockout.combined {
            State {
                combined: self.combined.after_failure(lockout.lockout_seconds, now),
                ..*self
            }
        } else {
            self.after_failure(lockout.max_failures, lockout.lockout_seconds, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlock_pulls_only_a_future_totp_step_back_to_now() {
        let locked = State {
            failures: 2,
            locked_until: 5000,
            last_step: Some(1500),
            clock_offset: Some(0),
            next_counter: 7,
            ..State::default()
        };
        let unlocked = locked.unlocked(Kind::Totp, 1000);
        assert_eq!(locked.steps_ahead(1000), Some(500));
        assert_eq!(
            (unlocked.last_step, unlocked.clock_offset),
            (Some(1000), None)
        );
        assert_eq!((unlocked.failures, unlocked.locked_until), (0, 0));
        for last in [None, Some(999), Some(1000)] {
            let kept = State {
                last_step: last,
                clock_offset: Some(1),
                ..State::default()
            };
            assert_eq!(kept.steps_ahead(1000), None);
            assert_eq!(kept.unlocked(Kind::Totp, 1000), kept);
        }
        let hotp = locked.unlocked(Kind::Hotp, 1000);
        assert_eq!((hotp.last_step, hotp.next_counter), (Some(1500), 7));
    }

    #[test]
    fn combined_failures_lock_within_a_fixed_window() {
        let mut count = FailureCount::default();
        for n in 0..4u64 {
            count = count.after_failure(300, 1000 + n);
            assert_eq!(count.locked_until(5, 300, 1000 + n), None);
        }
        count = count.after_failure(300, 1010);
        assert_eq!(count.failures, 5);
        assert_eq!(count.locked_until(5, 300, 1010), Some(1300));
        assert_eq!(count.locked_until(5, 300, 1299), Some(1300));
        assert_eq!(count.locked_until(5, 300, 1300), None);
        // After the window a wrong code starts a new count.
        let next = count.after_failure(300, 1300);
        assert_eq!((next.failures, next.window_start), (1, 1300));
    }

    #[test]
    fn failures_lock_after_max_within_the_window() {
        let mut state = State::default();
        for n in 1..5 {
            state = state.after_failure(5, 300, 1000 + n);
            assert_eq!(state.failures, n as u32);
            assert!(!state.locked_at(1000 + n));
        }
        state = state.after_failure(5, 300, 1010);
        assert_eq!(state.locked_until, 1310);
        assert!(state.locked_at(1309));
        assert!(!state.locked_at(1310));
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let mut state = State::default();
        for n in 0..4 {
            state = state.after_failure(5, 300, 1000 + n);
        }
        // 300 s after the first failure, the count starts again.
        state = state.after_failure(5, 300, 1300);
        assert_eq!(state.failures, 1);
        assert!(!state.locked_at(1300));
    }

    const LOCKOUT: Lockout = Lockout {
        max_failures: 3,
        lockout_seconds: 300,
        combined: false,
    };
    const COMBINED: Lockout = Lockout {
        combined: true,
        ..LOCKOUT
    };

    fn busy() -> State {
        State {
            last_step: Some(10),
            next_counter: 4,
            failures: 2,
            failure_window_start: 900,
            locked_until: 0,
            last_success: 500,
            verified_session: Some(7),
            verified_at: 500,
            combined: FailureCount {
                failures: 2,
                window_start: 950,
            },
            clock_offset: Some(1),
        }
    }

    /// A valid code clears every count and lock, uses up its step or counter, records
    /// when and in which session; the rest of the ledger stays.
    #[test]
    fn a_success_clears_the_counts_and_uses_up_its_step_or_counter() {
        let step = Accepted {
            used: Used::Step {
                step: 12,
                clock_offset: -2,
            },
            session: Some(9),
        };
        let after = busy().after_success(&step, 1000);
        assert_eq!(
            after,
            State {
                last_step: Some(12),
                next_counter: 4,
                failures: 0,
                failure_window_start: 0,
                locked_until: 0,
                last_success: 1000,
                verified_session: Some(9),
                verified_at: 1000,
                combined: FailureCount::default(),
                clock_offset: Some(-2),
            }
        );
        let counter = Accepted {
            used: Used::Counter(8),
            session: None,
        };
        let after = busy().after_success(&counter, 1000);
        assert_eq!((after.next_counter, after.last_step), (9, Some(10)));
        assert_eq!(after.verified_session, None);
        let recovery = Accepted {
            used: Used::RecoveryHash("$argon2id$x".into()),
            session: None,
        };
        let after = busy().after_success(&recovery, 1000);
        assert_eq!(
            (after.last_step, after.next_counter, after.clock_offset),
            (Some(10), 4, Some(1))
        );
        assert_eq!((after.failures, after.combined.failures), (0, 0));
    }

    /// A wrong code counts towards the account's lock, or with `combined` towards the
    /// combined count only; the ledger never moves.
    #[test]
    fn a_wrong_code_counts_where_its_way_in_counts() {
        let after = busy().after_wrong(&LOCKOUT, 1000);
        assert_eq!(after.locked_until, 1300);
        assert_eq!(after.combined, busy().combined);
        assert_eq!(after.last_step, Some(10));
        let after = busy().after_wrong(&COMBINED, 1000);
        assert_eq!((after.failures, after.locked_until), (2, 0));
        assert_eq!(after.combined.failures, 3);
        assert_eq!(after.refused_until(&COMBINED, 1000), Some(1250));
        assert_eq!(after.refused_until(&LOCKOUT, 1000), None);
    }

    #[test]
    fn a_locked_account_is_refused_whatever_the_way_in() {
        let locked = State {
            locked_until: 2000,
            ..State::default()
        };
        assert_eq!(locked.refused_until(&LOCKOUT, 1999), Some(2000));
        assert_eq!(locked.refused_until(&COMBINED, 1999), Some(2000));
        assert_eq!(locked.refused_until(&LOCKOUT, 2000), None);
    }
}
