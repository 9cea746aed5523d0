//! Bastion workflows through the module's Rust path, with the clock and the audit
//! session injected: enrollment at first login, and a verified session remembered.

mod inproc;

use std::sync::{Arc, Barrier};
use std::thread;

use inproc::{code_at, decode_base32, secret_from_messages, Place, Scripted, KEY, KEY_BASE32};
use pam_mfa::authenticate::{authenticate, Denial, Outcome, Proof};
use pam_mfa::clock::FixedClock;

const NOW: u64 = 1_800_000_000;

fn remembering(extra: &str) -> Place {
    let place = Place::new(&format!(
        "default_mode = \"required\"\n[[rule]]\nname = \"ops\"\nmode = \"required\"\nremember_seconds = 600\n{extra}"
    ));
    place.enroll(KEY_BASE32);
    place
}

/// Logs in at `now` in `session` with `answer`; returns the outcome and whether the
/// conversation was asked for a code at all.
fn login(place: &Place, session: Option<u32>, now: u64, answer: &str) -> (Outcome, usize) {
    let mut conv = Scripted::answering(answer);
    let outcome = authenticate(&place.request(session), &mut conv, &FixedClock(now));
    (outcome, conv.asked)
}

#[test]
fn same_session_within_remember_seconds_is_not_asked_again() {
    let place = remembering("");
    let (first, asked) = login(&place, Some(41), NOW, &code_at(KEY, NOW));
    assert!(
        matches!(first, Outcome::Success(Proof::Code(_))),
        "{first:?}"
    );
    assert_eq!(asked, 1);
    let (second, asked) = login(&place, Some(41), NOW + 599, "");
    assert!(
        matches!(
            second,
            Outcome::Success(Proof::Remembered {
                session: 41,
                age: 599
            })
        ),
        "{second:?}"
    );
    assert_eq!(asked, 0, "no prompt inside a remembered session");
}

#[test]
fn another_session_an_unset_session_or_an_expired_age_asks_again() {
    let place = remembering("");
    let (first, _) = login(&place, Some(41), NOW, &code_at(KEY, NOW));
    assert!(matches!(first, Outcome::Success(_)));
    for (session, at) in [
        (Some(42), NOW + 10),
        (None, NOW + 10),
        (Some(41), NOW + 600),
    ] {
        let (outcome, asked) = login(&place, session, at, "000000");
        assert_eq!(asked, 1, "session {session:?} at +{}", at - NOW);
        assert!(matches!(outcome, Outcome::Denied(_)), "{outcome:?}");
    }
}

#[test]
fn a_clock_set_back_is_not_a_remembered_session() {
    let place = remembering("");
    let (first, _) = login(&place, Some(41), NOW, &code_at(KEY, NOW));
    assert!(matches!(first, Outcome::Success(_)));
    let (outcome, asked) = login(&place, Some(41), NOW - 5, "000000");
    assert_eq!(asked, 1);
    assert!(matches!(outcome, Outcome::Denied(_)));
}

#[test]
fn without_remember_seconds_every_login_asks() {
    let place = Place::new("default_mode = \"required\"\n");
    place.enroll(KEY_BASE32);
    let (first, _) = login(&place, Some(41), NOW, &code_at(KEY, NOW));
    assert!(matches!(first, Outcome::Success(_)));
    let (second, asked) = login(&place, Some(41), NOW + 1, "000000");
    assert_eq!(asked, 1);
    assert!(matches!(second, Outcome::Denied(_)));
}

#[test]
fn a_lockout_ends_the_remembered_session() {
    let place = remembering("max_failures = 2\n");
    let (first, _) = login(&place, Some(41), NOW, &code_at(KEY, NOW));
    assert!(matches!(first, Outcome::Success(_)));
    // Two wrong codes from another session lock the account...
    for _ in 0..2 {
        let (outcome, _) = login(&place, Some(99), NOW + 5, "000000");
        assert!(matches!(outcome, Outcome::Denied(_)));
    }
    // ...and the remembered session is locked out too.
    let (outcome, asked) = login(&place, Some(41), NOW + 6, "");
    assert!(matches!(outcome, Outcome::Locked { .. }), "{outcome:?}");
    assert_eq!(asked, 0);
}

fn self_enrolling() -> Place {
    Place::new("default_mode = \"required\"\n[[rule]]\nname = \"operators\"\nmode = \"required\"\nself_enroll = true\n")
}

#[test]
fn first_login_enrolls_with_a_valid_first_code() {
    let place = self_enrolling();
    let mut conv = Scripted::with(|shown| {
        let secret = secret_from_messages(shown).expect("the URI was shown before the prompt");
        Some(code_at(&decode_base32(&secret), NOW))
    });
    let outcome = authenticate(&place.request(None), &mut conv, &FixedClock(NOW));
    assert!(
        matches!(outcome, Outcome::Success(Proof::SelfEnrolled(_))),
        "{outcome:?}"
    );
    let secret = secret_from_messages(&conv.shown).unwrap();
    let record =
        std::fs::read_to_string(place.store().join(format!("{}.toml", place.user))).unwrap();
    assert!(
        record.contains(&secret),
        "the record holds the secret that was shown"
    );
    assert!(
        conv.shown.iter().any(|m| m.contains('█')),
        "a QR code was drawn"
    );
    let codes = conv.shown.last().unwrap();
    assert!(codes.contains("Recovery codes"), "{codes}");
    assert_eq!(codes.lines().filter(|l| l.trim().len() == 11).count(), 10);

    // The enrollment code itself cannot be used again; the next step's code works.
    let key = decode_base32(&secret);
    let (again, _) = login(&place, None, NOW + 1, &code_at(&key, NOW));
    assert!(matches!(again, Outcome::Denied(_)), "{again:?}");
    let (next, _) = login(&place, None, NOW + 30, &code_at(&key, NOW + 30));
    assert!(matches!(next, Outcome::Success(Proof::Code(_))), "{next:?}");
}

#[test]
fn a_wrong_or_missing_first_code_writes_nothing() {
    let place = self_enrolling();
    for answer in [Some("000000".to_string()), None, Some(String::new())] {
        let mut conv = Scripted::with(move |_| answer.clone());
        let outcome = authenticate(&place.request(None), &mut conv, &FixedClock(NOW));
        assert!(matches!(outcome, Outcome::Denied(_)), "{outcome:?}");
        // No secret and no recovery code is kept; only the state file, which counts a
        // wrong first code towards the lockout (issue 18, item 2), may be there.
        let files: Vec<_> = std::fs::read_dir(place.store())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| !name.ends_with(".state"))
            .collect();
        assert!(files.is_empty(), "no record or recovery file: {files:?}");
    }
}

#[test]
fn two_parallel_first_logins_enroll_exactly_once() {
    let place = Arc::new(self_enrolling());
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let place = Arc::clone(&place);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut conv = Scripted::with(|shown| {
                    let secret = secret_from_messages(shown).unwrap();
                    Some(code_at(&decode_base32(&secret), NOW))
                });
                // Both have seen their own QR code before either answers.
                conv.barrier = Some(barrier);
                let outcome = authenticate(&place.request(None), &mut conv, &FixedClock(NOW));
                (outcome, secret_from_messages(&conv.shown).unwrap())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results
        .iter()
        .filter(|(o, _)| matches!(o, Outcome::Success(Proof::SelfEnrolled(_))))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results
        .iter()
        .any(|(o, _)| matches!(o, Outcome::Denied(Denial::EnrolledMeanwhile))));
    let record =
        std::fs::read_to_string(place.store().join(format!("{}.toml", place.user))).unwrap();
    assert!(
        record.contains(&winners[0].1),
        "the winner's secret is the one saved"
    );
}

#[test]
fn silent_calls_cannot_enroll() {
    let place = self_enrolling();
    let mut request = place.request(None);
    request.silent = true;
    let mut conv = Scripted::answering("123456");
    let outcome = authenticate(&request, &mut conv, &FixedClock(NOW));
    assert!(
        matches!(outcome, Outcome::Denied(Denial::EnrollmentSilenced)),
        "{outcome:?}"
    );
}

#[test]
fn root_never_enrolls_itself_at_login() {
    // The rule names no account, so it reaches root too; root is still only refused.
    let place = self_enrolling();
    let mut request = place.request(None);
    request.user = Some("root".into());
    let mut conv = Scripted::answering("123456");
    let outcome = authenticate(&request, &mut conv, &FixedClock(NOW));
    assert!(
        matches!(outcome, Outcome::Denied(Denial::NotEnrolled)),
        "{outcome:?}"
    );
    assert!(
        secret_from_messages(&conv.shown).is_none(),
        "no secret shown to root"
    );
    assert_eq!(std::fs::read_dir(place.store()).unwrap().count(), 0);
}

#[test]
fn answers_that_cannot_be_codes_do_not_count_towards_the_lockout() {
    let place = Place::new("default_mode = \"required\"\nmax_failures = 2\n");
    place.enroll(KEY_BASE32);
    // sshd's stand-in answer for root under prohibit-password, an empty answer, letters.
    for answer in ["\u{8}\n\r\u{7f}INCORRECT", "", "abc"] {
        for _ in 0..3 {
            let (outcome, _) = login(&place, None, NOW, answer);
            assert!(
                matches!(outcome, Outcome::Denied(Denial::NoCode)),
                "{outcome:?}"
            );
        }
    }
    let (outcome, _) = login(&place, None, NOW, &code_at(KEY, NOW));
    assert!(
        matches!(outcome, Outcome::Success(_)),
        "not locked: {outcome:?}"
    );
    // Wrong codes do count.
    for _ in 0..2 {
        let (outcome, _) = login(&place, None, NOW + 30, "000000");
        assert!(matches!(outcome, Outcome::Denied(_)));
    }
    let (outcome, _) = login(&place, None, NOW + 30, &code_at(KEY, NOW + 30));
    assert!(matches!(outcome, Outcome::Locked { .. }), "{outcome:?}");
}
