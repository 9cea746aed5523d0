//! From XML to the parts of a PSKC document pam-mfa uses. Secrets and cipher values are
//! taken only where the parser left them in place in the input, so a secret stays in the
//! caller's zeroizing buffer until it is decoded into zeroizing memory of its own. Elements
//! are matched by local name under the RFC 6030 root, as vendor files are loose about the
//! namespaces of the XML Encryption parts.

#![forbid(unsafe_code)]

use roxmltree::{Document, Node, ParsingOptions, StringStorage};

use super::crypto::HmacHash;
use super::PskcError;

/// The namespace of RFC 6030.
pub const NAMESPACE: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
/// The PBKDF2 algorithm URI of RFC 6030 section 6.2.
const PBKDF2: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2";
/// Most elements a document may have: some 40 per token, for tens of thousands of tokens.
const NODES_LIMIT: u32 = 5_000_000;

/// A parsed document: how its values are protected and its key packages.
#[derive(Debug)]
pub struct Container<'a> {
    pub encryption: Encryption<'a>,
    pub mac: Option<MacMethod<'a>>,
    pub packages: Vec<Package<'a>>,
}

/// The document's `<EncryptionKey>`.
#[derive(Debug)]
pub enum Encryption<'a> {
    /// No `<EncryptionKey>`: values are in the clear.
    None,
    /// `<ds:KeyName>`: a key the vendor and the admin share.
    PreShared { name: Option<&'a str> },
    /// `<xenc11:DerivedKey>` with PBKDF2: a key derived from a password.
    Password(Pbkdf2Params<'a>),
}

#[derive(Debug)]
pub struct Pbkdf2Params<'a> {
    /// Base64, as written.
    pub salt: &'a str,
    pub iterations: u32,
    /// Bytes of key to derive, when the document says.
    pub key_length: Option<usize>,
    pub prf: HmacHash,
    /// `<MasterKeyName>`: which password, in the vendor's words.
    pub name: Option<&'a str>,
}

/// `<MACMethod>`: the MAC algorithm and its key, itself encrypted with the document key.
#[derive(Debug)]
pub struct MacMethod<'a> {
    pub hash: HmacHash,
    /// None when the document gives no `<MACKey>`: the drafts before RFC 6030 used the
    /// encryption key itself.
    pub key: Option<Encrypted<'a>>,
}

/// An encrypted value: `<xenc:EncryptionMethod>` and `<xenc:CipherValue>`, with the
/// `<ValueMAC>` beside it when there is one.
#[derive(Debug)]
pub struct Encrypted<'a> {
    pub algorithm: &'a str,
    /// Base64 of the IV and the cipher text.
    pub cipher_value: &'a str,
    /// Base64 of the MAC over the IV and the cipher text.
    pub mac: Option<&'a str>,
    pub line: u32,
}

/// A data element's value: `<PlainValue>` or `<EncryptedValue>`.
#[derive(Debug)]
pub enum Value<'a> {
    Plain { text: &'a str, line: u32 },
    Encrypted(Encrypted<'a>),
}

impl Value<'_> {
    pub fn line(&self) -> u32 {
        match self {
            Value::Plain { line, .. } => *line,
            Value::Encrypted(encrypted) => encrypted.line,
        }
    }
}

/// `<KeyPackage>`: a device and (at most) one key on it.
#[derive(Debug)]
pub struct Package<'a> {
    pub manufacturer: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub device_start: Option<&'a str>,
    pub device_expiry: Option<&'a str>,
    pub key: Option<Key<'a>>,
    pub line: u32,
}

/// `<Key>`: the algorithm, its parameters, the data and the policy.
#[derive(Debug)]
pub struct Key<'a> {
    pub id: &'a str,
    pub algorithm: Option<&'a str>,
    pub suite: Option<&'a str>,
    pub challenge: bool,
    pub response: Option<ResponseFormat<'a>>,
    /// `<KeyReference>`: the secret is derived from a master key the vendor holds.
    pub key_reference: bool,
    pub secret: Option<Value<'a>>,
    pub counter: Option<Value<'a>>,
    pub time: Option<Value<'a>>,
    pub time_interval: Option<Value<'a>>,
    pub time_drift: Option<Value<'a>>,
    pub policy: Policy<'a>,
    pub line: u32,
}

#[derive(Debug)]
pub struct ResponseFormat<'a> {
    pub length: Option<&'a str>,
    pub encoding: Option<&'a str>,
    pub check_digits: Option<&'a str>,
}

/// `<Policy>`: what the key may be used for and when.
#[derive(Debug, Default)]
pub struct Policy<'a> {
    pub start: Option<&'a str>,
    pub expiry: Option<&'a str>,
    /// `PINUsageMode` of `<PINPolicy>`, when there is one (`Some("")` if it has none).
    pub pin_usage: Option<&'a str>,
    pub key_usage: Vec<&'a str>,
    pub transactions: Option<&'a str>,
}

/// A well-formed XML document (no DTD), its tree borrowing from the input.
pub struct Xml<'a>(Document<'a>);

impl<'a> Xml<'a> {
    pub fn parse(text: &'a str) -> Result<Xml<'a>, PskcError> {
        let options = ParsingOptions {
            allow_dtd: false,
            nodes_limit: NODES_LIMIT,
            ..ParsingOptions::default()
        };
        Document::parse_with_options(text, options)
            .map(Xml)
            .map_err(|e| PskcError::Xml(e.to_string()))
    }

    /// The PSKC parts. Errors name the line; none holds a value from the document but
    /// element and algorithm names.
    pub fn container(&self) -> Result<Container<'_>, PskcError> {
        let walker = Walker::new(&self.0);
        walker.container(self.0.root_element())
    }
}

struct Walker<'d, 'a> {
    /// Where each line of the text starts, for line numbers in messages.
    line_starts: Vec<usize>,
    document: std::marker::PhantomData<&'d Document<'a>>,
}

impl<'d, 'a> Walker<'d, 'a> {
    fn new(document: &'d Document<'a>) -> Self {
        let text = document.input_text();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Walker {
            line_starts,
            document: std::marker::PhantomData,
        }
    }

    /// The line (from 1) of `node`: a binary search, where roxmltree's text_pos_at scans
    /// the text from its start, once per key package of a file with tens of thousands.
    fn line(&self, node: Node<'d, 'a>) -> u32 {
        let at = node.range().start;
        let line = self.line_starts.partition_point(|start| *start <= at);
        u32::try_from(line).unwrap_or(u32::MAX)
    }

    fn malformed(&self, node: Node<'d, 'a>, message: impl Into<String>) -> PskcError {
        PskcError::Malformed {
            line: self.line(node),
            message: message.into(),
        }
    }

    fn unsupported(&self, node: Node<'d, 'a>, message: impl Into<String>) -> PskcError {
        PskcError::Unsupported {
            line: self.line(node),
            message: message.into(),
        }
    }

    fn container(&self, root: Node<'d, 'a>) -> Result<Container<'d>, PskcError> {
        let name = root.tag_name();
        if name.name() != "KeyContainer" || name.namespace() != Some(NAMESPACE) {
            return Err(PskcError::NotPskc(format!(
                "the root element is {}{}, not an RFC 6030 KeyContainer",
                name.namespace()
                    .map_or(String::new(), |ns| format!("{{{ns}}}")),
                name.name()
            )));
        }
        match root.attribute("Version") {
            Some("1.0") => {}
            Some(other) => {
                return Err(
                    self.unsupported(root, format!("PSKC version {other:?}; pam-mfa reads 1.0"))
                )
            }
            None => return Err(self.malformed(root, "KeyContainer has no Version")),
        }
        let encryption = match self.only_child(root, "EncryptionKey")? {
            Some(node) => self.encryption_key(node)?,
            None => Encryption::None,
        };
        let mac = match self.only_child(root, "MACMethod")? {
            Some(node) => Some(self.mac_method(node)?),
            None => None,
        };
        let packages = elements(root, "KeyPackage")
            .map(|node| self.package(node))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Container {
            encryption,
            mac,
            packages,
        })
    }

    fn encryption_key(&self, node: Node<'d, 'a>) -> Result<Encryption<'d>, PskcError> {
        let mut found = None;
        for child in node.children().filter(Node::is_element) {
            let this = match child.tag_name().name() {
                "KeyName" => Encryption::PreShared {
                    name: self.text(child)?,
                },
                "DerivedKey" => Encryption::Password(self.derived_key(child)?),
                "X509Data" => {
                    return Err(self.unsupported(
                        child,
                        "the file is encrypted to a certificate; pam-mfa reads files encrypted with a pre-shared key or a password",
                    ))
                }
                other => {
                    return Err(self.unsupported(child, format!("EncryptionKey holds {other}")))
                }
            };
            if found.replace(this).is_some() {
                return Err(self.malformed(child, "EncryptionKey names more than one key"));
            }
        }
        found.ok_or_else(|| self.malformed(node, "EncryptionKey is empty"))
    }

    fn derived_key(&self, node: Node<'d, 'a>) -> Result<Pbkdf2Params<'d>, PskcError> {
        let method = self
            .only_child(node, "KeyDerivationMethod")?
            .ok_or_else(|| self.malformed(node, "DerivedKey has no KeyDerivationMethod"))?;
        let algorithm = method.attribute("Algorithm").unwrap_or("");
        if algorithm != PBKDF2 {
            return Err(self.unsupported(
                method,
                format!("key derivation {algorithm:?}; pam-mfa knows PBKDF2"),
            ));
        }
        let params = self
            .only_child(method, "PBKDF2-params")?
            .ok_or_else(|| self.malformed(method, "no PBKDF2-params"))?;
        let salt_node = self
            .only_child(params, "Salt")?
            .ok_or_else(|| self.malformed(params, "PBKDF2-params has no Salt"))?;
        let salt = self
            .only_child(salt_node, "Specified")?
            .ok_or_else(|| self.unsupported(salt_node, "a PBKDF2 salt that is not Specified"))?;
        let salt = self
            .text(salt)?
            .ok_or_else(|| self.malformed(salt, "the PBKDF2 salt is empty"))?;
        let iterations_node = self
            .only_child(params, "IterationCount")?
            .ok_or_else(|| self.malformed(params, "PBKDF2-params has no IterationCount"))?;
        let iterations = self
            .text(iterations_node)?
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                self.malformed(iterations_node, "IterationCount is not a positive number")
            })?;
        let key_length = match self.only_child(params, "KeyLength")? {
            Some(length) => Some(
                self.text(length)?
                    .and_then(|t| t.parse::<usize>().ok())
                    .ok_or_else(|| self.malformed(length, "KeyLength is not a number"))?,
            ),
            None => None,
        };
        let prf = match self.only_child(params, "PRF")? {
            None => HmacHash::Sha1,
            Some(prf) => match prf.attribute("Algorithm") {
                None | Some("") => HmacHash::Sha1,
                Some(uri) => HmacHash::from_uri(uri).ok_or_else(|| {
                    self.unsupported(prf, format!("PBKDF2 pseudo-random function {uri:?}"))
                })?,
            },
        };
        let name = match self.only_child(node, "MasterKeyName")? {
            Some(name) => self.text(name)?,
            None => None,
        };
        Ok(Pbkdf2Params {
            salt,
            iterations,
            key_length,
            prf,
            name,
        })
    }

    fn mac_method(&self, node: Node<'d, 'a>) -> Result<MacMethod<'d>, PskcError> {
        let uri = node
            .attribute("Algorithm")
            .ok_or_else(|| self.malformed(node, "MACMethod has no Algorithm"))?;
        let hash = HmacHash::from_uri(uri)
            .ok_or_else(|| self.unsupported(node, format!("MAC algorithm {uri:?}")))?;
        if let Some(reference) = self.only_child(node, "MACKeyReference")? {
            return Err(self.unsupported(
                reference,
                "a MACKeyReference; pam-mfa needs the MACKey in the file",
            ));
        }
        let key = match self.only_child(node, "MACKey")? {
            Some(key) => Some(self.encrypted(key, None)?),
            None => None,
        };
        Ok(MacMethod { hash, key })
    }

    fn package(&self, node: Node<'d, 'a>) -> Result<Package<'d>, PskcError> {
        let device = self.only_child(node, "DeviceInfo")?;
        let device_text = |name: &str| -> Result<Option<&'d str>, PskcError> {
            match device {
                Some(device) => match self.only_child(device, name)? {
                    Some(child) => self.text(child),
                    None => Ok(None),
                },
                None => Ok(None),
            }
        };
        let key = match self.only_child(node, "Key")? {
            Some(key) => Some(self.key(key)?),
            None => None,
        };
        Ok(Package {
            manufacturer: device_text("Manufacturer")?,
            serial: device_text("SerialNo")?,
            device_start: device_text("StartDate")?,
            device_expiry: device_text("ExpiryDate")?,
            key,
            line: self.line(node),
        })
    }

    fn key(&self, node: Node<'d, 'a>) -> Result<Key<'d>, PskcError> {
        let id = node
            .attribute("Id")
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| self.malformed(node, "Key has no Id"))?;
        let parameters = self.only_child(node, "AlgorithmParameters")?;
        let (mut suite, mut challenge, mut response) = (None, false, None);
        if let Some(parameters) = parameters {
            if let Some(node) = self.only_child(parameters, "Suite")? {
                suite = self.text(node)?;
            }
            challenge = self.only_child(parameters, "ChallengeFormat")?.is_some();
            if let Some(node) = self.only_child(parameters, "ResponseFormat")? {
                response = Some(ResponseFormat {
                    length: node.attribute("Length"),
                    encoding: node.attribute("Encoding"),
                    check_digits: node.attribute("CheckDigits"),
                });
            }
        }
        let data = self.only_child(node, "Data")?;
        let value = |name: &str, secret: bool| -> Result<Option<Value<'d>>, PskcError> {
            match data {
                Some(data) => match self.only_child(data, name)? {
                    Some(element) => self.value(element, secret).map(Some),
                    None => Ok(None),
                },
                None => Ok(None),
            }
        };
        let policy = match self.only_child(node, "Policy")? {
            Some(policy) => self.policy(policy)?,
            None => Policy::default(),
        };
        Ok(Key {
            id,
            algorithm: node.attribute("Algorithm").map(str::trim),
            suite,
            challenge,
            response,
            key_reference: self.only_child(node, "KeyReference")?.is_some(),
            secret: value("Secret", true)?,
            counter: value("Counter", false)?,
            time: value("Time", false)?,
            time_interval: value("TimeInterval", false)?,
            time_drift: value("TimeDrift", false)?,
            policy,
            line: self.line(node),
        })
    }

    fn policy(&self, node: Node<'d, 'a>) -> Result<Policy<'d>, PskcError> {
        let text_of = |name: &str| -> Result<Option<&'d str>, PskcError> {
            match self.only_child(node, name)? {
                Some(child) => self.text(child),
                None => Ok(None),
            }
        };
        let key_usage = elements(node, "KeyUsage")
            .map(|usage| self.text(usage).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            start: text_of("StartDate")?,
            expiry: text_of("ExpiryDate")?,
            pin_usage: self
                .only_child(node, "PINPolicy")?
                .map(|pin| pin.attribute("PINUsageMode").unwrap_or("")),
            key_usage,
            transactions: text_of("NumberOfTransactions")?,
        })
    }

    /// A `<PlainValue>` or an `<EncryptedValue>` (with the `<ValueMAC>` beside it).
    fn value(&self, node: Node<'d, 'a>, secret: bool) -> Result<Value<'d>, PskcError> {
        let what = node.tag_name().name();
        let plain = self.only_child(node, "PlainValue")?;
        let encrypted = self.only_child(node, "EncryptedValue")?;
        let mac = match self.only_child(node, "ValueMAC")? {
            Some(mac) => Some(
                self.text(mac)?
                    .ok_or_else(|| self.malformed(mac, "ValueMAC is empty"))?,
            ),
            None => None,
        };
        match (plain, encrypted) {
            (Some(plain), None) => {
                let text = if secret {
                    self.borrowed_text(plain)?
                } else {
                    self.text(plain)?
                };
                let text = text.ok_or_else(|| self.malformed(plain, format!("{what} is empty")))?;
                Ok(Value::Plain {
                    text,
                    line: self.line(plain),
                })
            }
            (None, Some(encrypted)) => self.encrypted(encrypted, mac).map(Value::Encrypted),
            (Some(_), Some(_)) => {
                Err(self.malformed(node, format!("{what} is both plain and encrypted")))
            }
            (None, None) => {
                Err(self.malformed(node, format!("{what} has no PlainValue or EncryptedValue")))
            }
        }
    }

    /// `<xenc:EncryptionMethod Algorithm=...>` and `<xenc:CipherData><xenc:CipherValue>`.
    fn encrypted(
        &self,
        node: Node<'d, 'a>,
        mac: Option<&'d str>,
    ) -> Result<Encrypted<'d>, PskcError> {
        let method = self
            .only_child(node, "EncryptionMethod")?
            .ok_or_else(|| self.malformed(node, "no EncryptionMethod"))?;
        let algorithm = method
            .attribute("Algorithm")
            .ok_or_else(|| self.malformed(method, "EncryptionMethod has no Algorithm"))?;
        let data = self
            .only_child(node, "CipherData")?
            .ok_or_else(|| self.malformed(node, "no CipherData"))?;
        if let Some(reference) = self.only_child(data, "CipherReference")? {
            return Err(self.unsupported(
                reference,
                "a CipherReference; pam-mfa needs the CipherValue in the file",
            ));
        }
        let value = self
            .only_child(data, "CipherValue")?
            .ok_or_else(|| self.malformed(data, "no CipherValue"))?;
        let cipher_value = self
            .borrowed_text(value)?
            .ok_or_else(|| self.malformed(value, "CipherValue is empty"))?;
        Ok(Encrypted {
            algorithm,
            cipher_value,
            mac,
            line: self.line(node),
        })
    }

    /// The single child element named `name`; two of them are an error.
    fn only_child(
        &self,
        node: Node<'d, 'a>,
        name: &str,
    ) -> Result<Option<Node<'d, 'a>>, PskcError> {
        let mut found = elements(node, name);
        let first = found.next();
        if let Some(second) = found.next() {
            return Err(self.malformed(
                second,
                format!("{} has more than one {name}", node.tag_name().name()),
            ));
        }
        Ok(first)
    }

    /// The element's text, trimmed; None when empty. Text only: an element inside is an error.
    fn text(&self, node: Node<'d, 'a>) -> Result<Option<&'d str>, PskcError> {
        if let Some(child) = node.children().find(Node::is_element) {
            return Err(self.malformed(
                child,
                format!(
                    "{} holds an element where text belongs",
                    node.tag_name().name()
                ),
            ));
        }
        // Text with entity references or CDATA is a copy the parser made: fine for names and
        // numbers, never taken for secrets (see `borrowed_text`).
        Ok(node.text().map(str::trim).filter(|text| !text.is_empty()))
    }

    /// Like `text`, but only text the parser left in place in the input (no entity
    /// references, no CDATA), so that no copy of a secret exists outside the caller's buffer.
    fn borrowed_text(&self, node: Node<'d, 'a>) -> Result<Option<&'d str>, PskcError> {
        let mut children = node.children();
        let text = match (children.next(), children.next()) {
            (None, _) => return Ok(None),
            (Some(child), None) => match (child.text_storage(), child.text()) {
                (Some(StringStorage::Borrowed(_)), Some(text)) => text,
                _ => {
                    return Err(self.unsupported(
                        node,
                        format!(
                            "{} is written with XML entities or CDATA; pam-mfa reads plain base64 there",
                            node.tag_name().name()
                        ),
                    ))
                }
            },
            (Some(_), Some(_)) => {
                return Err(self.malformed(
                    node,
                    format!("{} holds more than text", node.tag_name().name()),
                ))
            }
        };
        let trimmed = text.trim();
        Ok((!trimmed.is_empty()).then_some(trimmed))
    }
}

/// Element children of `node` with the local name `name`.
fn elements<'d, 'a: 'd, 'n>(
    node: Node<'d, 'a>,
    name: &'n str,
) -> impl Iterator<Item = Node<'d, 'a>> + use<'d, 'a, 'n> {
    node.children()
        .filter(move |child| child.is_element() && child.tag_name().name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line of every element, by the walker's table, is roxmltree's own row.
    #[test]
    fn lines_agree_with_roxmltree() {
        for text in [
            include_str!("../../tests/fixtures/pskc/rfc6030-figure2.pskcxml"),
            include_str!("../../tests/fixtures/pskc/rfc6030-figure5.pskcxml"),
            "<a>\n\n<b/><c>\r\n<d/></c>\n</a>",
        ] {
            let xml = Xml::parse(text).unwrap();
            let walker = Walker::new(&xml.0);
            let mut seen = 0;
            for node in xml.0.descendants().filter(Node::is_element) {
                let expected = xml.0.text_pos_at(node.range().start).row;
                assert_eq!(walker.line(node), expected, "{:?}", node.tag_name());
                seen += 1;
            }
            assert!(seen > 3);
        }
    }
}
