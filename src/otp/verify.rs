//! The verifier: compares a typed code with every candidate of a window in constant time
//! and refuses codes for steps already used. Only it can make a [`Verified`] proof.

#![forbid(unsafe_code)]

use std::fmt;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroize;

use super::hotp::hotp;
use super::totp::time_step;
use super::{Algorithm, Digits};

/// A code as the user typed it: exactly `digits` ASCII digits. Wiped on drop.
pub struct Code {
    value: u32,
}

impl Drop for Code {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

impl Code {
    /// Parses a typed code. Surrounding ASCII whitespace is tolerated; anything else that
    /// is not exactly `digits` decimal digits is refused.
    pub fn parse(input: &[u8], digits: Digits) -> Option<Code> {
        let trimmed = input.trim_ascii();
        if trimmed.len() != usize::from(digits.get()) || !trimmed.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value = trimmed
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
        Some(Code { value })
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

/// Proof that a code matched a step or counter that had not been used before.
/// The private field means no code outside this module can make one.
#[must_use]
#[derive(Debug)]
pub struct Verified {
    accepted: u64,
}

impl Verified {
    /// The time step (TOTP) or counter (HOTP) whose code was accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The code matches no candidate in the window.
    WrongCode,
    /// The code matches a step or counter that was already accepted once.
    Replayed,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WrongCode => "wrong code",
            Self::Replayed => "code already used",
        })
    }
}

/// What a TOTP check needs besides the key.
#[derive(Clone, Copy, Debug)]
pub struct TotpParams {
    pub algorithm: Algorithm,
    pub digits: Digits,
    pub period: u32,
    /// Steps accepted on each side of the current one.
    pub window: u32,
}

/// Checks `code` against every step in `now ± window`. A step at or before `last_step`
/// never verifies, so a code cannot be used twice, not even after the clock goes back.
pub fn verify_totp(
    key: &[u8],
    params: &TotpParams,
    code: &Code,
    now: u64,
    last_step: Option<u64>,
) -> Result<Verified, Rejection> {
    let current = time_step(now, params.period);
    let window = u64::from(params.window);
    let first = current.saturating_sub(window);
    let last = current.saturating_add(window);
    check(code, first..=last, last_step, |step| {
        hotp(key, step, params.algorithm, params.digits)
    })
}

/// How many steps beyond the window on each side [`near_miss`] looks: five minutes of
/// 30-second steps.
pub const NEAR_MISS_STEPS: u32 = 10;

/// How many steps `step` lies from the step of `now`: positive when it is ahead (the
/// device's clock runs fast), saturated to the range of an `i32`.
pub fn step_offset(step: u64, now: u64, period: u32) -> i32 {
    let current = time_step(now, period);
    let offset = if step >= current {
        i64::try_from(step - current).unwrap_or(i64::MAX)
    } else {
        i64::try_from(current - step).map_or(i64::MIN, |d| -d)
    };
    i32::try_from(offset).unwrap_or(if offset < 0 { i32::MIN } else { i32::MAX })
}

/// For a code the window refused: the offset from now, in steps, of a step up to `reach`
/// steps beyond either edge of the window whose code it is, and that is newer than
/// `last_step`: a device whose clock is off. Only for the audit line: it makes no
/// [`Verified`], so such a code is never accepted. Every candidate is visited.
pub fn near_miss(
    key: &[u8],
    params: &TotpParams,
    code: &Code,
    now: u64,
    last_step: Option<u64>,
    reach: u32,
) -> Option<i32> {
    let current = time_step(now, params.period);
    let window = u64::from(params.window);
    let reach = u64::from(reach);
    let before = current.saturating_sub(window + reach)..current.saturating_sub(window);
    let after = current.saturating_add(window + 1)..=current.saturating_add(window + reach);
    let mut found = Choice::from(0);
    let mut step = 0u64;
    for candidate in before.chain(after) {
        if last_step.is_some_and(|used| candidate <= used) {
            continue;
        }
        let matches = hotp(key, candidate, params.algorithm, params.digits).ct_eq(&code.value);
        step.conditional_assign(&candidate, matches);
        found |= matches;
    }
    bool::from(found).then(|| step_offset(step, now, params.period))
}

/// The highest HOTP counter whose code may be accepted: the one after it must exist.
pub const LAST_USABLE_COUNTER: u64 = u64::MAX - 1;

/// Checks `code` against HOTP counters `counter ..= counter + look_ahead`; `counter` is
/// the next unused counter. The last counter, `u64::MAX`, is never accepted: no next
/// counter could record it as used, so its code would work again and again.
pub fn verify_hotp(
    key: &[u8],
    algorithm: Algorithm,
    digits: Digits,
    counter: u64,
    look_ahead: u32,
    code: &Code,
) -> Result<Verified, Rejection> {
    let last = counter
        .saturating_add(u64::from(look_ahead))
        .min(LAST_USABLE_COUNTER);
    let used = counter.checked_sub(1);
    check(code, counter..=last, used, |c| {
        hotp(key, c, algorithm, digits)
    })
}

/// Visits every candidate whatever matches, so the time taken does not tell which
/// candidate matched or whether one did.
fn check(
    code: &Code,
    candidates: std::ops::RangeInclusive<u64>,
    used_up_to: Option<u64>,
    code_for: impl Fn(u64) -> u32,
) -> Result<Verified, Rejection> {
    let (has_used, used) = match used_up_to {
        Some(step) => (Choice::from(1), step),
        None => (Choice::from(0), 0),
    };
    let mut fresh = Choice::from(0);
    let mut stale = Choice::from(0);
    let mut accepted = 0u64;
    for candidate in candidates {
        let matches = code_for(candidate).ct_eq(&code.value);
        let is_new = !has_used | candidate.ct_gt(&used);
        let take = matches & is_new;
        accepted.conditional_assign(&candidate, take);
        fresh |= take;
        stale |= matches & !is_new;
    }
    if bool::from(fresh) {
        Ok(Verified { accepted })
    } else if bool::from(stale) {
        Err(Rejection::Replayed)
    } else {
        Err(Rejection::WrongCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::hotp::format_code;
    use crate::otp::totp::totp;

    const KEY: &[u8] = b"12345678901234567890";
    const PARAMS: TotpParams = TotpParams {
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        period: 30,
        window: 1,
    };

    fn code_at(time: u64) -> Code {
        let value = totp(KEY, time, 30, Algorithm::Sha1, Digits::SIX);
        Code::parse(format_code(value, Digits::SIX).as_bytes(), Digits::SIX).unwrap()
    }

    #[test]
    fn current_code_verifies_and_names_its_step() {
        let now = 1_700_000_000;
        let verified = verify_totp(KEY, &PARAMS, &code_at(now), now, None).unwrap();
        assert_eq!(verified.accepted(), now / 30);
    }

    #[test]
    fn window_edges_are_inclusive_and_one_past_is_refused() {
        let now: u64 = 1_700_000_010; // step 56666667, 10 s into it
        for offset in [-30i64, 30] {
            let t = now.checked_add_signed(offset).unwrap();
            assert!(
                verify_totp(KEY, &PARAMS, &code_at(t), now, None).is_ok(),
                "offset {offset}"
            );
        }
        for offset in [-60i64, 60, 90] {
            let t = now.checked_add_signed(offset).unwrap();
            assert_eq!(
                verify_totp(KEY, &PARAMS, &code_at(t), now, None).unwrap_err(),
                Rejection::WrongCode,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn wider_window_accepts_further_steps() {
        let now = 1_700_000_010;
        let params = TotpParams {
            window: 3,
            ..PARAMS
        };
        assert!(verify_totp(KEY, &params, &code_at(now - 90), now, None).is_ok());
        assert!(verify_totp(KEY, &params, &code_at(now - 120), now, None).is_err());
    }

    #[test]
    fn replayed_code_is_refused() {
        let now = 1_700_000_000;
        let first = verify_totp(KEY, &PARAMS, &code_at(now), now, None).unwrap();
        let again = verify_totp(KEY, &PARAMS, &code_at(now), now + 5, Some(first.accepted()));
        assert_eq!(again.unwrap_err(), Rejection::Replayed);
    }

    #[test]
    fn earlier_step_is_refused_after_a_later_one_was_used() {
        let now = 1_700_000_000;
        let later = verify_totp(KEY, &PARAMS, &code_at(now + 30), now, None).unwrap();
        let earlier = verify_totp(KEY, &PARAMS, &code_at(now), now, Some(later.accepted()));
        assert_eq!(earlier.unwrap_err(), Rejection::Replayed);
    }

    #[test]
    fn clock_going_back_does_not_reopen_used_steps() {
        let now = 1_700_000_000;
        let used = verify_totp(KEY, &PARAMS, &code_at(now), now, None).unwrap();
        // The clock jumps back ten minutes: the old codes of that time were never used, but
        // they are older than the last accepted step and must stay refused.
        let back = now - 600;
        assert!(verify_totp(KEY, &PARAMS, &code_at(back), back, Some(used.accepted())).is_err());
    }

    #[test]
    fn next_step_after_a_used_one_is_accepted() {
        let now = 1_700_000_000;
        let used = verify_totp(KEY, &PARAMS, &code_at(now), now, None).unwrap();
        let next = verify_totp(
            KEY,
            &PARAMS,
            &code_at(now + 30),
            now + 30,
            Some(used.accepted()),
        );
        assert_eq!(next.unwrap().accepted(), used.accepted() + 1);
    }

    #[test]
    fn codes_of_wrong_shape_do_not_parse() {
        for input in ["", "12345", "1234567", "12a456", "-12345", "１２３４５６"] {
            assert!(
                Code::parse(input.as_bytes(), Digits::SIX).is_none(),
                "{input:?}"
            );
        }
        assert!(Code::parse(b" 123456\n", Digits::SIX).is_some());
        assert!(Code::parse(b"12345678", Digits::new(8).unwrap()).is_some());
    }

    #[test]
    fn hotp_accepts_within_look_ahead_and_moves_past_it() {
        let code = |c| {
            let v = hotp(KEY, c, Algorithm::Sha1, Digits::SIX);
            Code::parse(format_code(v, Digits::SIX).as_bytes(), Digits::SIX).unwrap()
        };
        let ok = verify_hotp(KEY, Algorithm::Sha1, Digits::SIX, 3, 10, &code(7)).unwrap();
        assert_eq!(ok.accepted(), 7);
        // Counter 2 is below the next unused counter 3: used, so outside the candidates.
        assert_eq!(
            verify_hotp(KEY, Algorithm::Sha1, Digits::SIX, 3, 10, &code(2)).unwrap_err(),
            Rejection::WrongCode
        );
        assert_eq!(
            verify_hotp(KEY, Algorithm::Sha1, Digits::SIX, 3, 10, &code(14)).unwrap_err(),
            Rejection::WrongCode
        );
    }

    #[test]
    fn hotp_never_accepts_the_last_counter() {
        let code = |c| {
            let v = hotp(KEY, c, Algorithm::Sha1, Digits::SIX);
            Code::parse(format_code(v, Digits::SIX).as_bytes(), Digits::SIX).unwrap()
        };
        let verify = |next, c| verify_hotp(KEY, Algorithm::Sha1, Digits::SIX, next, 10, &code(c));
        assert_eq!(
            verify(u64::MAX, u64::MAX).unwrap_err(),
            Rejection::WrongCode
        );
        assert_eq!(
            verify(u64::MAX - 5, u64::MAX).unwrap_err(),
            Rejection::WrongCode
        );
        let ok = verify(u64::MAX - 5, LAST_USABLE_COUNTER).unwrap();
        assert_eq!(ok.accepted(), LAST_USABLE_COUNTER);
        // The counter after it, the next unused one, accepts nothing.
        assert!(verify(LAST_USABLE_COUNTER + 1, LAST_USABLE_COUNTER).is_err());
    }

    #[test]
    fn near_misses_lie_just_beyond_the_window_and_name_their_offset() {
        let now: u64 = 1_700_000_010;
        let miss = |offset: i64, last: Option<u64>| {
            let t = now.checked_add_signed(offset).unwrap();
            near_miss(KEY, &PARAMS, &code_at(t), now, last, NEAR_MISS_STEPS)
        };
        assert_eq!(miss(90, None), Some(3));
        assert_eq!(miss(-120, None), Some(-4));
        assert_eq!(miss(330, None), Some(11));
        // Inside the window is no near miss (it verifies), nor is beyond the reach.
        assert_eq!(miss(30, None), None);
        assert_eq!(miss(0, None), None);
        assert_eq!(miss(360, None), None);
        assert_eq!(miss(-360, None), None);
        // A step at or before the last used one is a used code, not a clock.
        assert_eq!(miss(-120, Some(now / 30 - 3)), None);
        assert_eq!(miss(-120, Some(now / 30 - 5)), Some(-4));
    }

    #[test]
    fn step_offsets_are_signed() {
        assert_eq!(step_offset(100, 100 * 30 + 29, 30), 0);
        assert_eq!(step_offset(103, 100 * 30, 30), 3);
        assert_eq!(step_offset(98, 100 * 30, 30), -2);
        assert_eq!(step_offset(u64::MAX, 0, 30), i32::MAX);
        assert_eq!(step_offset(0, u64::MAX, 1), i32::MIN);
    }

    #[test]
    fn debug_output_hides_the_code() {
        let code = Code::parse(b"123456", Digits::SIX).unwrap();
        assert!(!format!("{code:?}").contains("123456"));
    }
}
