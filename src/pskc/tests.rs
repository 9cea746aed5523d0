//! The RFC 6030 examples and a vendor-style file (tests/fixtures/pskc/), read end to end.

#![forbid(unsafe_code)]

use super::*;
use crate::otp::Algorithm;
use crate::store::Kind;

const FIGURE2: &str = include_str!("../../tests/fixtures/pskc/rfc6030-figure2.pskcxml");
const FIGURE3: &str = include_str!("../../tests/fixtures/pskc/rfc6030-figure3.pskcxml");
const FIGURE4: &str = include_str!("../../tests/fixtures/pskc/rfc6030-figure4.pskcxml");
const FIGURE5: &str = include_str!("../../tests/fixtures/pskc/rfc6030-figure5.pskcxml");
const FIGURE6: &str = include_str!("../../tests/fixtures/pskc/rfc6030-figure6.pskcxml");
const FIGURE7: &str = include_str!("../../tests/fixtures/pskc/rfc6030-figure7.pskcxml");
const VENDOR: &str = include_str!("../../tests/fixtures/pskc/vendor-tokens.pskcxml");

const FIGURE6_KEY: &[u8] = b"12345678901234567890123456789012";
const VENDOR_KEY: &[u8] = b"5f1c2a9b7e3d4c6a8b0e1f2d3c4b5a69";
/// 2026-01-01T00:00:00Z.
const NOW: u64 = 1_767_225_600;

fn tokens(text: &str, unlock: Unlock<'_>) -> Result<Vec<Token>, PskcError> {
    Xml::parse(text)?.container()?.tokens(unlock, NOW)
}

fn key(hex: &[u8]) -> Zeroizing<Vec<u8>> {
    parse_key_file(hex).unwrap()
}

fn ready(token: &Token) -> &Import {
    match &token.outcome {
        Outcome::Ready(import) => import,
        Outcome::Skip(why) => panic!("{:?} skipped: {why}", token.identity()),
    }
}

fn skipped(token: &Token) -> &str {
    match &token.outcome {
        Outcome::Ready(_) => panic!("{:?} was not skipped", token.identity()),
        Outcome::Skip(why) => why,
    }
}

fn by_serial<'t>(tokens: &'t [Token], serial: &str) -> &'t Token {
    tokens
        .iter()
        .find(|t| t.serial.as_deref() == Some(serial))
        .unwrap_or_else(|| panic!("no token {serial}"))
}

#[test]
fn figure3_plain_hotp_imports_with_its_serial_and_manufacturer() {
    let xml = Xml::parse(FIGURE3).unwrap();
    let container = xml.container().unwrap();
    assert_eq!(container.protection(), Protection::Plain);
    let tokens = container.tokens(Unlock::Nothing, NOW).unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].identity(), Some("987654321"));
    assert_eq!(tokens[0].key_id.as_deref(), Some("12345678"));
    let import = ready(&tokens[0]);
    assert_eq!(import.record.kind, Kind::Hotp);
    assert_eq!(import.record.digits.get(), 8);
    assert_eq!(import.record.algorithm, Algorithm::Sha1);
    assert_eq!(import.record.secret.as_bytes(), b"12345678901234567890");
    assert_eq!(import.counter, 0);
    assert_eq!(import.record.serial.as_ref().unwrap().as_str(), "987654321");
    assert_eq!(
        import.record.manufacturer.as_ref().unwrap().as_str(),
        "Manufacturer"
    );
}

#[test]
fn figure2_secret_is_too_short_and_the_key_id_stands_for_the_serial() {
    let tokens = tokens(FIGURE2, Unlock::Nothing).unwrap();
    assert_eq!(tokens[0].identity(), Some("12345678"));
    assert!(
        skipped(&tokens[0]).contains("32 bits"),
        "{}",
        skipped(&tokens[0])
    );
}

#[test]
fn figure4_without_a_secret_is_skipped() {
    let tokens = tokens(FIGURE4, Unlock::Nothing).unwrap();
    assert!(skipped(&tokens[0]).contains("KeyReference"));
}

#[test]
fn figure5_local_pin_imports_and_the_pin_key_is_not_an_otp_key() {
    let tokens = tokens(FIGURE5, Unlock::Nothing).unwrap();
    assert_eq!(tokens.len(), 2);
    let import = ready(&tokens[0]);
    assert!(import.notes.iter().any(|n| n.contains("PIN")));
    assert!(skipped(&tokens[1]).contains("not HOTP or TOTP"));
}

#[test]
fn figure6_pre_shared_key_decrypts_after_the_mac_checks() {
    let xml = Xml::parse(FIGURE6).unwrap();
    let container = xml.container().unwrap();
    assert_eq!(
        container.protection(),
        Protection::PreSharedKey {
            name: Some("Pre-shared-key")
        }
    );
    let key = key(FIGURE6_KEY);
    let tokens = container.tokens(Unlock::Key(&key), NOW).unwrap();
    let import = ready(&tokens[0]);
    assert_eq!(import.record.secret.as_bytes(), b"12345678901234567890");
    assert_eq!(import.record.digits.get(), 8);
    assert_eq!(import.counter, 0);
}

#[test]
fn figure6_wrong_key_missing_key_and_altered_values_are_errors() {
    let mut wrong = key(FIGURE6_KEY);
    wrong[15] ^= 1;
    assert_eq!(
        tokens(FIGURE6, Unlock::Key(&wrong)).unwrap_err(),
        PskcError::WrongKey
    );
    assert!(matches!(
        tokens(FIGURE6, Unlock::Nothing).unwrap_err(),
        PskcError::Key(_)
    ));
    assert!(matches!(
        tokens(FIGURE6, Unlock::Password(b"qwerty")).unwrap_err(),
        PskcError::Key(_)
    ));
    let key = key(FIGURE6_KEY);
    let altered_mac = FIGURE6.replace(
        "Su+NvtQfmvfJzF6bmQiJqoLRExc=",
        "Su+OvtQfmvfJzF6bmQiJqoLRExc=",
    );
    assert!(matches!(
        tokens(&altered_mac, Unlock::Key(&key)).unwrap_err(),
        PskcError::MacMismatch { .. }
    ));
    let altered_cipher = FIGURE6.replace("AAECAwQFBgcICQoLDA0OD+cI", "AAECAwQFBgcICQoLDA0OD+cJ");
    assert!(matches!(
        tokens(&altered_cipher, Unlock::Key(&key)).unwrap_err(),
        PskcError::MacMismatch { .. }
    ));
    let no_mac = FIGURE6.replace(
        "<ValueMAC>Su+NvtQfmvfJzF6bmQiJqoLRExc=\n                    </ValueMAC>",
        "",
    );
    assert!(matches!(
        tokens(&no_mac, Unlock::Key(&key)).unwrap_err(),
        PskcError::Unsupported { .. }
    ));
}

#[test]
fn a_plain_secret_in_an_encrypted_file_is_refused() {
    let swapped = FIGURE6.replace(
        "<EncryptedValue>",
        "<PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue><Ignored>",
    );
    let swapped = swapped.replace("</EncryptedValue>", "</Ignored>");
    let swapped = swapped.replace(
        "<ValueMAC>Su+NvtQfmvfJzF6bmQiJqoLRExc=\n                    </ValueMAC>",
        "",
    );
    let key = key(FIGURE6_KEY);
    let tokens = tokens(&swapped, Unlock::Key(&key)).unwrap();
    assert!(skipped(&tokens[0]).contains("in the clear"));
}

#[test]
fn figure7_password_derives_the_key() {
    let xml = Xml::parse(FIGURE7).unwrap();
    let container = xml.container().unwrap();
    assert_eq!(
        container.protection(),
        Protection::Password {
            name: Some("My Password 1")
        }
    );
    let tokens = container.tokens(Unlock::Password(b"qwerty"), NOW).unwrap();
    let import = ready(&tokens[0]);
    assert_eq!(import.record.secret.as_bytes(), b"12345678901234567890");
    assert_eq!(tokens[0].manufacturer.as_deref(), Some("TokenVendorAcme"));
    let wrong = tokens_error(FIGURE7, Unlock::Password(b"qwertz"));
    assert!(
        matches!(wrong, PskcError::WrongKey | PskcError::MacMismatch { .. }),
        "{wrong:?}"
    );
}

fn tokens_error(text: &str, unlock: Unlock<'_>) -> PskcError {
    tokens(text, unlock).unwrap_err()
}

#[test]
fn vendor_file_tokens_import_or_say_why_not() {
    let key = key(VENDOR_KEY);
    let tokens = tokens(VENDOR, Unlock::Key(&key)).unwrap();
    assert_eq!(tokens.len(), 7);

    let totp60 = ready(by_serial(&tokens, "1001"));
    assert_eq!(totp60.record.kind, Kind::Totp);
    assert_eq!(totp60.record.period, 60);
    assert_eq!(totp60.record.digits.get(), 6);
    assert_eq!(
        totp60.record.manufacturer.as_ref().unwrap().as_str(),
        "Example Token Works"
    );

    let sha256 = ready(by_serial(&tokens, "1002"));
    assert_eq!(sha256.record.algorithm, Algorithm::Sha256);
    assert_eq!(sha256.record.digits.get(), 8);
    assert_eq!(sha256.record.period, 30);
    assert_eq!(sha256.record.secret.as_bytes().len(), 32);

    let hotp = ready(by_serial(&tokens, "1003"));
    assert_eq!(hotp.record.kind, Kind::Hotp);
    assert_eq!(hotp.counter, 5, "the encrypted counter");

    for (serial, word) in [
        ("1004", "T0"),
        ("1005", "PIN"),
        ("1006", "expired"),
        ("1007", "10 digits"),
    ] {
        let why = skipped(by_serial(&tokens, serial));
        assert!(why.contains(word), "{serial}: {why}");
    }
}

#[test]
fn dates_are_read_against_the_clock() {
    let key = key(VENDOR_KEY);
    let xml = Xml::parse(VENDOR).unwrap();
    let container = xml.container().unwrap();
    // Before 1001's StartDate (2020-01-01) it is not valid yet.
    let early = container.tokens(Unlock::Key(&key), 1_500_000_000).unwrap();
    assert!(skipped(by_serial(&early, "1001")).contains("not valid before"));
    ready(by_serial(&early, "1006"));
}

#[test]
fn malformed_documents_are_errors_that_name_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("", "XML"),
        ("<KeyContainer", "XML"),
        ("<html/>", "not a PSKC file"),
        (
            "<KeyContainer xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"/>",
            "Version",
        ),
        (
            "<KeyContainer Version=\"2.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"/>",
            "version",
        ),
        (
            "<!DOCTYPE x [<!ENTITY a \"b\">]><KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"/>",
            "XML",
        ),
    ];
    for (text, word) in cases {
        let err = match Xml::parse(text).and_then(|xml| xml.container().map(|_| ())) {
            Err(e) => e,
            Ok(()) => panic!("{text:?} parsed"),
        };
        assert!(err.to_string().contains(word), "{text:?}: {err}");
    }
    let twice = FIGURE3.replace(
        "<Counter>",
        "<Secret><PlainValue>MTIzNA==</PlainValue></Secret><Counter>",
    );
    let err = tokens(&twice, Unlock::Nothing).unwrap_err();
    assert!(err.to_string().contains("more than one Secret"), "{err}");
    let bad_counter = FIGURE3.replace(
        "<PlainValue>0</PlainValue>",
        "<PlainValue>zero</PlainValue>",
    );
    assert!(matches!(
        tokens(&bad_counter, Unlock::Nothing).unwrap_err(),
        PskcError::Malformed { line: 29, .. }
    ));
    let bad_base64 = FIGURE3.replace(
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=",
        "MTIzNDU2Nzg5MDEy!zQ1Njc4OTA=",
    );
    assert!(matches!(
        tokens(&bad_base64, Unlock::Nothing).unwrap_err(),
        PskcError::Malformed { .. }
    ));
}

#[test]
fn secrets_written_with_entities_are_refused_rather_than_copied() {
    let entity = FIGURE3.replace(
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=",
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA&#61;",
    );
    let err = tokens(&entity, Unlock::Nothing).unwrap_err();
    assert!(matches!(err, PskcError::Unsupported { .. }), "{err:?}");
    let cdata = FIGURE3.replace(
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=",
        "<![CDATA[MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=]]>",
    );
    assert!(tokens(&cdata, Unlock::Nothing).is_err());
}

#[test]
fn profiles_pam_mfa_cannot_honour_are_skipped() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "Encoding=\"DECIMAL\"",
            "Encoding=\"HEXADECIMAL\"",
            "HEXADECIMAL",
        ),
        ("Length=\"8\"", "Length=\"5\"", "5 digits"),
        (
            "Encoding=\"DECIMAL\"/>",
            "Encoding=\"DECIMAL\" CheckDigits=\"true\"/>",
            "check digit",
        ),
        (
            "<ResponseFormat",
            "<Suite>HMAC-MD5</Suite><ResponseFormat",
            "MD5",
        ),
        (
            "<ResponseFormat",
            "<ChallengeFormat Encoding=\"DECIMAL\" Min=\"6\" Max=\"8\"/><ResponseFormat",
            "challenges",
        ),
        (
            "<UserId>UID",
            "<Policy><NumberOfTransactions>10</NumberOfTransactions></Policy><UserId>UID",
            "NumberOfTransactions",
        ),
        (
            "<UserId>UID",
            "<Policy><KeyUsage>CR</KeyUsage></Policy><UserId>UID",
            "key usage",
        ),
        (
            "<UserId>UID",
            "<Policy><PINPolicy PINUsageMode=\"Append\"/></Policy><UserId>UID",
            "PIN",
        ),
    ];
    for (from, to, word) in cases {
        let text = FIGURE3.replacen(from, to, 1);
        assert_ne!(text, FIGURE3, "{from}");
        let tokens = tokens(&text, Unlock::Nothing).unwrap();
        let why = skipped(&tokens[0]);
        assert!(why.contains(word), "{to}: {why}");
    }
}

#[test]
fn errors_never_show_a_secret_or_key() {
    let key = key(FIGURE6_KEY);
    let altered = FIGURE6.replace(
        "Su+NvtQfmvfJzF6bmQiJqoLRExc=",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    let shown = tokens(&altered, Unlock::Key(&key)).unwrap_err().to_string();
    for secret in ["1234567890", "MTIz", "ESIz", "AAECAw", "Su+N"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let token = &tokens(FIGURE3, Unlock::Nothing).unwrap()[0];
    let debug = format!("{token:?}");
    assert!(
        !debug.contains("1234567890") && !debug.contains("MTIz"),
        "{debug}"
    );
}
