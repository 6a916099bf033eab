//! Refused calls, audited: authentication failures (`authn.failed`), authorization denials
//! (`authz.denied`), failed enrollments (`ca.enroll.failed`, token and CSR refusals alike) and
//! calls a limit refused (`limit.refused`: load shed, over the deadline, a message too large).
//!
//! Each record names who (the verified SPIFFE id, else the client certificate's SHA-256
//! fingerprint, else the enrollment token's digest prefix, else `anonymous`), the peer address,
//! the gRPC method (the record's target) and the reason the caller was given. Every refusal is
//! also a `warn` line in the server log.
//!
//! A flood is bounded. Refusals are tallied per window of [`WINDOW`]: the first refusal of each
//! kind, source, peer address (IP), method and reason in a window is written at once, durably,
//! before the refusal is answered; identical ones after it are only counted, and when the window
//! ends one record per tally carries the count of repeats (`count`, the sum over a tally's
//! records is the number of refusals). At most [`MAX_ITEMISED`] distinct refusals of callers
//! without a verified identity, and apart from them [`MAX_ITEMISED_VERIFIED`] of verified callers
//! (so a flood cannot hide who an enrolled caller is), are written at once per window; past that, refusals are counted per kind and method only and written as one
//! record each when the window ends. So however many calls, sources and addresses an attacker
//! uses, the server writes at most [`MAX_ITEMISED`] immediate records plus one summary per tally
//! per window, and holds a bounded table in memory. A `kill -9` loses the repeat counts of the
//! window in progress, never a first occurrence.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use govtrust_store::AuditEvent;
use tonic::{Code, Status};

use super::journal::Journal;

/// Refusals are tallied per window of this length.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Distinct refusals written at once per window; the rest are only counted.
pub const MAX_ITEMISED: usize = 100;
/// Refusals of verified callers (a SPIFFE id) written at once per window, apart from
/// [`MAX_ITEMISED`]: an anonymous flood must not push an identified caller's refusal into the
/// unnamed summary. Verified callers are enrolled identities, accountable by name.
pub const MAX_ITEMISED_VERIFIED: usize = 1000;
/// Tallies of refusals past [`MAX_ITEMISED`] (kind × method); beyond it methods are folded.
const MAX_UNITEMISED: usize = 64;
/// Longest reason kept, in characters.
const MAX_REASON: usize = 300;
/// Hex digits of the token digest recorded (48 bits: enough to find the token, never it).
const TOKEN_DIGEST_PREFIX: usize = 12;

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The caller could not be authenticated (no, foreign or unusable certificate).
    Authentication,
    /// The caller was authenticated but may not do what it asked.
    Authorization,
    /// An enrollment was refused (token or CSR).
    Enrollment,
    /// A limit refused the call: load shed, over its deadline, a message too large.
    Limit,
}

impl Kind {
    fn action(self) -> &'static str {
        match self {
            Kind::Authentication => "authn.failed",
            Kind::Authorization => "authz.denied",
            Kind::Enrollment => "ca.enroll.failed",
            Kind::Limit => "limit.refused",
        }
    }
}

/// One refused call.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: Kind,
    /// Who: a SPIFFE id, `sha256:<certificate fingerprint>`, `token:<digest prefix>`, or
    /// `anonymous`.
    pub actor: String,
    pub peer: Option<SocketAddr>,
    /// The gRPC path, `/govtrust.kms.v1.KeyManagement/Encrypt`.
    pub method: String,
    /// The status the caller got.
    pub code: Code,
    pub reason: String,
    /// Further facts (the certificate fingerprint of an authenticated caller).
    pub details: Vec<(String, String)>,
}

impl Refusal {
    /// A refusal answered with `status`.
    pub fn new(
        kind: Kind,
        actor: String,
        peer: Option<SocketAddr>,
        method: &str,
        status: &Status,
    ) -> Self {
        Self {
            kind,
            actor,
            peer,
            method: method.chars().take(MAX_REASON).collect(),
            code: status.code(),
            reason: status.message().chars().take(MAX_REASON).collect(),
            details: Vec::new(),
        }
    }

    fn tally_key(&self) -> TallyKey {
        TallyKey {
            kind: self.kind,
            actor: self.actor.clone(),
            ip: self.peer.map(|p| p.ip()),
            method: self.method.clone(),
            reason: self.reason.clone(),
        }
    }

    /// The record of the first occurrence in a window.
    fn event(&self, at_ms: i64) -> AuditEvent {
        let peer = self
            .peer
            .map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        let event = AuditEvent::new(at_ms, self.kind.action(), &self.actor, &self.method)
            .with("peer", peer)
            .with("code", format!("{:?}", self.code))
            .with("reason", &self.reason)
            .with("count", "1");
        self.details
            .iter()
            .fold(event, |event, (name, value)| event.with(name, value))
    }
}

/// The digest prefix an enrollment token is recorded by: SHA-256 of its text, hex, truncated.
pub fn token_actor(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex = hex::encode(digest.as_ref());
    format!("token:{}", hex.get(..TOKEN_DIGEST_PREFIX).unwrap_or(&hex))
}

/// What makes two refusals the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TallyKey {
    kind: Kind,
    actor: String,
    ip: Option<IpAddr>,
    method: String,
    reason: String,
}

/// Refusals counted in the current window and not yet written.
#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

impl Tally {
    fn new(at_ms: i64) -> Self {
        Self {
            count: 0,
            first_ms: at_ms,
            last_ms: at_ms,
        }
    }

    fn add(&mut self, at_ms: i64) {
        if self.count == 0 {
            self.first_ms = at_ms;
        }
        self.count = self.count.saturating_add(1);
        self.last_ms = at_ms;
    }
}

/// The current window's tallies.
#[derive(Debug, Default)]
struct Window {
    /// Refusals written at once, with the repeats counted since.
    itemised: HashMap<TallyKey, Tally>,
    /// Refusals past the itemised limit, by kind and method.
    unitemised: HashMap<(Kind, String), Tally>,
    /// How many of `itemised` are of verified callers.
    verified: usize,
}

impl Window {
    /// Counts `refusal`; true if it is the first of its kind in the window (write it now).
    fn count(&mut self, refusal: &Refusal, at_ms: i64) -> bool {
        let key = refusal.tally_key();
        if let Some(tally) = self.itemised.get_mut(&key) {
            tally.add(at_ms);
            return false;
        }
        let verified = refusal.actor.starts_with("spiffe://");
        let anonymous = self.itemised.len() - self.verified;
        let room = match verified {
            true => self.verified < MAX_ITEMISED_VERIFIED,
            false => anonymous < MAX_ITEMISED,
        };
        if room {
            self.itemised.insert(key, Tally::new(at_ms));
            self.verified += usize::from(verified);
            return true;
        }
        self.unitemised(refusal.kind, &refusal.method, at_ms);
        false
    }

    fn unitemised(&mut self, kind: Kind, method: &str, at_ms: i64) {
        let mut key = (kind, method.to_owned());
        if !self.unitemised.contains_key(&key) && self.unitemised.len() >= MAX_UNITEMISED {
            key.1 = "*".to_owned();
        }
        self.unitemised
            .entry(key)
            .or_insert_with(|| Tally::new(at_ms))
            .add(at_ms);
    }

    /// The summary records of the window: repeats of itemised refusals, and the unitemised.
    fn summaries(&self, at_ms: i64) -> Vec<AuditEvent> {
        let repeats = self
            .itemised
            .iter()
            .filter(|(_, tally)| tally.count > 0)
            .map(|(key, tally)| repeat_event(key, tally, at_ms));
        let unitemised = self
            .unitemised
            .iter()
            .map(|((kind, method), tally)| unitemised_event(*kind, method, tally, at_ms));
        repeats.chain(unitemised).collect()
    }
}

fn repeat_event(key: &TallyKey, tally: &Tally, at_ms: i64) -> AuditEvent {
    let peer = key
        .ip
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    summary_event(key.kind.action(), &key.actor, &key.method, tally, at_ms)
        .with("peer", peer)
        .with("reason", &key.reason)
        .with(
            "repeats_of",
            "the first refusal of this window, recorded when it happened",
        )
}

fn unitemised_event(kind: Kind, method: &str, tally: &Tally, at_ms: i64) -> AuditEvent {
    summary_event(kind.action(), "(not itemised)", method, tally, at_ms).with(
        "reason",
        format!(
            "more than {MAX_ITEMISED} distinct refusals in this window: counted by method only"
        ),
    )
}

/// A summary is stamped when it is written, so the log's times stay in order; the span of the
/// refusals it counts is in `first_at` and `last_at`.
fn summary_event(action: &str, actor: &str, method: &str, tally: &Tally, at_ms: i64) -> AuditEvent {
    AuditEvent::new(at_ms, action, actor, method)
        .with("count", tally.count.to_string())
        .with("first_at", rfc3339_ms(tally.first_ms))
        .with("last_at", rfc3339_ms(tally.last_ms))
}

fn rfc3339_ms(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    crate::rfc3339::format(std::time::UNIX_EPOCH + Duration::from_millis(ms))
}

/// The refusal recorder: the one place refused calls are audited.
pub struct Refusals {
    journal: Journal,
    window: Mutex<Window>,
}

impl Refusals {
    pub fn new(journal: Journal) -> Self {
        Self {
            journal,
            window: Mutex::new(Window::default()),
        }
    }

    /// Audits `refusal`: at once and durably if it is the first of its kind in the window,
    /// else as a count written when the window ends.
    pub async fn record(&self, refusal: Refusal) {
        let at_ms = self.journal.now_ms();
        let first = self.window().count(&refusal, at_ms);
        if !first {
            return;
        }
        warn(&refusal);
        if let Err(error) = self.journal.write(vec![refusal.event(at_ms)]).await {
            tracing::error!(error = format!("{error:#}"), "cannot audit a refused call");
        }
    }

    /// Ends the window: writes the counts of repeated and unitemised refusals.
    pub async fn flush(&self) {
        let ended = std::mem::take(&mut *self.window());
        let events = ended.summaries(self.journal.now_ms());
        for event in &events {
            tracing::warn!(
                action = %event.action,
                actor = %event.actor,
                method = %event.target,
                details = ?event.details,
                "refused calls repeated in the last window"
            );
        }
        if let Err(error) = self.journal.write(events).await {
            tracing::error!(
                error = format!("{error:#}"),
                "cannot audit repeated refusals"
            );
        }
    }

    /// The tallies. Every update leaves them consistent, so a panic elsewhere while the lock
    /// was held (poisoning it) does not make them unusable.
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends a window every [`WINDOW`], for ever.
    pub async fn run(self: Arc<Self>) {
        let mut interval = tokio::time::interval(WINDOW);
        interval.tick().await;
        loop {
            interval.tick().await;
            self.flush().await;
        }
    }
}

fn warn(refusal: &Refusal) {
    let peer = refusal.peer.map(|p| p.to_string()).unwrap_or_default();
    tracing::warn!(
        action = refusal.kind.action(),
        actor = %refusal.actor,
        %peer,
        method = %refusal.method,
        code = ?refusal.code,
        reason = %refusal.reason,
        "refused call"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use govtrust_audit::{AuditLog, Record};
    use govtrust_kms::SystemClock;
    use govtrust_store::{MemoryStore, Store};

    use super::*;

    fn recorder() -> (Refusals, AuditLog) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let log = AuditLog::new(store.clone());
        let journal = Journal::new(store, Arc::new(log.clone()), Arc::new(SystemClock));
        (Refusals::new(journal), log)
    }

    fn denial(actor: &str, ip: [u8; 4]) -> Refusal {
        Refusal::new(
            Kind::Authorization,
            actor.to_owned(),
            Some(SocketAddr::from((ip, 4000))),
            "/govtrust.kms.v1.KeyManagement/Encrypt",
            &Status::permission_denied("a may not use key k"),
        )
    }

    fn detail<'a>(record: &'a Record, name: &str) -> &'a str {
        record
            .details
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[tokio::test]
    async fn the_first_refusal_is_written_at_once_and_repeats_as_one_count() {
        let (refusals, log) = recorder();
        for _ in 0..50 {
            refusals.record(denial("a", [10, 0, 0, 1])).await;
        }
        let written = log.records(0, 100).unwrap();
        assert_eq!(written.len(), 1, "one record before the window ends");
        assert_eq!(written[0].action, "authz.denied");
        assert_eq!(written[0].actor, "a");
        assert_eq!(written[0].target, "/govtrust.kms.v1.KeyManagement/Encrypt");
        assert_eq!(detail(&written[0], "peer"), "10.0.0.1:4000");
        assert_eq!(detail(&written[0], "reason"), "a may not use key k");

        refusals.flush().await;
        let written = log.records(0, 100).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(detail(&written[1], "count"), "49", "the repeats, counted");
        assert_eq!(detail(&written[1], "peer"), "10.0.0.1");

        refusals.record(denial("a", [10, 0, 0, 1])).await;
        assert_eq!(
            log.records(0, 100).unwrap().len(),
            3,
            "a new window starts afresh"
        );
    }

    #[tokio::test]
    async fn a_flood_from_many_sources_writes_a_bounded_number_of_records() {
        let (refusals, log) = recorder();
        for n in 0..5_000u32 {
            let [_, _, a, b] = n.to_be_bytes();
            refusals
                .record(denial(&format!("sha256:{n}"), [10, 1, a, b]))
                .await;
        }
        assert_eq!(log.records(0, 10_000).unwrap().len(), MAX_ITEMISED);
        refusals.flush().await;
        let written = log.records(0, 10_000).unwrap();
        assert_eq!(written.len(), MAX_ITEMISED + 1);
        let summary = written.last().unwrap();
        assert_eq!(summary.actor, "(not itemised)");
        assert_eq!(detail(summary, "count"), "4900");
    }

    #[tokio::test]
    async fn an_anonymous_flood_does_not_hide_who_an_identified_caller_is() {
        let (refusals, log) = recorder();
        for n in 0..500u32 {
            let [_, _, a, b] = n.to_be_bytes();
            refusals
                .record(denial(&format!("sha256:{n}"), [10, 1, a, b]))
                .await;
        }
        let system = "spiffe://gov.example/org/finance/sys/tax";
        refusals.record(denial(system, [10, 0, 0, 9])).await;
        let written = log.records(0, 10_000).unwrap();
        assert_eq!(written.len(), MAX_ITEMISED + 1);
        assert_eq!(written.last().unwrap().actor, system);
    }

    #[test]
    fn a_token_is_recorded_by_a_digest_prefix_only() {
        let token = "gt1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let actor = token_actor(token);
        assert!(actor.starts_with("token:"));
        assert_eq!(actor.len(), "token:".len() + TOKEN_DIGEST_PREFIX);
        assert!(!actor.contains("AAAA"));
    }
}
