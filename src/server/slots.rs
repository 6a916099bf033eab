//! Connection slots that make way for newcomers instead of making them wait.
//!
//! A [`Pool`] holds at most `capacity` entries, at most `per_share` of them of one [`Share`]
//! (an address, or a verified identity). A newcomer whose share is full evicts the oldest entry
//! of its own share; otherwise a full pool evicts its oldest entry. Either way the newcomer is
//! admitted, so whoever fills a pool, or an address's share of it, cannot keep anyone else out
//! (neighbours behind the same NAT included): a flood's own entries are pushed out as fast as it
//! sends new ones, and the code admitting them never waits.
//!
//! Entries are in one of two phases: *silent* (admitted, nothing shown yet) and *spoken* (has
//! done something that cost it, such as sending a complete TLS ClientHello; see
//! [`Ticket::spoke`]). The oldest silent entry (of the share, or of the pool) is evicted first,
//! a spoken one only when none is silent, so entries that cost nothing to make push out one
//! that has spoken only when every entry in the pool (or the share) has.
//!
//! Each admitted entry is represented by a [`Ticket`], which is told when it was evicted and
//! releases its entry when dropped.

use std::collections::{BTreeMap, HashMap};
use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

/// A bounded set of entries, oldest evicted first when full.
pub struct Pool {
    /// At least 1, so a full pool always has an entry to evict.
    capacity: usize,
    /// At least 1, so a full share always has an entry to evict.
    per_share: usize,
    /// Whether a spoken entry may be evicted when no silent one is left; if not, the newcomer
    /// is refused instead ([`Pool::try_admit`]).
    evict_spoken: bool,
    state: Mutex<State>,
}

/// Whose allowance of a pool an entry counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Share {
    /// A peer address, as [`address_group`] counts it.
    Address(IpAddr),
    /// A verified identity, by the SHA-256 of its SPIFFE id: every certificate of one
    /// identity (renewals included) counts against one share.
    Identity([u8; 32]),
}

impl Pool {
    /// A pool of `capacity` entries, at most `per_share` of one share (each at least 1).
    pub fn new(capacity: usize, per_share: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            per_share: per_share.max(1),
            evict_spoken: true,
            state: Mutex::new(State::default()),
        })
    }

    /// A pool like [`Pool::new`] that evicts only silent entries: a newcomer that would have
    /// to evict a spoken one is refused by [`Pool::try_admit`] instead.
    pub fn sparing_spoken(capacity: usize, per_share: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            per_share: per_share.max(1),
            evict_spoken: false,
            state: Mutex::new(State::default()),
        })
    }

    /// An entry for `peer` counted against its address's share, evicting as [`Pool::admit_as`]
    /// does, except that a pool made by [`Pool::sparing_spoken`] refuses the newcomer (`None`)
    /// when only spoken entries could make way.
    pub fn try_admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Ticket> {
        let share = Share::Address(address_group(peer.ip()));
        let mut state = self.lock();
        let evict_spoken = self.evict_spoken;
        if state.held_by(share) >= self.per_share {
            state.evict_oldest_of(share, evict_spoken).then_some(())?;
        } else if state.len() >= self.capacity {
            state.evict_oldest(evict_spoken).then_some(())?;
        }
        Some(self.ticket(&mut state, share, peer))
    }

    /// An entry for `peer`, counted against its address's share.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Ticket {
        self.admit_as(Share::Address(address_group(peer.ip())), peer)
    }

    /// An entry for `peer` counted against `share`: if the share is full its own oldest entry
    /// is evicted, else if the pool is full the pool's oldest.
    pub fn admit_as(self: &Arc<Self>, share: Share, peer: SocketAddr) -> Ticket {
        let mut state = self.lock();
        if state.held_by(share) >= self.per_share {
            state.evict_oldest_of(share, true);
        } else if state.len() >= self.capacity {
            state.evict_oldest(true);
        }
        self.ticket(&mut state, share, peer)
    }

    fn ticket(self: &Arc<Self>, state: &mut State, share: Share, peer: SocketAddr) -> Ticket {
        let (sequence, evicted) = state.insert(share);
        Ticket {
            pool: self.clone(),
            sequence,
            peer,
            evicted: Some(evicted),
        }
    }

    /// The state, also after a panic elsewhere while it was locked: every change to it is
    /// made without anything in between that can panic, so it is never left half-changed.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the per-address shares count: an IPv4 address (also written IPv4-mapped), or the /64
/// prefix of an IPv6 address. One IPv6 host is usually given a whole /64, so counting its
/// addresses one by one would give it billions of shares.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// The entries of a pool, keyed by their admission sequence (lower is older).
#[derive(Default)]
struct State {
    /// The sequence of the next entry. A u64 counting admissions does not wrap.
    next: u64,
    silent: BTreeMap<u64, Entry>,
    spoken: BTreeMap<u64, Entry>,
    /// Entries per share; a share with none has no key.
    per_share: HashMap<Share, usize>,
}

/// One admitted entry, as the pool keeps it.
struct Entry {
    share: Share,
    /// Never sent on: dropping it (removing the entry) is what tells the ticket it was evicted.
    _evict: oneshot::Sender<()>,
}

impl State {
    fn len(&self) -> usize {
        self.silent.len() + self.spoken.len()
    }

    fn held_by(&self, share: Share) -> usize {
        self.per_share.get(&share).copied().unwrap_or(0)
    }

    /// A new silent entry of `share`: its sequence and the receiver its eviction closes.
    fn insert(&mut self, share: Share) -> (u64, oneshot::Receiver<()>) {
        let (evict, evicted) = oneshot::channel();
        let sequence = self.next;
        self.next += 1;
        self.silent.insert(
            sequence,
            Entry {
                share,
                _evict: evict,
            },
        );
        *self.per_share.entry(share).or_insert(0) += 1;
        (sequence, evicted)
    }

    /// Removes the oldest silent entry of `share`, or if it has none (and `spoken` allows) its
    /// oldest spoken one; whether one was removed. Scans the pool (at most its capacity), only
    /// when a share is full.
    fn evict_oldest_of(&mut self, share: Share, spoken: bool) -> bool {
        let of_share = |entries: &BTreeMap<u64, Entry>| {
            entries
                .iter()
                .find(|(_, entry)| entry.share == share)
                .map(|(sequence, _)| *sequence)
        };
        let found = of_share(&self.silent).or_else(|| of_share(&self.spoken).filter(|_| spoken));
        found.map(|sequence| self.release(sequence)).is_some()
    }

    /// Removes the oldest silent entry, or if there is none (and `spoken` allows) the oldest
    /// spoken one; whether one was removed.
    fn evict_oldest(&mut self, spoken: bool) -> bool {
        let oldest = match self.silent.pop_first() {
            Some((_, entry)) => Some(entry),
            None if spoken => self.spoken.pop_first().map(|(_, entry)| entry),
            None => None,
        };
        oldest.map(|entry| self.forget(entry.share)).is_some()
    }

    /// Moves entry `sequence` to the spoken ones, if it is still silent.
    fn spoke(&mut self, sequence: u64) {
        if let Some(entry) = self.silent.remove(&sequence) {
            self.spoken.insert(sequence, entry);
        }
    }

    /// Removes entry `sequence` if it is still here (an evicted one is not).
    fn release(&mut self, sequence: u64) {
        let entry = self
            .silent
            .remove(&sequence)
            .or_else(|| self.spoken.remove(&sequence));
        if let Some(entry) = entry {
            self.forget(entry.share);
        }
    }

    /// Counts one entry of `share` less.
    fn forget(&mut self, share: Share) {
        if let Some(count) = self.per_share.get_mut(&share) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_share.remove(&share);
            }
        }
    }
}

/// One entry of a [`Pool`]: learns when it was evicted, and releases the entry on drop.
pub struct Ticket {
    pool: Arc<Pool>,
    sequence: u64,
    peer: SocketAddr,
    /// None once the eviction has been seen (a completed receiver must not be polled again).
    evicted: Option<oneshot::Receiver<()>>,
}

impl Ticket {
    /// The peer this entry was admitted for.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Marks this entry as having spoken: from now on it is evicted only when no silent entry
    /// is left to evict.
    pub fn spoke(&self) {
        self.pool.lock().spoke(self.sequence);
    }

    /// What marks this entry as having spoken from elsewhere (a request body, say).
    pub fn speaker(&self) -> Speaker {
        Speaker {
            pool: self.pool.clone(),
            sequence: self.sequence,
        }
    }

    /// Ready once the pool has evicted this entry; registers `cx` to be woken when it does.
    pub fn poll_evicted(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(signal) = self.evicted.as_mut() else {
            return Poll::Ready(());
        };
        // The sender is never sent on, so the receiver completes only when it is dropped.
        if Pin::new(signal).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.evicted = None;
        Poll::Ready(())
    }

    /// Whether the pool has evicted this entry, without registering for a wake-up: one atomic
    /// load, and unlike polling it spends none of the task's cooperative budget (it is
    /// asked before every read of a connection).
    pub fn was_evicted(&mut self) -> bool {
        let Some(signal) = self.evicted.as_mut() else {
            return true;
        };
        match signal.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => false,
            _ => {
                self.evicted = None;
                true
            }
        }
    }

    /// Completes once the pool has evicted this entry.
    pub async fn evicted(&mut self) {
        poll_fn(|cx| self.poll_evicted(cx)).await;
    }
}

/// Marks one entry of a pool as having spoken ([`Ticket::speaker`]).
pub struct Speaker {
    pool: Arc<Pool>,
    sequence: u64,
}

impl Speaker {
    /// As [`Ticket::spoke`].
    pub fn spoke(&self) {
        self.pool.lock().spoke(self.sequence);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pool.lock().release(self.sequence);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn peer(host: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, host], 4433))
    }

    fn evicted(ticket: &mut Ticket) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        ticket.poll_evicted(&mut cx).is_ready()
    }

    #[test]
    fn an_address_beyond_its_share_evicts_its_own_oldest() {
        let pool = Pool::new(8, 2);
        let mut first = pool.admit(peer(1));
        let mut second = pool.admit(peer(1));
        let mut other = pool.admit(peer(2));
        let mut third = pool.admit(peer(1));
        assert!(evicted(&mut first), "the address's oldest made way");
        assert!(!evicted(&mut second) && !evicted(&mut other) && !evicted(&mut third));
        // Within the share too, a silent entry goes before one that has spoken.
        second.spoke();
        let _fourth = pool.admit(peer(1));
        assert!(evicted(&mut third));
        assert!(!evicted(&mut second));
        assert_eq!(pool.lock().held_by(Share::Address(peer(1).ip())), 2);
    }

    #[test]
    fn a_pool_sparing_spoken_entries_refuses_rather_than_evict_one() {
        let pool = Pool::sparing_spoken(3, 2);
        let mut first = pool.try_admit(peer(1)).unwrap();
        first.spoke();
        let second = pool.try_admit(peer(1)).unwrap();
        second.speaker().spoke();
        assert!(
            pool.try_admit(peer(1)).is_none(),
            "its share holds two spoken calls"
        );
        let mut silent = pool.try_admit(peer(2)).unwrap();
        let _newcomer = pool.try_admit(peer(3)).unwrap();
        assert!(
            evicted(&mut silent),
            "the full pool evicted its silent entry"
        );
        assert!(!evicted(&mut first));
        let spoken = pool.try_admit(peer(4)).unwrap();
        spoken.spoke();
        assert!(
            pool.try_admit(peer(5)).is_none(),
            "only spoken entries are left"
        );
    }

    #[test]
    fn an_identity_has_a_share_of_its_own() {
        let pool = Pool::new(8, 2);
        let (one, two) = (Share::Identity([1; 32]), Share::Identity([2; 32]));
        let mut held = [pool.admit_as(one, peer(1)), pool.admit_as(two, peer(1))];
        let _again = [pool.admit_as(one, peer(1)), pool.admit_as(one, peer(3))];
        assert!(
            evicted(&mut held[0]),
            "its third connection closes its first"
        );
        assert!(!evicted(&mut held[1]), "another certificate's is untouched");
    }

    #[test]
    fn a_full_pool_evicts_its_oldest_entry() {
        let pool = Pool::new(3, 1);
        let mut held: Vec<_> = (1..=3).map(|n| pool.admit(peer(n))).collect();
        let mut newest = pool.admit(peer(4));
        let seen: Vec<_> = held.iter_mut().map(evicted).collect();
        assert_eq!(seen, [true, false, false]);
        assert!(!evicted(&mut newest));
        // Seen once, an eviction stays seen.
        assert!(evicted(&mut held[0]));
    }

    #[test]
    fn silent_entries_are_evicted_before_spoken_ones() {
        let pool = Pool::new(3, 3);
        let mut held: Vec<_> = (0..3).map(|_| pool.admit(peer(1))).collect();
        held[0].spoke();
        held[2].spoke();
        let mut flood: Vec<_> = (0..2).map(|_| pool.admit(peer(2))).collect();
        let seen: Vec<_> = held.iter_mut().map(evicted).collect();
        // The first newcomer evicted the one silent entry; the second the oldest silent one
        // then, the first newcomer, not the older entries that had spoken.
        assert_eq!(seen, [false, true, false]);
        assert_eq!(
            flood.iter_mut().map(evicted).collect::<Vec<_>>(),
            [true, false]
        );
        // Only with nothing silent left is the oldest spoken entry evicted.
        drop(flood);
        let filler = pool.admit(peer(3));
        filler.spoke();
        let _last = pool.admit(peer(3));
        assert!(evicted(&mut held[0]));
        assert!(!evicted(&mut held[2]));
    }

    #[test]
    fn a_dropped_ticket_frees_its_slot() {
        let pool = Pool::new(2, 2);
        let mut first = pool.admit(peer(1));
        drop(pool.admit(peer(1)));
        let _again = pool.admit(peer(1));
        assert!(!evicted(&mut first));
    }

    #[test]
    fn an_evicted_ticket_frees_nothing_when_dropped() {
        let pool = Pool::new(2, 2);
        let first = pool.admit(peer(1));
        let mut second = pool.admit(peer(2));
        let _third = pool.admit(peer(1));
        // `first` was evicted, and its address counted once less; dropping it changes nothing.
        drop(first);
        let _fourth = pool.admit(peer(1));
        assert!(
            evicted(&mut second),
            "the pool was full: its oldest made way"
        );
        let state = pool.lock();
        assert_eq!(state.len(), 2);
        assert_eq!(state.held_by(Share::Address(peer(1).ip())), 2);
        assert_eq!(state.held_by(Share::Address(peer(2).ip())), 0);
    }

    #[test]
    fn an_ipv6_host_shares_one_allowance_per_64_prefix() {
        let pool = Pool::new(8, 2);
        let v6 = |host: u16| SocketAddr::from(([0x2001, 0xdb8, 0, 1, 0, 0, 0, host], 4433));
        let mut held = [pool.admit(v6(1)), pool.admit(v6(2))];
        let _third = pool.admit(v6(3));
        assert!(evicted(&mut held[0]), "same /64, same share");
        let next_prefix = SocketAddr::from(([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1], 4433));
        let _elsewhere = pool.admit(next_prefix);
        assert!(!evicted(&mut held[1]));
        // An IPv4-mapped address counts as the IPv4 address it is.
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(address_group(mapped), IpAddr::from([10, 0, 0, 7]));
    }
}
