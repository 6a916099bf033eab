//! Certificate verification for relying parties: is this chain good for this purpose, at this
//! time, for this name — and if not, every reason why.
//!
//! The path is built by rustls-webpki to this deployment's root or to a CA in the trust bundle
//! ([`crate::trust`]). The checks are made apart, so one failure does not hide another: the
//! validity period; the path (checked at a time inside the validity period, so an expired
//! certificate still says whether its issuer is trusted); the key usage the purpose needs; the
//! name; and revocation. Revocation comes from this CA's own state for its certificates
//! (revoked with its reason, suspended), and for another CA's from the CRL its certificate
//! names (its CRL distribution point, fetched through a [`CrlSource`] and kept until its
//! nextUpdate, at most an hour); a status that cannot be learnt is a reason too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::{
    EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::issuer::Serial;
use crate::revocation::Reason;
use crate::timestamps::{from_unix_ms, rfc3339};
use crate::trust::{self, TrustAnchor};
use crate::{Ca, Error, pem};

/// Certificates in a chain, at most.
const MAX_CHAIN: usize = 8;
/// How long a fetched CRL is kept at most, whatever its nextUpdate.
const CRL_KEPT: Duration = Duration::from_secs(3600);
/// CRLs kept at most (by URL).
const MAX_CRLS: usize = 1000;

/// Fetches the CRL at a URL (another CA's distribution point).
pub trait CrlSource: Send + Sync {
    /// The CRL's bytes (DER), or why it could not be fetched.
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String>;
}

/// What a certificate is to be good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A TLS server (extended key usage serverAuth).
    ServerAuth,
    /// A TLS client (clientAuth).
    ClientAuth,
    /// Signing documents (key usage nonRepudiation / contentCommitment).
    DocumentSigning,
    /// Encrypting to its key (keyEncipherment or keyAgreement).
    Encryption,
    /// Anything: no usage is checked.
    Any,
}

/// One reason a certificate is not good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Past its notAfter.
    Expired { at: SystemTime },
    /// Before its notBefore.
    NotYetValid { from: SystemTime },
    /// No path to a trusted root (or a signature on the path does not verify).
    UntrustedIssuer { reason: String },
    /// Its key usage or extended key usage does not allow the purpose.
    WrongUsage { reason: String },
    /// It is not valid for the name asked about.
    NameMismatch { name: String },
    /// Revoked.
    Revoked {
        reason: Option<Reason>,
        at: SystemTime,
    },
    /// On hold.
    Suspended { since: SystemTime },
    /// Its revocation status could not be learnt.
    RevocationUnknown { reason: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Expired { at } => write!(f, "expired at {}", rfc3339(*at)),
            Self::NotYetValid { from } => write!(f, "not valid before {}", rfc3339(*from)),
            Self::UntrustedIssuer { reason } => write!(f, "untrusted issuer: {reason}"),
            Self::WrongUsage { reason } => write!(f, "wrong key usage: {reason}"),
            Self::NameMismatch { name } => write!(f, "not valid for {name}"),
            Self::Revoked { reason, at } => {
                let reason = reason.map_or("no reason given".to_owned(), |r| r.to_string());
                write!(f, "revoked ({reason}) at {}", rfc3339(*at))
            }
            Self::Suspended { since } => write!(f, "suspended since {}", rfc3339(*since)),
            Self::RevocationUnknown { reason } => write!(f, "revocation status unknown: {reason}"),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Empty when the certificate is good.
    pub problems: Vec<Problem>,
    /// The leaf's subject.
    pub subject: String,
    /// The leaf's serial.
    pub serial: String,
    /// The leaf's SPIFFE id, if it has one.
    pub spiffe_id: Option<String>,
    /// The trust anchor the path ends at (`root` for this deployment's), if one was found.
    pub anchor: Option<String>,
}

impl Verdict {
    /// Whether the certificate is good.
    pub fn valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What a verification asks.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The chain, leaf first: PEM (several blocks) or one DER certificate.
    pub chain: &'a [u8],
    pub purpose: Purpose,
    /// When; `None`: now.
    pub at: Option<SystemTime>,
    /// A DNS name, IP address or SPIFFE id the certificate must be valid for.
    pub name: Option<&'a str>,
}

/// How long a failed fetch is remembered: until then, the URL is not fetched again.
const FAILURE_KEPT: Duration = Duration::from_secs(60);

/// A fetched CRL (DER), or why it could not be fetched, and until when that is kept.
type Kept = (Result<Arc<Vec<u8>>, String>, SystemTime);

/// Fetched CRLs of other CAs, by URL. One fetch per URL at a time: callers asking for a URL
/// being fetched wait for that fetch and share its outcome; a failure is remembered for
/// [`FAILURE_KEPT`], so a slow or dead distribution point costs one fetch a minute, however
/// many verifications ask for it.
#[derive(Default)]
pub(crate) struct ExternalCrls {
    kept: Mutex<HashMap<String, Kept>>,
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Verifies `question` against the trust bundle of `ca`. [`Error::InvalidArgument`] when the
/// chain cannot be read at all; otherwise a verdict.
pub(crate) fn verify(
    ca: &Ca,
    question: &Question<'_>,
    crls: &dyn CrlSource,
) -> Result<Verdict, Error> {
    let chain = parse_chain(question.chain)?;
    let now = ca.clock.now();
    let at = question.at.unwrap_or(now);
    let leaf_der = chain
        .first()
        .ok_or_else(|| Error::invalid("chain", "no certificate"))?;
    let (_, leaf) = X509Certificate::from_der(leaf_der)
        .map_err(|e| Error::invalid("chain", format!("the leaf does not parse: {e}")))?;
    let mut problems = validity(&leaf, at);
    let anchors = bundle(ca)?;
    let path = path(ca, &chain, &anchors, &leaf, at);
    let anchor = match &path {
        Ok(anchor) => Some(anchor.clone()),
        Err(problem) => {
            problems.push(problem.clone());
            None
        }
    };
    problems.extend(usage(&leaf, question.purpose));
    if let Some(name) = question.name {
        problems.extend(name_problem(leaf_der, &leaf, name));
    }
    // An identity of this trust domain is this CA's to vouch for, not another's.
    let ours = format!("spiffe://{}/", ca.trust_domain());
    let foreign = anchor.as_deref().is_some_and(|a| a != "root");
    if foreign && spiffe_id(&leaf).is_some_and(|id| id.starts_with(&ours)) {
        problems.push(Problem::UntrustedIssuer {
            reason: format!(
                "another CA may not certify an identity of {}",
                ca.trust_domain()
            ),
        });
    }
    if let Some(anchor) = &anchor {
        let revocation = match anchor.as_str() {
            "root" => own_revocation(ca, &leaf),
            _ => external_revocation(ca, &chain, &anchors, at, crls),
        };
        problems.extend(revocation);
    }
    Ok(Verdict {
        problems,
        subject: leaf.subject().to_string(),
        serial: hex::encode(leaf.raw_serial()),
        spiffe_id: spiffe_id(&leaf),
        anchor,
    })
}

/// The certificates of `input`, leaf first.
fn parse_chain(input: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let chain = match input.trim_ascii_start().starts_with(b"-----BEGIN") {
        true => pem::certificates(input)
            .ok_or_else(|| Error::invalid("chain", "a PEM block does not parse"))?,
        false => vec![input.to_vec()],
    };
    match chain.len() {
        0 => Err(Error::invalid("chain", "no certificate")),
        n if n > MAX_CHAIN => Err(Error::invalid(
            "chain",
            format!("{n} certificates; at most {MAX_CHAIN}"),
        )),
        _ => Ok(chain),
    }
}

fn validity(leaf: &X509Certificate<'_>, at: SystemTime) -> Vec<Problem> {
    let (from, until) = period(leaf);
    match () {
        () if from > until => vec![Problem::UntrustedIssuer {
            reason: "its validity period ends before it begins".to_owned(),
        }],
        () if at > until => vec![Problem::Expired { at: until }],
        () if at < from => vec![Problem::NotYetValid { from }],
        () => Vec::new(),
    }
}

fn period(certificate: &X509Certificate<'_>) -> (SystemTime, SystemTime) {
    let validity = certificate.validity();
    let ms = |t: i64| from_unix_ms(t.saturating_mul(1000));
    (
        ms(validity.not_before.timestamp()),
        ms(validity.not_after.timestamp()),
    )
}

/// This deployment's root and the CAs added to the bundle.
fn bundle(ca: &Ca) -> Result<Vec<TrustAnchor>, Error> {
    let mut anchors = vec![trust::own_root(ca)];
    anchors.extend(trust::anchors(ca.store.as_ref())?);
    Ok(anchors)
}

/// The name of the anchor a path from the leaf ends at, checked at a time inside the leaf's
/// validity period (so expiry is reported once, apart).
fn path(
    ca: &Ca,
    chain: &[Vec<u8>],
    anchors: &[TrustAnchor],
    leaf: &X509Certificate<'_>,
    at: SystemTime,
) -> Result<String, Problem> {
    let inside = inside_validity(leaf, at);
    verified_anchor(ca, chain, anchors, inside, None).map_err(|error| Problem::UntrustedIssuer {
        reason: error.to_string(),
    })
}

/// Builds and checks the path at `at` (with `revocation` if given); the anchor's name.
fn verified_anchor(
    ca: &Ca,
    chain: &[Vec<u8>],
    anchors: &[TrustAnchor],
    at: SystemTime,
    revocation: Option<webpki::RevocationOptions<'_>>,
) -> Result<String, webpki::Error> {
    let ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|a| CertificateDer::from(a.der.as_slice()))
        .collect();
    let trust: Vec<_> = ders
        .iter()
        .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
        .collect();
    let own = ca.chain();
    let mut intermediates: Vec<CertificateDer<'_>> = chain
        .iter()
        .skip(1)
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    intermediates.push(CertificateDer::from(own.extranet_der.as_slice()));
    intermediates.push(CertificateDer::from(own.intranet_der.as_slice()));
    let leaf = CertificateDer::from(chain.first().map_or(&[][..], Vec::as_slice));
    let end_entity = EndEntityCert::try_from(&leaf)?;
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let path = end_entity.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust,
        &intermediates,
        UnixTime::since_unix_epoch(since),
        any_usage(chain),
        revocation,
        None,
    )?;
    // The anchor is told by its name and its key: another CA may carry our root's name.
    let reached = path.anchor();
    let anchor = trust.iter().zip(anchors).find(|(t, _)| {
        t.subject.as_ref() == reached.subject.as_ref()
            && t.subject_public_key_info.as_ref() == reached.subject_public_key_info.as_ref()
    });
    Ok(anchor.map_or_else(String::new, |(_, a)| a.name.clone()))
}

/// `at`, moved inside the leaf's validity period (when it has one: notBefore after notAfter
/// is reported by [`validity`], and `at` is kept).
fn inside_validity(leaf: &X509Certificate<'_>, at: SystemTime) -> SystemTime {
    let (from, until) = period(leaf);
    match from <= until {
        true => at.clamp(from, until),
        false => at,
    }
}

/// A key usage for path building that any leaf passes (one of its own, required only where
/// present, as CA certificates rarely list any): usage is checked apart.
fn any_usage(chain: &[Vec<u8>]) -> KeyUsage {
    const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    const KNOWN: [(&str, &[u8]); 5] = [
        ("1.3.6.1.5.5.7.3.1", SERVER_AUTH),
        (
            "1.3.6.1.5.5.7.3.2",
            &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
        ),
        (
            "1.3.6.1.5.5.7.3.3",
            &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03],
        ),
        (
            "1.3.6.1.5.5.7.3.4",
            &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04],
        ),
        (
            "1.3.6.1.5.5.7.3.9",
            &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09],
        ),
    ];
    let Some(present) = chain.first().and_then(|der| leaf_ekus(der)) else {
        return KeyUsage::required_if_present(SERVER_AUTH);
    };
    KNOWN
        .iter()
        .find(|(oid, _)| present.iter().any(|p| p == oid))
        .map_or(KeyUsage::required_if_present(SERVER_AUTH), |(_, der)| {
            KeyUsage::required_if_present(der)
        })
}

/// The OIDs of a certificate's extended key usages, if it has the extension.
fn leaf_ekus(der: &[u8]) -> Option<Vec<String>> {
    let (_, leaf) = X509Certificate::from_der(der).ok()?;
    let ekus = leaf.extended_key_usage().ok().flatten()?.value;
    let flags = [
        (ekus.server_auth, "1.3.6.1.5.5.7.3.1"),
        (ekus.client_auth, "1.3.6.1.5.5.7.3.2"),
        (ekus.code_signing, "1.3.6.1.5.5.7.3.3"),
        (ekus.email_protection, "1.3.6.1.5.5.7.3.4"),
        (ekus.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
    ];
    let mut present: Vec<String> = ekus.other.iter().map(|oid| oid.to_id_string()).collect();
    present.extend(
        flags
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, oid)| (*oid).to_owned()),
    );
    Some(present)
}

/// Whether the leaf's key usage and extended key usage allow `purpose`.
fn usage(leaf: &X509Certificate<'_>, purpose: Purpose) -> Option<Problem> {
    let ku = leaf.key_usage().ok().flatten().map(|k| k.value);
    let eku = leaf.extended_key_usage().ok().flatten().map(|e| e.value);
    let wrong = |reason: &str| {
        Some(Problem::WrongUsage {
            reason: reason.to_owned(),
        })
    };
    match purpose {
        Purpose::Any => None,
        Purpose::ServerAuth if !eku.as_ref().is_some_and(|e| e.server_auth || e.any) => {
            wrong("no serverAuth extended key usage")
        }
        Purpose::ClientAuth if !eku.as_ref().is_some_and(|e| e.client_auth || e.any) => {
            wrong("no clientAuth extended key usage")
        }
        Purpose::DocumentSigning if !ku.is_some_and(|k| k.non_repudiation()) => {
            wrong("no nonRepudiation (contentCommitment) key usage")
        }
        Purpose::Encryption if !ku.is_some_and(|k| k.key_encipherment() || k.key_agreement()) => {
            wrong("neither keyEncipherment nor keyAgreement key usage")
        }
        _ => None,
    }
}

fn name_problem(der: &[u8], leaf: &X509Certificate<'_>, name: &str) -> Option<Problem> {
    let mismatch = || {
        Some(Problem::NameMismatch {
            name: name.to_owned(),
        })
    };
    if name.starts_with("spiffe://") {
        return match spiffe_id(leaf).is_some_and(|id| id == name) {
            true => None,
            false => mismatch(),
        };
    }
    let Ok(server) = ServerName::try_from(name) else {
        return mismatch();
    };
    let leaf = CertificateDer::from(der);
    let valid = EndEntityCert::try_from(&leaf)
        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&server).is_ok());
    if valid { None } else { mismatch() }
}

fn spiffe_id(leaf: &X509Certificate<'_>) -> Option<String> {
    let san = leaf.subject_alternative_name().ok().flatten()?;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
        _ => None,
    })
}

/// This CA's own view of one of its certificates.
fn own_revocation(ca: &Ca, leaf: &X509Certificate<'_>) -> Option<Problem> {
    let Ok(serial) = Serial::parse(&hex::encode(leaf.raw_serial())) else {
        return Some(Problem::RevocationUnknown {
            reason: "its serial is not one this CA issues".to_owned(),
        });
    };
    if let Some((reason, at)) = ca.revocation(&serial) {
        return Some(match reason {
            Reason::CertificateHold => Problem::Suspended { since: at },
            reason => Problem::Revoked {
                reason: Some(reason),
                at,
            },
        });
    }
    match ca.certificate(&serial) {
        Ok(_) => None,
        Err(_) => Some(Problem::RevocationUnknown {
            reason: format!("certificate {serial} is not in this CA's records"),
        }),
    }
}

/// Another CA's certificate: revoked or not per the CRL its certificate names.
fn external_revocation(
    ca: &Ca,
    chain: &[Vec<u8>],
    anchors: &[TrustAnchor],
    at: SystemTime,
    source: &dyn CrlSource,
) -> Option<Problem> {
    let unknown = |reason: String| Some(Problem::RevocationUnknown { reason });
    let leaf = chain
        .first()
        .and_then(|der| X509Certificate::from_der(der).ok())?
        .1;
    let urls = distribution_points(&leaf);
    let Some(url) = urls.first() else {
        return unknown("the certificate names no CRL distribution point".to_owned());
    };
    let der = match ca.external_crls.get(ca, url, source) {
        Ok(der) => der,
        Err(reason) => return unknown(format!("{url}: {reason}")),
    };
    let crl = match OwnedCertRevocationList::from_der(&der) {
        Ok(crl) => webpki::CertRevocationList::from(crl),
        Err(error) => return unknown(format!("{url}: not a CRL: {error}")),
    };
    let crls = [&crl];
    let options = RevocationOptionsBuilder::new(&crls).ok()?;
    let options = options
        .with_depth(RevocationCheckDepth::EndEntity)
        .with_status_policy(UnknownStatusPolicy::Deny)
        .with_expiration_policy(ExpirationPolicy::Enforce)
        .build();
    match verified_anchor(
        ca,
        chain,
        anchors,
        inside_validity(&leaf, at),
        Some(options),
    ) {
        Ok(_) => None,
        Err(webpki::Error::CertRevoked) => Some(revoked_entry(&der, leaf.raw_serial())),
        Err(error) => unknown(format!("{url}: {error}")),
    }
}

/// The revocation of `serial` as the CRL `der` lists it.
fn revoked_entry(der: &[u8], serial: &[u8]) -> Problem {
    let entry = CertificateRevocationList::from_der(der)
        .ok()
        .and_then(|(_, crl)| {
            crl.iter_revoked_certificates()
                .find(|entry| entry.raw_serial() == serial)
                .map(|entry| {
                    let at = from_unix_ms(entry.revocation_date.timestamp().saturating_mul(1000));
                    let reason = entry
                        .reason_code()
                        .and_then(|(_, r)| Reason::from_code(r.0));
                    (reason, at)
                })
        });
    let (reason, at) = entry.unwrap_or((None, SystemTime::UNIX_EPOCH));
    Problem::Revoked { reason, at }
}

/// The URIs of a certificate's CRL distribution points.
fn distribution_points(certificate: &X509Certificate<'_>) -> Vec<String> {
    let mut urls = Vec::new();
    for extension in certificate.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = extension.parsed_extension() else {
            continue;
        };
        for point in &points.points {
            if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                urls.extend(names.iter().filter_map(|name| match name {
                    GeneralName::URI(uri) => Some((*uri).to_owned()),
                    _ => None,
                }));
            }
        }
    }
    urls
}

impl ExternalCrls {
    /// The CRL at `url`: kept while fresh (or its failure, for a minute), else fetched from
    /// `source`, by one caller at a time.
    fn get(&self, ca: &Ca, url: &str, source: &dyn CrlSource) -> Result<Arc<Vec<u8>>, String> {
        if let Some(kept) = self.kept(ca, url) {
            return kept;
        }
        let turn = {
            let mut fetching = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
            if fetching.len() >= MAX_CRLS {
                fetching.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            fetching.entry(url.to_owned()).or_default().clone()
        };
        let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = self.kept(ca, url) {
            return kept;
        }
        let fetched = source.fetch(url).map(Arc::new);
        self.keep(ca, url, fetched.clone());
        fetched
    }

    /// What is kept for `url`, while it is.
    fn kept(&self, ca: &Ca, url: &str) -> Option<Result<Arc<Vec<u8>>, String>> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let (outcome, until) = kept.get(url)?;
        (ca.clock.now() < *until).then(|| outcome.clone())
    }

    fn keep(&self, ca: &Ca, url: &str, fetched: Result<Arc<Vec<u8>>, String>) {
        let now = ca.clock.now();
        let until = match &fetched {
            Ok(der) => CertificateRevocationList::from_der(der)
                .ok()
                .and_then(|(_, crl)| crl.next_update())
                .map(|t| from_unix_ms(t.timestamp().saturating_mul(1000)))
                .map_or(now, |n| n.min(now + CRL_KEPT)),
            Err(_) => now + FAILURE_KEPT,
        };
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= MAX_CRLS {
            kept.clear();
        }
        kept.insert(url.to_owned(), (fetched, until));
    }
}
