//! The admin command beyond a plain enrollment: QR codes read back with zbarimg, the otpauth
//! URI's format, imports from files the real google-authenticator command wrote and from
//! otpauth URIs, status, unlock, remove and recovery, every error as one line, and a refusal
//! to run as anyone but the store's owner. What the command writes is then used to log in
//! through the module.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::{
    avoid_step_boundary, cli_path, office_locking_after, recovery_codes, sandbox, Cli, Finished,
    Pam, Sandbox, Totp, OTHER_SECRET, SECRET,
};

/// libpam's PAM_MAXTRIES, which `Pam` has no name for.
const PAM_MAXTRIES: Pam = Pam::Other(11);

// --- QR codes ------------------------------------------------------------------------------

#[test]
fn qr_png_decodes_to_exactly_the_printed_uri() {
    let sb = office_locking_after(5);
    let png = sb.path("alice.png");

    let run = pam_mfa(
        &sb,
        &["enroll", "alice", "--no-confirm", "--qr", "none"],
        &["--qr-png", text(&png)],
    )
    .run();

    assert_eq!(run.code, Some(0), "{run:?}");
    let uri = printed_uri(&run);
    let meta = fs::symlink_metadata(&png).expect("PNG written");
    assert!(meta.file_type().is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600, "PNG mode");
    assert_eq!(zbar(&png), uri);
}

#[test]
fn qr_svg_is_well_formed_private_and_decodes_to_exactly_the_printed_uri() {
    let sb = office_locking_after(5);
    let svg = sb.path("alice.svg");

    let run = pam_mfa(
        &sb,
        &["enroll", "alice", "--no-confirm", "--qr", "none"],
        &["--qr-svg", text(&svg)],
    )
    .run();

    assert_eq!(run.code, Some(0), "{run:?}");
    let uri = printed_uri(&run);
    assert_eq!(
        fs::metadata(&svg).unwrap().mode() & 0o7777,
        0o600,
        "SVG mode"
    );
    let document = fs::read_to_string(&svg).expect("SVG is text");
    let modules = svg_modules(&document);
    let pgm = sb.path("alice-svg.pgm");
    write_pgm(&pgm, &modules);
    assert_eq!(zbar(&pgm), uri, "the SVG's squares, drawn by the test");

    // A real renderer, where there is one (Debian: librsvg2-bin).
    let rendered = sb.path("alice-svg.png");
    match Command::new("rsvg-convert")
        .arg("-o")
        .arg(&rendered)
        .arg(&svg)
        .output()
    {
        Ok(output) => {
            assert!(output.status.success(), "rsvg-convert: {output:?}");
            assert_eq!(zbar(&rendered), uri, "the SVG as rsvg-convert draws it");
        }
        Err(_) => eprintln!("rsvg-convert not installed: the SVG was read by the test only"),
    }
}

#[test]
fn terminal_qr_in_half_blocks_and_in_ansi_colours_decodes_to_exactly_the_printed_uri() {
    for style in ["utf8", "ansi"] {
        let sb = office_locking_after(5);

        let run = sb
            .pam_mfa(&["enroll", "alice", "--no-confirm", "--qr", style])
            .run();

        assert_eq!(run.code, Some(0), "{run:?}");
        let uri = printed_uri(&run);
        let modules = match style {
            "utf8" => half_block_modules(&run.stdout),
            _ => ansi_modules(&run.stdout),
        };
        let pgm = sb.path(&format!("terminal-{style}.pgm"));
        write_pgm(&pgm, &modules);
        assert_eq!(zbar(&pgm), uri, "--qr {style}");
    }
}

#[test]
fn qr_png_onto_an_existing_file_or_a_symlink_is_refused_and_writes_nothing() {
    let sb = office_locking_after(5);
    let existing = sb.path("taken.png");
    common::write_file(&existing, "someone else's file\n", 0o644);
    let victim = sb.path("victim");
    common::write_file(&victim, "precious\n", 0o644);
    let link = sb.path("link.png");
    symlink(&victim, &link).unwrap();
    let dangling = sb.path("dangling.png");
    let nowhere = sb.path("nowhere.png");
    symlink(&nowhere, &dangling).unwrap();

    for target in [&existing, &link, &dangling] {
        let before_existing = fingerprint(&existing);
        let before_victim = fingerprint(&victim);

        let run = pam_mfa(
            &sb,
            &["enroll", "alice", "--no-confirm", "--qr", "none"],
            &["--qr-png", text(target)],
        )
        .run();

        expect_error(&run);
        assert!(
            !run.stdout.contains("otpauth://"),
            "URI shown though nothing is saved: {run:?}"
        );
        assert_eq!(fingerprint(&existing), before_existing);
        assert_eq!(fingerprint(&victim), before_victim);
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(
            fs::symlink_metadata(&nowhere).is_err(),
            "created through a symlink"
        );
        expect_not_enrolled(&sb, "alice");
    }
}

/// An image in the store would take the place of a record: refused before anything is
/// written, as is one in a directory that does not exist (with a plain reason).
#[test]
fn qr_images_in_the_store_or_nowhere_are_refused_and_write_nothing() {
    let sb = office_locking_after(5);
    let store_before = store_names(&sb);
    for (option, target, reason) in [
        ("--qr-png", sb.store().join("bob.toml"), "store directory"),
        ("--qr-svg", sb.store().join("x.svg"), "store directory"),
        (
            "--qr-png",
            sb.path("missing/q.png"),
            "directory does not exist",
        ),
    ] {
        let run = pam_mfa(
            &sb,
            &["enroll", "bob", "--no-confirm", "--qr", "none"],
            &[option, text(&target)],
        )
        .run();
        expect_error(&run);
        assert!(run.stderr.contains(reason), "{run:?}");
        assert!(!run.stdout.contains("otpauth://"), "{run:?}");
        assert_eq!(
            store_names(&sb),
            store_before,
            "{option} {}",
            target.display()
        );
    }
}

/// The images hold the secret: an enrollment that is not saved (a wrong first code) takes
/// them away again.
#[test]
fn qr_images_of_an_enrollment_that_is_not_saved_are_removed() {
    let sb = office_locking_after(5);
    let png = sb.path("alice.png");
    let svg = sb.path("alice.svg");
    let run = pam_mfa(
        &sb,
        &["enroll", "alice", "--qr", "none"],
        &["--qr-png", text(&png), "--qr-svg", text(&svg)],
    )
    .stdin("000000\n")
    .run();
    expect_error_after_prompt(&run);
    assert!(run.stdout.contains("otpauth://"), "{run:?}");
    assert!(fs::symlink_metadata(&png).is_err(), "the PNG stayed");
    assert!(fs::symlink_metadata(&svg).is_err(), "the SVG stayed");
    expect_not_enrolled(&sb, "alice");
}

// --- the otpauth URI -------------------------------------------------------------------------

#[test]
fn uri_carries_the_percent_encoded_issuer_as_label_prefix_and_parameter() {
    let cases: [(&[&str], &str, &str); 3] = [
        (&["--issuer", "ACME Co"], "totp", "ACME%20Co:alice"),
        (
            &["--issuer", "A&B Ops/#1", "--label", "Alice Smith"],
            "totp",
            "A%26B%20Ops%2F%231:Alice%20Smith",
        ),
        (
            &["--issuer", "ACME Co", "--hotp"],
            "hotp",
            "ACME%20Co:alice",
        ),
    ];
    for (options, kind, label) in cases {
        let sb = office_locking_after(5);

        let run = pam_mfa(
            &sb,
            &["enroll", "alice", "--no-confirm", "--qr", "none"],
            options,
        )
        .run();

        assert_eq!(run.code, Some(0), "{options:?}: {run:?}");
        let uri = printed_uri(&run);
        let (path, query) = uri.split_once('?').expect("a query");
        assert_eq!(path, format!("otpauth://{kind}/{label}"), "{uri}");
        let params: Vec<(&str, &str)> = query
            .split('&')
            .map(|pair| pair.split_once('=').expect("key=value"))
            .collect();
        let value = |key: &str| {
            let found: Vec<&str> = params
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .collect();
            assert_eq!(found.len(), 1, "{key} in {uri}");
            found[0]
        };
        let issuer = label.split(':').next().unwrap();
        assert_eq!(value("issuer"), issuer, "{uri}");
        assert_eq!(value("algorithm"), "SHA1", "{uri}");
        assert_eq!(value("digits"), "6", "{uri}");
        let secret = value("secret");
        assert!(
            secret.len() >= 32
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
            "unpadded base32 secret: {uri}"
        );
        match kind {
            "totp" => assert_eq!(value("period"), "30", "{uri}"),
            _ => assert_eq!(value("counter"), "0", "{uri}"),
        }
    }
}

/// What the Key Uri Format cannot carry is refused as a usage error, before anything is
/// made or written: an empty or colon-holding issuer or label, a period for HOTP.
#[test]
fn uri_options_the_format_cannot_carry_are_refused() {
    let sb = office_locking_after(5);
    for options in [
        &["--issuer", ""][..],
        &["--issuer", "ACME:Ops"],
        &["--label", " "],
        &["--label", "alice:admin"],
        &["--hotp", "--period", "60"],
    ] {
        let run = pam_mfa(
            &sb,
            &["enroll", "alice", "--no-confirm", "--qr", "none"],
            options,
        )
        .run();
        assert_eq!(run.code, Some(2), "{options:?}: {run:?}");
        assert!(!run.stdout.contains("otpauth://"), "{options:?}: {run:?}");
        expect_not_enrolled(&sb, "alice");
    }
}

/// A new secret is as long as its hash's output (RFC 4226 R6, RFC 6238 5.1).
#[test]
fn a_new_secret_is_as_long_as_the_hash() {
    for (algorithm, bytes) in [("sha1", 20usize), ("sha256", 32), ("sha512", 64)] {
        let sb = office_locking_after(5);
        let run = pam_mfa(
            &sb,
            &["enroll", "alice", "--no-confirm", "--qr", "none"],
            &["--algorithm", algorithm],
        )
        .run();
        assert_eq!(run.code, Some(0), "{run:?}");
        let secret = common::uri_secret(&printed_uri(&run));
        assert_eq!(
            secret.len(),
            (bytes * 8).div_ceil(5),
            "{algorithm}: {secret}"
        );
    }
}

// --- import google-authenticator -------------------------------------------------------------

/// google-authenticator -t: TOTP, reuse disallowed, a rate limit, a window of 3, five
/// scratch codes.
const GA_TOTP: &[&str] = &[
    "-t", "-d", "-f", "-r", "3", "-R", "30", "-w", "3", "-e", "5", "-q", "-Q", "NONE",
];
/// google-authenticator -c: HOTP, a window of 5, no rate limit, three scratch codes.
const GA_HOTP: &[&str] = &[
    "-c", "-f", "-w", "5", "-u", "-C", "-e", "3", "-q", "-Q", "NONE",
];

#[test]
fn google_authenticator_totp_file_imports_and_a_scratch_code_works_once() {
    let sb = office_locking_after(5);
    let source = sb.path("alice.google_authenticator");
    let file = google_authenticator(GA_TOTP, &source);
    let meta = fs::metadata(&source).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o400));
    let before = fingerprint(&source);

    let run = pam_mfa(
        &sb,
        &["import", "google-authenticator", "--user", "alice"],
        &[text(&source)],
    )
    .run();

    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("imported alice"), "{run:?}");
    assert_eq!(fingerprint(&source), before, "the source changed");
    assert_eq!(status_json(&sb, &["alice"])[0]["recovery_codes_left"], 5);

    avoid_step_boundary(30);
    let code = Totp::new(&file.secret).code();
    sb.login("alice").answer(&code).run().expect(Pam::Success);
    sb.login("alice").answer(&code).run().expect(Pam::AuthErr);

    let scratch = file.scratch.last().unwrap();
    sb.login("alice").answer(scratch).run().expect(Pam::Success);
    sb.login("alice").answer(scratch).run().expect(Pam::AuthErr);
    assert_eq!(status_json(&sb, &["alice"])[0]["recovery_codes_left"], 4);
    assert_eq!(fingerprint(&source), before, "the source changed");
}

#[test]
fn google_authenticator_hotp_file_imports_with_its_counter() {
    let sb = office_locking_after(5);
    let source = sb.path("alice.google_authenticator");
    let file = google_authenticator(GA_HOTP, &source);
    assert!(file.text.contains("HOTP_COUNTER 1"), "{}", file.text);
    let before = fingerprint(&source);

    let run = pam_mfa(
        &sb,
        &["import", "google-authenticator", "--user", "alice"],
        &[text(&source)],
    )
    .run();

    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("hotp, counter 1,"), "{run:?}");
    assert_eq!(status_json(&sb, &["alice"])[0]["kind"], "hotp SHA1");
    let behind_the_counter = hotp(&file.secret, 0);
    sb.login("alice")
        .answer(&behind_the_counter)
        .run()
        .expect(Pam::AuthErr);
    let next = hotp(&file.secret, 1);
    sb.login("alice").answer(&next).run().expect(Pam::Success);
    sb.login("alice").answer(&next).run().expect(Pam::AuthErr);

    let scratch = file.scratch.last().unwrap();
    sb.login("alice").answer(scratch).run().expect(Pam::Success);
    sb.login("alice").answer(scratch).run().expect(Pam::AuthErr);
    assert_eq!(fingerprint(&source), before, "the source changed");
}

#[test]
fn google_authenticator_source_readable_by_others_is_refused_and_nothing_written() {
    let sb = office_locking_after(5);
    let source = sb.path("alice.google_authenticator");
    google_authenticator(GA_TOTP, &source);
    sb.chmod(&source, 0o644);
    let before = fingerprint(&source);
    let store_before = store_names(&sb);

    let run = pam_mfa(
        &sb,
        &["import", "google-authenticator", "--user", "alice"],
        &[text(&source)],
    )
    .run();

    expect_error(&run);
    assert!(
        run.stderr.contains("0644"),
        "the reason names the mode: {run:?}"
    );
    assert_eq!(store_names(&sb), store_before, "something was written");
    expect_not_enrolled(&sb, "alice");
    assert_eq!(fingerprint(&source), before, "the source changed");
}

/// A DISALLOW_REUSE step after now (an edited file, or a clock that went back) would
/// refuse every code until then: the account is not imported, and the reason says why.
#[test]
fn google_authenticator_used_step_in_the_future_is_refused_and_nothing_written() {
    let sb = office_locking_after(5);
    let source = sb.path("alice.google_authenticator");
    common::write_file(
        &source,
        &format!("{SECRET}\n\" DISALLOW_REUSE 99999999999\n\" TOTP_AUTH\n"),
        0o400,
    );
    let store_before = store_names(&sb);

    let run = pam_mfa(
        &sb,
        &["import", "google-authenticator", "--user", "alice"],
        &[text(&source)],
    )
    .run();

    expect_error(&run);
    assert!(run.stderr.contains("DISALLOW_REUSE"), "{run:?}");
    assert!(!run.stderr.contains(SECRET), "{run:?}");
    assert_eq!(store_names(&sb), store_before, "something was written");
    expect_not_enrolled(&sb, "alice");
}

/// An HOTP counter after which no code could ever pass, and more scratch codes than a
/// recovery file holds (the module would refuse that file, after seconds of Argon2), are
/// refused before anything is hashed or written, in one line naming the file and the line.
#[test]
fn google_authenticator_counter_and_scratch_codes_out_of_bounds_are_refused() {
    let sb = office_locking_after(5);
    let source = sb.path("alice.google_authenticator");
    let scratch: String = (0..700)
        .map(|i| format!("{:08}\n", 10_000_000 + i))
        .collect();
    let cases = [
        format!("{SECRET}\n\" HOTP_COUNTER 18446744073709551615\n"),
        format!("{SECRET}\n\" TOTP_AUTH\n{scratch}"),
    ];
    let store_before = store_names(&sb);
    for text in &cases {
        let _ = fs::remove_file(&source);
        common::write_file(&source, text, 0o400);
        let run = pam_mfa(
            &sb,
            &["import", "google-authenticator", "--user", "alice"],
            &[self::text(&source)],
        )
        .run();

        expect_error(&run);
        let at = format!("{}: line ", source.display());
        let (_, after) = run.stderr.split_once(&at).expect("file and line named");
        let line: usize = after.split(':').next().unwrap().parse().unwrap();
        if text.contains("HOTP_COUNTER") {
            assert_eq!(line, 2, "{run:?}");
            assert!(run.stderr.contains("18446744073709551615"), "{run:?}");
        } else {
            // The first scratch code past the bound, on the line after the bound's last.
            let (_, bound) = run.stderr.split_once("more than ").expect("the bound");
            let bound: usize = bound.split(' ').next().unwrap().parse().unwrap();
            assert!((10..700).contains(&bound), "{run:?}");
            assert_eq!(line, bound + 3, "{run:?}");
        }
        assert_eq!(store_names(&sb), store_before, "something was written");
        expect_not_enrolled(&sb, "alice");
    }

    // The last counter that leaves a code to accept is imported.
    fs::remove_file(&source).unwrap();
    common::write_file(
        &source,
        &format!("{SECRET}\n\" HOTP_COUNTER 18446744073709551614\n"),
        0o400,
    );
    let run = pam_mfa(
        &sb,
        &["import", "google-authenticator", "--user", "alice"],
        &[self::text(&source)],
    )
    .run();
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn google_authenticator_symlink_source_is_refused_and_nothing_written() {
    let sb = office_locking_after(5);
    let real = sb.path("real.google_authenticator");
    google_authenticator(GA_TOTP, &real);
    let link = sb.path("alice.google_authenticator");
    symlink(&real, &link).unwrap();
    let before = fingerprint(&real);
    let store_before = store_names(&sb);

    let run = pam_mfa(
        &sb,
        &["import", "google-authenticator", "--user", "alice"],
        &[text(&link)],
    )
    .run();

    expect_error(&run);
    assert!(run.stderr.contains("symbolic link"), "{run:?}");
    assert_eq!(store_names(&sb), store_before, "something was written");
    expect_not_enrolled(&sb, "alice");
    assert_eq!(fingerprint(&real), before, "the target changed");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn import_all_homes_imports_safe_files_and_skips_unsafe_ones_with_reasons() {
    let users = [
        ("carol", 1002),
        ("dave", 1003),
        ("erin", 1004),
        ("frank", 1005),
        ("gina", 1006),
        ("hank", 1007),
    ];
    let mut sb = sandbox();
    for (name, uid) in users {
        sb = sb.user(name, uid);
    }
    // nss_wrapper's passwd again, now with home directories inside the sandbox.
    let mut passwd = String::from("root:x:0:0:root:/nonexistent:/bin/sh\n");
    for (name, uid) in users {
        let home = sb.path(&format!("home/{name}"));
        fs::create_dir_all(&home).unwrap();
        sb.chown(&home, uid);
        sb.chmod(&home, 0o700);
        passwd.push_str(&format!(
            "{name}:x:{uid}:{uid}:{name}:{}:/bin/sh\n",
            home.display()
        ));
    }
    fs::write(sb.path("passwd"), passwd).unwrap();
    let ga = |name: &str| sb.path(&format!("home/{name}/.google_authenticator"));

    // carol and dave: their own files, as google-authenticator leaves them (mode 0400).
    let carol = google_authenticator(GA_TOTP, &ga("carol"));
    sb.chown(&ga("carol"), 1002);
    let dave = google_authenticator(GA_HOTP, &ga("dave"));
    sb.chown(&ga("dave"), 1003);
    // erin: readable by everyone. gina: a symlink. hank: a file that is not hank's.
    google_authenticator(GA_TOTP, &ga("erin"));
    sb.chown(&ga("erin"), 1004);
    sb.chmod(&ga("erin"), 0o644);
    let elsewhere = sb.path("gina-elsewhere");
    google_authenticator(GA_TOTP, &elsewhere);
    sb.chown(&elsewhere, 1006);
    symlink(&elsewhere, ga("gina")).unwrap();
    google_authenticator(GA_TOTP, &ga("hank"));
    let sources = ["carol", "dave", "erin", "hank"].map(ga);
    let before: Vec<_> = sources.iter().map(|s| fingerprint(s)).collect();

    let run = sb
        .pam_mfa(&["import", "google-authenticator", "--all-homes"])
        .run();

    assert_eq!(run.code, Some(1), "a skip makes the run fail: {run:?}");
    let line_of = |name: &str| {
        let found: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(&format!("{name}:")))
            .collect();
        assert_eq!(found.len(), 1, "{name} in {run:?}");
        found[0].to_string()
    };
    assert!(line_of("carol").starts_with("imported "), "{run:?}");
    assert!(line_of("dave").starts_with("imported "), "{run:?}");
    for (name, reason) in [
        ("erin", "0644"),
        ("gina", "symbolic link"),
        ("hank", "owned by uid 0"),
    ] {
        let line = line_of(name);
        assert!(line.starts_with("skipped "), "{name}: {run:?}");
        assert!(
            line.contains(reason),
            "{name} skipped for {reason}: {run:?}"
        );
    }
    assert!(
        run.stdout.contains("2 imported, 3 skipped"),
        "summary: {run:?}"
    );
    assert!(!run.stdout.contains("frank"), "frank has no file: {run:?}");
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{run:?}");
    assert!(errors[0].starts_with("pam-mfa: "), "{run:?}");
    for name in ["erin", "frank", "gina", "hank"] {
        expect_not_enrolled(&sb, name);
    }
    let after: Vec<_> = sources.iter().map(|s| fingerprint(s)).collect();
    assert_eq!(after, before, "a source file changed");

    avoid_step_boundary(30);
    sb.login("carol")
        .answer(&Totp::new(&carol.secret).code())
        .run()
        .expect(Pam::Success);
    sb.login("dave")
        .answer(&hotp(&dave.secret, 1))
        .run()
        .expect(Pam::Success);
    sb.login("erin")
        .run()
        .expect_ignored()
        .expect_not_prompted();
}

// --- import uri ------------------------------------------------------------------------------

#[test]
fn import_uri_carries_over_a_totp_device() {
    let sb = office_locking_after(5);
    let uri = format!("otpauth://totp/Example:bob?secret={OTHER_SECRET}&issuer=Example\n");

    let run = sb
        .pam_mfa(&["import", "uri", "--user", "bob"])
        .stdin(&uri)
        .run();

    assert_eq!(run.code, Some(0), "{run:?}");
    avoid_step_boundary(30);
    let code = Totp::new(OTHER_SECRET).code();
    sb.login("bob").answer(&code).run().expect(Pam::Success);
    sb.login("bob").answer(&code).run().expect(Pam::AuthErr);
}

#[test]
fn import_uri_carries_over_an_hotp_device_with_its_counter() {
    let sb = office_locking_after(5);
    let uri = format!("otpauth://hotp/Example:bob?secret={SECRET}&issuer=Example&counter=5\n");

    let run = sb
        .pam_mfa(&["import", "uri", "--user", "bob"])
        .stdin(&uri)
        .run();

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(status_json(&sb, &["bob"])[0]["kind"], "hotp SHA1");
    sb.login("bob")
        .answer(&hotp(SECRET, 4))
        .run()
        .expect(Pam::AuthErr);
    sb.login("bob")
        .answer(&hotp(SECRET, 5))
        .run()
        .expect(Pam::Success);
    sb.login("bob")
        .answer(&hotp(SECRET, 5))
        .run()
        .expect(Pam::AuthErr);
}

/// Importing the same HOTP token again with `--force` (from its URI or its
/// google-authenticator file) keeps the highest counter, as TOTP keeps the highest step: codes
/// used before the re-import stay refused. A new secret starts a new ledger at its own counter.
#[test]
fn reimporting_the_same_hotp_token_keeps_its_counter() {
    let sb = office_locking_after(5);
    let uri = |secret: &str| {
        format!("otpauth://hotp/Example:bob?secret={secret}&issuer=Example&counter=0\n")
    };
    let import_uri = |secret: &str, force: bool| {
        let mut args = vec!["import", "uri", "--user", "bob"];
        if force {
            args.push("--force");
        }
        let run = sb.pam_mfa(&args).stdin(&uri(secret)).run();
        assert_eq!(run.code, Some(0), "{run:?}");
    };
    let login = |secret: &str, counter: u64| sb.login("bob").answer(&hotp(secret, counter)).run();

    import_uri(SECRET, false);
    login(SECRET, 0).expect(Pam::Success);
    login(SECRET, 1).expect(Pam::Success);

    import_uri(SECRET, true);
    login(SECRET, 0).expect(Pam::AuthErr);
    login(SECRET, 1).expect(Pam::AuthErr);
    login(SECRET, 2).expect(Pam::Success);

    let source = sb.path("bob.google_authenticator");
    common::write_file(&source, &format!("{SECRET}\n\" HOTP_COUNTER 1\n"), 0o400);
    let run = pam_mfa(
        &sb,
        &["import", "google-authenticator", "--force", "--user", "bob"],
        &[text(&source)],
    )
    .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    login(SECRET, 2).expect(Pam::AuthErr);
    login(SECRET, 3).expect(Pam::Success);

    import_uri(OTHER_SECRET, true);
    login(OTHER_SECRET, 0).expect(Pam::Success);
}

// --- status ----------------------------------------------------------------------------------

#[test]
fn status_shows_mode_rule_kind_lock_recovery_codes_and_last_login() {
    let sb = office_locking_after(3)
        .user("carol", 1002)
        .enroll_with_cli("alice", SECRET)
        .enroll_with_cli("carol", OTHER_SECRET);
    avoid_step_boundary(30);
    let logged_in_from = now();
    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
    let logged_in_by = now();
    let wrong = Totp::new(OTHER_SECRET).wrong_code();
    for _ in 0..3 {
        sb.login("carol").answer(&wrong).run().expect(Pam::AuthErr);
    }
    let locked_by = now();

    let json = status_json(&sb, &["alice", "bob", "carol"]);
    let rows = json.as_array().expect("a list");
    assert_eq!(rows.len(), 3, "{json:#}");
    let (alice, bob, carol) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(alice["user"], "alice");
    assert_eq!(alice["mode"], "required");
    assert_eq!(alice["rule"], "privileged");
    assert_eq!(alice["enrolled"], true);
    assert_eq!(alice["kind"], "totp SHA1");
    assert_eq!(alice["locked_until"], Value::Null);
    assert_eq!(alice["recovery_codes_left"], 10);
    let last = alice["last_login"].as_u64().expect("a last login");
    assert!((logged_in_from..=logged_in_by).contains(&last), "{json:#}");
    assert_eq!(bob["mode"], "optional");
    assert_eq!(bob["rule"], "default");
    assert_eq!(bob["enrolled"], false);
    assert_eq!(bob["kind"], Value::Null);
    assert_eq!(bob["recovery_codes_left"], Value::Null);
    assert_eq!(bob["last_login"], Value::Null);
    assert_eq!(carol["mode"], "optional");
    let until = carol["locked_until"].as_u64().expect("carol is locked");
    assert!(until > locked_by && until <= locked_by + 300, "{json:#}");
    assert_eq!(carol["last_login"], Value::Null);

    // Without names: the enrolled accounts.
    let all = status_json(&sb, &[]);
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "carol"]);

    let table = sb.pam_mfa(&["status", "alice", "bob", "carol"]).run();
    assert_eq!(table.code, Some(0), "{table:?}");
    assert!(
        !table.stdout.contains('\x1b'),
        "colour off a terminal: {table:?}"
    );
    let lines: Vec<&str> = table.stdout.lines().collect();
    for column in [
        "USER",
        "MODE",
        "RULE",
        "ENROLLED",
        "LOCKED UNTIL",
        "RECOVERY",
        "LAST LOGIN",
    ] {
        assert!(lines[0].contains(column), "{column}: {table:?}");
    }
    let row = |name: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}: {table:?}"))
            .split_whitespace()
            .collect()
    };
    let alice = row("alice");
    assert_eq!(
        alice[..7],
        ["alice", "required", "privileged", "totp", "SHA1", "-", "10"]
    );
    assert!(is_utc_time(&alice[7..]), "last login: {table:?}");
    assert_eq!(
        row("bob"),
        ["bob", "optional", "default", "no", "-", "-", "never"]
    );
    let carol = row("carol");
    assert_eq!(carol[..5], ["carol", "optional", "default", "totp", "SHA1"]);
    assert!(is_utc_time(&carol[5..8]), "locked until: {table:?}");
    assert_eq!(carol[8..], ["10", "never"]);
}

/// The rollout check: every account NSS lists that some login may ask for a code (root;
/// wheel through the required rule) and that has no secret; exit status 1 until none.
#[test]
fn status_missing_lists_who_may_need_a_code_and_has_no_secret() {
    let sb = office_locking_after(5)
        .user("carol", 1002)
        .group("ops", 20, &["carol"]);
    let named = |run: &Finished| -> Vec<String> {
        run.stdout
            .lines()
            .filter(|l| l.contains(" no secret: "))
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect()
    };
    let run = sb.pam_mfa(&["status", "--missing"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(named(&run), ["root", "alice"], "{run:?}");
    assert!(
        run.stdout.contains("rule 'privileged' requires a code"),
        "{run:?}"
    );

    // A directory that lists no account (SSSD's enumerate = false): alice is still found,
    // as a listed member of the required rule's group, and root always is.
    let noenum = format!("{} libnss_wrapper.so", common::noenum().display());
    let run = sb
        .pam_mfa(&["status", "--missing"])
        .env("LD_PRELOAD", &noenum)
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(named(&run), ["alice", "root"], "{run:?}");

    let sb = sb
        .enroll_with_cli("alice", SECRET)
        .enroll_with_cli("root", OTHER_SECRET);
    let run = sb.pam_mfa(&["status", "--missing", "--json"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout.trim(), "[]", "{run:?}");
}

/// A recovery file that cannot be read (here a symlink) is a problem status shows, not "-".
#[test]
fn status_reports_an_unreadable_recovery_file() {
    let sb = office_locking_after(5).enroll_with_cli("alice", SECRET);
    let recovery = sb.store().join("alice.recovery");
    let elsewhere = sb.path("elsewhere");
    fs::rename(&recovery, &elsewhere).unwrap();
    symlink(&elsewhere, &recovery).unwrap();
    let run = sb.pam_mfa(&["status", "--json", "alice"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    let rows: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        rows[0]["problem"]
            .as_str()
            .unwrap()
            .contains("alice.recovery"),
        "{rows:#}"
    );
}

/// An account status cannot show is reported, and the exit status says so, after the rest.
#[test]
fn status_of_an_unknown_account_exits_1_after_showing_the_others() {
    let sb = office_locking_after(5).enroll_with_cli("alice", SECRET);
    let run = sb.pam_mfa(&["status", "--json", "alice", "nobody"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    let rows: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows[0]["problem"], Value::Null, "{rows:#}");
    assert!(
        rows[1]["problem"]
            .as_str()
            .unwrap()
            .contains("no such user"),
        "{rows:#}"
    );
}

/// What is not known is null in JSON, never the "-" the table shows for it.
#[test]
fn status_json_writes_null_for_what_the_table_shows_as_a_dash() {
    let sb = office_locking_after(5).enroll_with_cli("alice", SECRET);
    let run = sb.pam_mfa(&["status", "--json", "alice", "nobody"]).run();
    let rows: Value = serde_json::from_str(&run.stdout).unwrap();
    for key in [
        "mode",
        "rule",
        "kind",
        "recovery_codes_left",
        "locked_until",
    ] {
        assert_eq!(rows[1][key], Value::Null, "{key}: {rows:#}");
    }
    assert!(rows[0]["mode"].is_string(), "{rows:#}");
    assert!(!run.stdout.contains("\"-\""), "{}", run.stdout);

    let table = sb.pam_mfa(&["status", "nobody"]).run();
    let row = table.stdout.lines().nth(1).unwrap_or_default();
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(words[..3], ["nobody", "-", "-"], "{table:?}");
}

// --- unlock, remove, recovery ----------------------------------------------------------------

#[test]
fn unlock_lets_an_account_locked_after_max_failures_log_in_again() {
    let sb = office_locking_after(3).enroll_with_cli("alice", SECRET);
    let totp = Totp::new(SECRET);
    lock_out(&sb, "alice", &totp);

    let run = sb.pam_mfa(&["unlock", "alice", "--yes"]).run();

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(status_json(&sb, &["alice"])[0]["locked_until"], Value::Null);
    avoid_step_boundary(30);
    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect(Pam::Success);
}

/// A state file cut short (here: a lock and the last used step) is damage, not a new
/// account: the login fails closed until an admin resets it, and the reset still treats
/// every code up to now as used.
#[test]
fn a_truncated_state_file_fails_closed_until_unlock_resets_it() {
    let sb = office_locking_after(3).enroll_with_cli("alice", SECRET);
    let totp = Totp::new(SECRET);
    lock_out(&sb, "alice", &totp);
    let state = sb.store().join("alice.state");
    fs::OpenOptions::new()
        .write(true)
        .open(&state)
        .unwrap()
        .set_len(100)
        .unwrap();

    avoid_step_boundary(30);
    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect(Pam::AuthinfoUnavail);
    assert_eq!(
        fs::metadata(&state).unwrap().len(),
        100,
        "the login grew it"
    );

    let run = sb.pam_mfa(&["unlock", "alice", "--yes"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(fs::metadata(&state).unwrap().len(), 4224);
    assert_eq!(status_json(&sb, &["alice"])[0]["locked_until"], Value::Null);
    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect(Pam::AuthErr);
}

#[test]
fn unlock_answered_no_is_cancelled_and_the_account_stays_locked() {
    let sb = office_locking_after(3).enroll_with_cli("alice", SECRET);
    let totp = Totp::new(SECRET);
    lock_out(&sb, "alice", &totp);

    let run = sb.pam_mfa(&["unlock", "alice"]).stdin("n\n").run();

    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("cancelled"), "{run:?}");
    assert!(!run.stdout.contains("unlocked"), "{run:?}");
    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect_not_prompted()
        .expect(PAM_MAXTRIES);
}

#[test]
fn remove_deletes_the_secret_so_a_required_account_is_refused_and_an_optional_one_ignored() {
    let sb = office_locking_after(5)
        .enroll_with_cli("alice", SECRET)
        .enroll_with_cli("bob", OTHER_SECRET);
    let files = |user: &str| {
        ["toml", "state", "recovery"].map(|ext| sb.store().join(format!("{user}.{ext}")))
    };
    for file in files("alice").iter().chain(files("bob").iter()) {
        assert!(file.is_file(), "{} after enrollment", file.display());
    }

    // What a killed pam-mfa leaves: alice's goes with her, another account's stays.
    let stale = sb.store().join(".alice.recovery.4242.0123456789ab.tmp");
    let others = sb.store().join(".bob.toml.4242.0123456789ab.tmp");
    common::write_file(&stale, "# left by a killed enroll\n", 0o600);
    common::write_file(&others, "# left by a killed enroll\n", 0o600);

    let declined = sb.pam_mfa(&["remove", "alice"]).stdin("n\n").run();
    assert_eq!(declined.code, Some(1), "{declined:?}");
    assert!(files("alice").iter().all(|f| f.is_file()), "removed anyway");

    for user in ["alice", "bob"] {
        let run = sb.pam_mfa(&["remove", user, "--yes"]).run();
        assert_eq!(run.code, Some(0), "{run:?}");
        for file in files(user) {
            assert!(
                fs::symlink_metadata(&file).is_err(),
                "{} left behind",
                file.display()
            );
        }
        if user == "alice" {
            assert!(
                fs::symlink_metadata(&stale).is_err(),
                "alice's temporary file stayed"
            );
            assert!(others.exists(), "bob's temporary file went with alice");
        }
    }
    assert!(
        fs::symlink_metadata(&others).is_err(),
        "bob's temporary file stayed"
    );

    avoid_step_boundary(30);
    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.login("bob").run().expect_not_prompted().expect_ignored();
    assert_eq!(status_json(&sb, &[]), Value::Array(Vec::new()));
}

#[test]
fn recovery_replaces_the_codes_so_old_ones_stop_and_new_ones_work_once() {
    let sb = office_locking_after(5);
    let enrolled = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    assert_eq!(enrolled.code, Some(0), "{enrolled:?}");
    let old = recovery_codes(&enrolled.stdout);
    assert_eq!(old.len(), 10, "{enrolled:?}");

    let run = sb.pam_mfa(&["recovery", "alice", "--yes"]).run();

    assert_eq!(run.code, Some(0), "{run:?}");
    let new = recovery_codes(&run.stdout);
    assert_eq!(new.len(), 10, "{run:?}");
    assert!(new.iter().all(|code| !old.contains(code)), "{run:?}");
    sb.login("alice").answer(&old[0]).run().expect(Pam::AuthErr);
    sb.login("alice").answer(&new[0]).run().expect(Pam::Success);
    sb.login("alice").answer(&new[0]).run().expect(Pam::AuthErr);
    assert_eq!(status_json(&sb, &["alice"])[0]["recovery_codes_left"], 9);
}

// --- repeatable and bulk admin work ----------------------------------------------------------

/// An import run again by a script: the same secret is "unchanged" (exit 0, nothing
/// written, no new recovery codes), another one a conflict (exit 1, nothing lost) unless
/// --force.
#[test]
fn import_uri_again_is_unchanged_with_the_same_secret_and_a_conflict_with_another() {
    let sb = office_locking_after(5);
    let uri = |secret: &str| format!("otpauth://totp/Example:bob?secret={secret}&issuer=Example\n");
    let first = sb
        .pam_mfa(&["import", "uri", "--user", "bob"])
        .stdin(&uri(OTHER_SECRET))
        .run();
    assert_eq!(first.code, Some(0), "{first:?}");
    let codes = recovery_codes(&first.stdout);
    assert_eq!(codes.len(), 10, "{first:?}");
    let record = fingerprint(&sb.record_path("bob"));
    let recovery = fingerprint(&sb.store().join("bob.recovery"));

    let again = sb
        .pam_mfa(&["import", "uri", "--user", "bob"])
        .stdin(&uri(&OTHER_SECRET.to_lowercase()))
        .run();
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(again.stdout.starts_with("unchanged bob: "), "{again:?}");
    assert!(recovery_codes(&again.stdout).is_empty(), "{again:?}");

    let other = sb
        .pam_mfa(&["import", "uri", "--user", "bob"])
        .stdin(&uri(SECRET))
        .run();
    expect_error(&other);
    assert!(
        other
            .stderr
            .contains("conflict bob: enrolled already with a different secret"),
        "{other:?}"
    );
    assert_eq!(fingerprint(&sb.record_path("bob")), record);
    assert_eq!(fingerprint(&sb.store().join("bob.recovery")), recovery);
    sb.login("bob").answer(&codes[0]).run().expect(Pam::Success);

    let forced = sb
        .pam_mfa(&["import", "uri", "--user", "bob", "--force"])
        .stdin(&uri(SECRET))
        .run();
    assert_eq!(forced.code, Some(0), "{forced:?}");
    avoid_step_boundary(30);
    sb.login("bob")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
}

#[test]
fn import_all_homes_again_reports_unchanged_and_conflicts_per_account_and_one_summary() {
    let users = [("carol", 1002), ("dave", 1003)];
    let mut sb = sandbox();
    for (name, uid) in users {
        sb = sb.user(name, uid);
    }
    let mut passwd = String::from("root:x:0:0:root:/nonexistent:/bin/sh\n");
    for (name, uid) in users {
        let home = sb.path(&format!("home/{name}"));
        fs::create_dir_all(&home).unwrap();
        sb.chown(&home, uid);
        sb.chmod(&home, 0o700);
        passwd.push_str(&format!(
            "{name}:x:{uid}:{uid}:{name}:{}:/bin/sh\n",
            home.display()
        ));
    }
    fs::write(sb.path("passwd"), passwd).unwrap();
    let ga = |name: &str| sb.path(&format!("home/{name}/.google_authenticator"));
    google_authenticator(GA_TOTP, &ga("carol"));
    sb.chown(&ga("carol"), 1002);
    let dave = google_authenticator(GA_TOTP, &ga("dave"));
    sb.chown(&ga("dave"), 1003);
    let import = || {
        sb.pam_mfa(&["import", "google-authenticator", "--all-homes"])
            .run()
    };
    let first = import();
    assert_eq!(first.code, Some(0), "{first:?}");

    let again = import();
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(again.stdout.contains("unchanged carol: "), "{again:?}");
    assert!(again.stdout.contains("unchanged dave: "), "{again:?}");
    assert!(
        again
            .stdout
            .contains("0 imported, 0 skipped, 2 unchanged, 0 conflict(s)"),
        "{again:?}"
    );

    // dave made a new secret at home: a conflict, reported, and his record kept.
    fs::remove_file(ga("dave")).unwrap();
    google_authenticator(GA_TOTP, &ga("dave"));
    sb.chown(&ga("dave"), 1003);
    let record = fingerprint(&sb.record_path("dave"));
    let conflict = import();
    assert_eq!(conflict.code, Some(1), "{conflict:?}");
    assert!(
        conflict.stdout.contains("unchanged carol: "),
        "{conflict:?}"
    );
    assert!(
        conflict
            .stdout
            .lines()
            .any(|l| l.starts_with("conflict  dave: ") && l.contains("--force")),
        "{conflict:?}"
    );
    assert!(
        conflict
            .stdout
            .contains("0 imported, 0 skipped, 1 unchanged, 1 conflict(s)"),
        "{conflict:?}"
    );
    let errors: Vec<&str> = conflict.stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{conflict:?}");
    assert!(
        errors[0].starts_with("pam-mfa: 1 conflict(s)"),
        "{conflict:?}"
    );
    assert_eq!(fingerprint(&sb.record_path("dave")), record);
    avoid_step_boundary(30);
    sb.login("dave")
        .answer(&Totp::new(&dave.secret).code())
        .run()
        .expect(Pam::Success);
}

/// `recovery --all-missing` over more accounts than a progress line is printed for:
/// codes for each account without any, a progress line every 5 accounts (stderr is not a
/// terminal here), one summary.
#[test]
fn recovery_all_missing_gives_codes_to_each_account_without_any_with_progress() {
    let mut sb = office_locking_after(5);
    let names: Vec<String> = (0..6).map(|i| format!("user{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        sb = sb.user(name, 2000 + i as u32);
    }
    // Records without recovery codes, as a PSKC import or a used-up set leaves them.
    for name in &names {
        sb = sb.enroll(name, SECRET);
    }
    let sb = sb.enroll_with_cli("alice", SECRET);
    let alice = fingerprint(&sb.store().join("alice.recovery"));

    let run = sb.pam_mfa(&["recovery", "--all-missing", "--yes"]).run();

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(recovery_codes(&run.stdout).len(), 6 * 10, "{run:?}");
    for name in &names {
        assert!(
            run.stdout.lines().any(|l| l == format!("{name}:")),
            "{run:?}"
        );
    }
    assert!(!run.stdout.contains("alice"), "{run:?}");
    assert_eq!(fingerprint(&sb.store().join("alice.recovery")), alice);
    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("pam-mfa: 5/6 accounts, about "))
        .collect();
    assert_eq!(progress.len(), 1, "{run:?}");
    assert!(progress[0].ends_with(" left"), "{run:?}");
    assert!(!run.stderr.contains('\r'), "{run:?}");
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "new recovery codes for 6 accounts"),
        "{run:?}"
    );
    let code = &recovery_codes(&run.stdout)[10];
    sb.login("user01").answer(code).run().expect(Pam::Success);

    let again = sb.pam_mfa(&["recovery", "--all-missing", "--yes"]).run();
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(recovery_codes(&again.stdout).is_empty(), "{again:?}");
}

#[test]
fn recovery_for_several_accounts_changes_nothing_when_one_is_not_enrolled() {
    let sb = office_locking_after(5)
        .enroll_with_cli("alice", SECRET)
        .enroll_with_cli("bob", OTHER_SECRET);
    let before = fingerprint(&sb.store().join("alice.recovery"));

    let refused = sb.pam_mfa(&["recovery", "alice", "nobody", "--yes"]).run();
    expect_error(&refused);
    assert_eq!(fingerprint(&sb.store().join("alice.recovery")), before);

    let run = sb.pam_mfa(&["recovery", "alice", "bob", "--yes"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(recovery_codes(&run.stdout).len(), 20, "{run:?}");
    assert!(run.stdout.lines().any(|l| l == "alice:"), "{run:?}");
    assert!(run.stdout.lines().any(|l| l == "bob:"), "{run:?}");
    assert_ne!(fingerprint(&sb.store().join("alice.recovery")), before);
}

// --- errors ----------------------------------------------------------------------------------

/// A record stays removable under the name it is stored by: an account since deleted from
/// the directory, or a record left under another spelling of one.
#[test]
fn remove_takes_a_record_whose_account_nss_no_longer_knows() {
    let sb = office_locking_after(5)
        .enroll("ghost", SECRET)
        .enroll("ALICE", OTHER_SECRET);
    let casefold = format!("{} libnss_wrapper.so", common::casefold().display());
    for user in ["ghost", "ALICE"] {
        let run = sb
            .pam_mfa(&["remove", user, "--yes"])
            .env("LD_PRELOAD", &casefold)
            .run();
        assert_eq!(run.code, Some(0), "{user}: {run:?}");
        assert!(
            fs::symlink_metadata(sb.record_path(user)).is_err(),
            "{user}"
        );
    }
}

#[test]
fn user_errors_are_one_line_on_stderr_with_exit_status_1() {
    let sb = office_locking_after(5).enroll_with_cli("alice", SECRET);
    let source = sb.path("alice.google_authenticator");
    google_authenticator(GA_TOTP, &source);
    let taken = sb.path("taken.png");
    common::write_file(&taken, "x", 0o600);
    let uri = format!("otpauth://totp/x:bob?secret={OTHER_SECRET}\n");
    let taken = text(&taken);
    let source = text(&source);

    let cases: [(&[&str], &str); 12] = [
        (&["unlock", "mallory", "--yes"], ""),
        (&["unlock", "bob", "--yes"], ""),
        (&["remove", "bob", "--yes"], ""),
        (&["remove", "mallory", "--yes"], ""),
        (&["recovery", "bob", "--yes"], ""),
        (&["status", "bad/name"], ""),
        (&["enroll", "bob", "--no-confirm", "--qr-png", taken], ""),
        (&["enroll", "alice", "--no-confirm"], ""),
        (&["import", "uri", "--user", "alice"], &uri),
        (&["import", "uri", "--user", "mallory"], &uri),
        (
            &[
                "import",
                "google-authenticator",
                "--user",
                "mallory",
                source,
            ],
            "",
        ),
        (
            &[
                "import",
                "google-authenticator",
                "--user",
                "bob",
                "/nonexistent/ga",
            ],
            "",
        ),
    ];
    for (args, stdin) in cases {
        let run = sb.pam_mfa(args).stdin(stdin).run();
        expect_error(&run);
    }

    // Commands that ask for input first: the error is still the last line, on its own.
    for (args, stdin) in [
        (
            &["import", "uri", "--user", "bob"][..],
            "https://example.com/\n",
        ),
        (&["import", "uri", "--user", "bob"], ""),
        (
            &["import", "uri", "--user", "bob"],
            "otpauth://totp/x:bob?secret=not-base32!\n",
        ),
    ] {
        let run = sb.pam_mfa(args).stdin(stdin).run();
        expect_error_after_prompt(&run);
    }
    expect_not_enrolled(&sb, "bob");

    fs::remove_file(sb.policy_path()).unwrap();
    expect_error(&sb.pam_mfa(&["status"]).run());
}

/// A question answered "n" on a pipe: the command says it cancelled on a line of its own.
#[test]
fn declined_confirmation_prints_its_error_on_a_line_of_its_own() {
    let sb = office_locking_after(5).enroll_with_cli("alice", SECRET);

    for command in ["unlock", "remove", "recovery"] {
        let run = sb.pam_mfa(&[command, "alice"]).stdin("n\n").run();
        expect_error_after_prompt(&run);
    }
    assert!(sb.record_path("alice").is_file());
}

#[test]
fn running_as_another_user_than_the_store_owner_is_refused_plainly() {
    let sb = office_locking_after(5).enroll_with_cli("alice", SECRET);
    let source = sb.path("alice.google_authenticator");
    google_authenticator(GA_TOTP, &source);
    // Let uid 65534 reach the policy and the account files, but not the store (0700 root).
    sb.chmod(&sb.path("."), 0o755);
    for file in [sb.policy_path(), sb.path("passwd"), sb.path("group")] {
        sb.chmod(&file, 0o644);
    }
    let record_before = fingerprint(&sb.record_path("alice"));
    let store_before = store_names(&sb);
    let uri = format!("otpauth://totp/x:bob?secret={OTHER_SECRET}\n");

    let cases: [(&[&str], &str); 8] = [
        (&["status"], ""),
        (&["status", "--json", "alice"], ""),
        (&["enroll", "bob", "--no-confirm"], ""),
        (&["unlock", "alice", "--yes"], ""),
        (&["remove", "alice", "--yes"], ""),
        (&["recovery", "alice", "--yes"], ""),
        (&["import", "uri", "--user", "bob"], &uri),
        (
            &[
                "import",
                "google-authenticator",
                "--user",
                "alice",
                text(&source),
            ],
            "",
        ),
    ];
    for (args, stdin) in cases {
        let run = as_nobody(&sb, args, stdin);
        expect_error(&run);
        assert!(
            run.stderr.contains("as root") || run.stderr.contains("owner"),
            "says who must run it: {run:?}"
        );
    }
    assert_eq!(fingerprint(&sb.record_path("alice")), record_before);
    assert_eq!(store_names(&sb), store_before);

    // Root, against a store that uid 1000 owns: told to run as that owner.
    sb.chown(&sb.store(), 1000);
    let run = sb.pam_mfa(&["status"]).run();
    expect_error(&run);
    assert!(run.stderr.contains("uid 1000"), "{run:?}");
}

// --- helpers -------------------------------------------------------------------------------

/// The admin command with `args` and then `more`.
fn pam_mfa<'a>(sb: &'a Sandbox, args: &[&str], more: &[&str]) -> Cli<'a> {
    let all: Vec<&str> = args.iter().chain(more).copied().collect();
    sb.pam_mfa(&all)
}

/// A path as the `&str` the CLI helper takes.
fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `otpauth://` line of the command's output.
fn printed_uri(run: &Finished) -> String {
    run.stdout
        .lines()
        .find(|line| line.starts_with("otpauth://"))
        .unwrap_or_else(|| panic!("no otpauth:// URI on stdout: {run:?}"))
        .to_string()
}

/// Exit status 1 and one line on stderr starting `pam-mfa: `; no panic.
fn expect_error(run: &Finished) {
    assert_eq!(run.code, Some(1), "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error expected: {run:?}");
    assert!(lines[0].starts_with("pam-mfa: "), "{run:?}");
    expect_no_panic(run);
}

/// Where the command asked something first (on stderr): exit status 1 and, last, one line
/// starting `pam-mfa: `.
fn expect_error_after_prompt(run: &Finished) {
    assert_eq!(run.code, Some(1), "{run:?}");
    let errors = run.stderr.matches("pam-mfa: ").count();
    assert_eq!(errors, 1, "one error expected: {run:?}");
    let last = run.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("pam-mfa: "),
        "the error should be a line of its own, last: {run:?}"
    );
    expect_no_panic(run);
}

fn expect_no_panic(run: &Finished) {
    for sign in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "Error {",
        "Os {",
    ] {
        assert!(!run.stderr.contains(sign), "{sign}: {run:?}");
    }
}

fn expect_not_enrolled(sb: &Sandbox, user: &str) {
    for ext in ["toml", "state", "recovery"] {
        let path = sb.store().join(format!("{user}.{ext}"));
        assert!(
            fs::symlink_metadata(&path).is_err(),
            "{} written",
            path.display()
        );
    }
}

/// The names in the store directory, sorted.
fn store_names(sb: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(sb.store())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A file's bytes and what `ls -l` would show of it: if any of it changes, the file did.
fn fingerprint(path: &Path) -> (Vec<u8>, u32, u32, u64, i64, i64) {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (
        fs::read(path).unwrap(),
        meta.mode(),
        meta.uid(),
        meta.nlink(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

fn status_json(sb: &Sandbox, users: &[&str]) -> Value {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(users);
    let run = sb.pam_mfa(&args).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"))
}

/// `YYYY-MM-DD hh:mm:ss UTC`, as three words.
fn is_utc_time(words: &[&str]) -> bool {
    let shape = |word: &str, pattern: &str| {
        word.len() == pattern.len()
            && word.bytes().zip(pattern.bytes()).all(|(w, p)| {
                if p == b'9' {
                    w.is_ascii_digit()
                } else {
                    w == p
                }
            })
    };
    words.len() == 3
        && shape(words[0], "9999-99-99")
        && shape(words[1], "99:99:99")
        && words[2] == "UTC"
}

/// Locks `user` out with `max_failures` (3) wrong codes; a valid code then gets
/// PAM_MAXTRIES without a prompt.
fn lock_out(sb: &Sandbox, user: &str, totp: &Totp) {
    let wrong = totp.wrong_code();
    for _ in 0..3 {
        sb.login(user).answer(&wrong).run().expect(Pam::AuthErr);
    }
    sb.login(user)
        .answer(&totp.code())
        .run()
        .expect_not_prompted()
        .expect(PAM_MAXTRIES);
    assert!(
        status_json(sb, &[user])[0]["locked_until"].is_u64(),
        "status shows the lock"
    );
}

/// `oathtool --hotp -b -c COUNTER SECRET`.
fn hotp(secret: &str, counter: u64) -> String {
    let output = Command::new("oathtool")
        .args(["--hotp", "-b", "-c", &counter.to_string(), secret])
        .output()
        .expect("run oathtool");
    assert!(output.status.success(), "oathtool: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// What google-authenticator wrote.
struct GoogleFile {
    text: String,
    /// The base32 secret: the file's first line.
    secret: String,
    /// The 8-digit scratch codes: its last lines.
    scratch: Vec<String>,
}

/// Runs the real `google-authenticator OPTIONS -s FILE` (as root: FILE is root's, 0400).
fn google_authenticator(options: &[&str], file: &Path) -> GoogleFile {
    let output: Output = Command::new("google-authenticator")
        .args(options)
        .arg("-s")
        .arg(file)
        .output()
        .expect("run google-authenticator (Debian: libpam-google-authenticator)");
    assert!(output.status.success(), "google-authenticator: {output:?}");
    let text = fs::read_to_string(file).expect("google-authenticator wrote its file");
    let secret = text
        .lines()
        .next()
        .expect("a secret line")
        .trim()
        .to_string();
    let scratch: Vec<String> = text
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(String::from)
        .collect();
    assert!(!scratch.is_empty(), "no scratch codes in\n{text}");
    GoogleFile {
        text,
        secret,
        scratch,
    }
}

/// Runs the admin command as uid and gid 65534 (nobody), with no supplementary groups.
fn as_nobody(sb: &Sandbox, args: &[&str], stdin: &str) -> Finished {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cli_path())
        .args(args)
        .arg("--config")
        .arg(sb.policy_path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NSS_WRAPPER_PASSWD", sb.path("passwd"))
        .env("NSS_WRAPPER_GROUP", sb.path("group"))
        .env("LD_PRELOAD", "libnss_wrapper.so")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run setpriv");
    let mut pipe = child.stdin.take().unwrap();
    let _ = pipe.write_all(stdin.as_bytes());
    drop(pipe);
    let output = child.wait_with_output().expect("wait for setpriv");
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

// --- QR codes as images ----------------------------------------------------------------------

/// `zbarimg -q --raw FILE`: the text of the one QR code in the image.
fn zbar(image: &Path) -> String {
    let output = Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(image)
        .output()
        .expect("run zbarimg (Debian: zbar-tools)");
    assert!(
        output.status.success(),
        "zbarimg found no code in {}: {output:?}",
        image.display()
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim_end_matches('\n')
        .to_string()
}

/// Writes dark (true) and light modules as a binary PGM, 6 pixels a module, inside a light
/// border of 4 modules.
fn write_pgm(path: &Path, modules: &[Vec<bool>]) {
    const SCALE: usize = 6;
    const BORDER: usize = 4;
    let height = modules.len();
    let width = modules[0].len();
    assert!(modules.iter().all(|row| row.len() == width), "ragged rows");
    let (w, h) = ((width + 2 * BORDER) * SCALE, (height + 2 * BORDER) * SCALE);
    let mut image = format!("P5\n{w} {h}\n255\n").into_bytes();
    for py in 0..h {
        for px in 0..w {
            let (x, y) = (px / SCALE, py / SCALE);
            let dark = (BORDER..BORDER + width).contains(&x)
                && (BORDER..BORDER + height).contains(&y)
                && modules[y - BORDER][x - BORDER];
            image.push(if dark { 0 } else { 255 });
        }
    }
    fs::write(path, image).unwrap();
}

/// The modules of the half-block QR code (src/qr.rs: the light modules are drawn): `█` both
/// light, `▀` light over dark, `▄` dark over light, a space both dark. Each character is
/// two module rows.
fn half_block_modules(stdout: &str) -> Vec<Vec<bool>> {
    let block: Vec<&str> = stdout
        .lines()
        .take_while(|l| !l.starts_with("otpauth://"))
        .filter(|l| !l.is_empty() && l.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' ')))
        .collect();
    assert!(block.len() > 10, "no half-block QR code in:\n{stdout}");
    let mut rows = Vec::new();
    for line in block {
        let (top, bottom): (Vec<bool>, Vec<bool>) = line
            .chars()
            .map(|c| match c {
                '█' => (false, false),
                '▀' => (false, true),
                '▄' => (true, false),
                _ => (true, true),
            })
            .unzip();
        rows.push(top);
        rows.push(bottom);
    }
    rows
}

/// The modules of the ANSI QR code: each `ESC[FG;BGm▀` is a top module in the foreground
/// colour (30 black, 97 white) over a bottom one in the background colour (40, 107).
fn ansi_modules(stdout: &str) -> Vec<Vec<bool>> {
    let mut rows = Vec::new();
    for line in stdout.lines().filter(|l| l.contains("\x1b[")) {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for cell in line.split('▀').filter(|c| c.contains(';')) {
            let colours = cell
                .rsplit("\x1b[")
                .next()
                .and_then(|c| c.strip_suffix('m'))
                .unwrap_or_else(|| panic!("cell {cell:?} in {line:?}"));
            let (fg, bg) = colours.split_once(';').expect("FG;BG");
            top.push(match fg {
                "30" => true,
                "97" => false,
                other => panic!("foreground {other} in {line:?}"),
            });
            bottom.push(match bg {
                "40" => true,
                "107" => false,
                other => panic!("background {other} in {line:?}"),
            });
        }
        rows.push(top);
        rows.push(bottom);
    }
    assert!(rows.len() > 20, "no ANSI QR code in:\n{stdout:?}");
    rows
}

/// The modules of the SVG the command writes: an XML document with a viewBox of the code and
/// its quiet zone, and one path of unit squares `Mx yh1v1h-1z`, one per dark module.
fn svg_modules(document: &str) -> Vec<Vec<bool>> {
    assert!(document.starts_with("<?xml"), "{document}");
    assert!(document.trim_end().ends_with("</svg>"), "{document}");
    assert_eq!(document.matches("<svg ").count(), 1, "{document}");
    assert!(document.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    let view_box = document
        .split("viewBox=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a viewBox");
    let numbers: Vec<usize> = view_box
        .split(' ')
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert_eq!(numbers[..2], [0, 0], "{view_box}");
    let (width, height) = (numbers[2], numbers[3]);
    let path = document
        .split(" d=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a path");
    let mut modules = vec![vec![false; width]; height];
    for square in path.split('M').filter(|s| !s.is_empty()) {
        let corner = square
            .strip_suffix("h1v1h-1z")
            .unwrap_or_else(|| panic!("not a unit square: M{square}"));
        let (x, y) = corner.split_once(' ').expect("x y");
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        modules[y][x] = true;
    }
    modules
}
