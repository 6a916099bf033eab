//! The conformance suite: what every [`Store`] backend must do, written against the trait alone.
//!
//! Each backend's tests call [`run`] on a fresh store (`tests/conformance.rs` does it for
//! [`MemoryStore`](crate::MemoryStore) and [`RedbStore`](crate::RedbStore); a PostgreSQL backend
//! must do the same). Every check keeps to its own key prefix under `conformance/`, so they can
//! share one store, and fails by panicking, like any test.

// This module is a test suite compiled into the library so other backends can run it: panicking
// on a failed check is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Barrier;
use std::thread;

use crate::{Batch, Committed, Error, Store};

/// Threads of the concurrency checks.
const THREADS: usize = 16;

/// Runs every check on `store`, which must not yet hold keys under `conformance/`.
pub fn run(store: &dyn Store) {
    put_get_delete(store);
    batch_is_atomic(store);
    compare_and_swap(store);
    scan_order(store);
    scan_prefix_isolation(store);
    scan_paging(store);
    last_entry(store);
    append_sequences(store);
    append_follows_existing_keys(store);
    append_rejected_with_its_batch(store);
    empty_batch(store);
    concurrent_commits(store);
    concurrent_counter(store);
    insert_if_absent_race(store);
}

/// The key `name` of check `check`.
fn key(check: &str, name: &str) -> Vec<u8> {
    format!("conformance/{check}/{name}").into_bytes()
}

/// `prefix` followed by the big-endian `seq`: the key an append writes.
fn sequenced(prefix: &[u8], seq: u64) -> Vec<u8> {
    [prefix, &seq.to_be_bytes()].concat()
}

/// Commits the batch `build` makes, which must succeed.
fn commit(store: &dyn Store, build: impl FnOnce(&mut Batch)) -> Committed {
    let mut batch = Batch::new();
    build(&mut batch);
    store.commit(batch).expect("commit")
}

/// Asserts that `result` is a conflict naming `key`.
fn assert_conflict(result: Result<Committed, Error>, key: &[u8]) {
    match result {
        Err(Error::Conflict { key: conflicting }) => assert_eq!(conflicting, key),
        other => panic!(
            "expected a conflict on {}, got {other:?}",
            String::from_utf8_lossy(key)
        ),
    }
}

/// Every key under `prefix`.
fn keys(store: &dyn Store, prefix: &[u8]) -> Vec<Vec<u8>> {
    let entries = store.scan(prefix, None, usize::MAX).unwrap();
    entries.into_iter().map(|(key, _)| key).collect()
}

/// Puts overwrite, deletes remove (absent keys too), empty values and binary keys round-trip.
pub fn put_get_delete(store: &dyn Store) {
    let k = key("put", "k");
    assert_eq!(store.get(&k).unwrap(), None);
    commit(store, |b| _ = b.put(k.clone(), "one"));
    assert_eq!(store.get(&k).unwrap(), Some(b"one".to_vec()));
    commit(store, |b| _ = b.put(k.clone(), "two"));
    assert_eq!(store.get(&k).unwrap(), Some(b"two".to_vec()));
    commit(store, |b| _ = b.delete(k.clone()));
    assert_eq!(store.get(&k).unwrap(), None);
    commit(store, |b| _ = b.delete(k.clone()));

    let empty = key("put", "empty");
    commit(store, |b| _ = b.put(empty.clone(), ""));
    assert_eq!(store.get(&empty).unwrap(), Some(Vec::new()));
    let binary = [key("put", "bin").as_slice(), &[0x00, 0xff, 0x80]].concat();
    commit(store, |b| _ = b.put(binary.clone(), vec![0u8, 0xff]));
    assert_eq!(store.get(&binary).unwrap(), Some(vec![0u8, 0xff]));
}

/// A batch applies whole or not at all, and its ops apply in order.
pub fn batch_is_atomic(store: &dyn Store) {
    let (a, x, log) = (
        key("atomic", "a"),
        key("atomic", "x"),
        key("atomic", "log/"),
    );
    commit(store, |b| _ = b.put(a.clone(), "1"));
    let mut batch = Batch::new();
    batch
        .expect_absent(x.clone())
        .expect(a.clone(), Some(b"wrong".to_vec()));
    batch
        .put(x.clone(), "new")
        .delete(a.clone())
        .append(log.clone(), "entry");
    assert_conflict(store.commit(batch), &a);
    assert_eq!(store.get(&x).unwrap(), None);
    assert_eq!(store.get(&a).unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.last(&log).unwrap(), None);

    let (y, z) = (key("atomic", "y"), key("atomic", "z"));
    commit(store, |b| {
        _ = b.put(x.clone(), "1").put(x.clone(), "2").delete(a.clone())
    });
    commit(store, |b| {
        _ = b.put(y.clone(), "1").delete(y.clone()).put(z.clone(), "z")
    });
    assert_eq!(store.get(&x).unwrap(), Some(b"2".to_vec()));
    assert_eq!(store.get(&a).unwrap(), None);
    assert_eq!(store.get(&y).unwrap(), None);
    assert_eq!(store.get(&z).unwrap(), Some(b"z".to_vec()));
}

/// Expect-absent and expect-value conditions, holding and failing.
pub fn compare_and_swap(store: &dyn Store) {
    let k = key("cas", "k");
    let insert = |value: &str| {
        let mut batch = Batch::new();
        batch.expect_absent(k.clone()).put(k.clone(), value);
        store.commit(batch)
    };
    let swap = |expected: &str, value: &str| {
        let mut batch = Batch::new();
        batch
            .expect(k.clone(), Some(expected.into()))
            .put(k.clone(), value);
        store.commit(batch)
    };
    insert("1").unwrap();
    assert_conflict(insert("other"), &k);
    assert_eq!(store.get(&k).unwrap(), Some(b"1".to_vec()));
    swap("1", "2").unwrap();
    assert_conflict(swap("1", "3"), &k);
    assert_eq!(store.get(&k).unwrap(), Some(b"2".to_vec()));

    let mut delete = Batch::new();
    delete
        .expect(k.clone(), Some(b"2".to_vec()))
        .delete(k.clone());
    store.commit(delete).unwrap();
    assert_conflict(swap("2", "4"), &k);
    assert_eq!(store.get(&k).unwrap(), None);
    insert("again").unwrap();
}

/// Scans return keys in byte order, whatever order they were written in.
pub fn scan_order(store: &dyn Store) {
    let prefix = key("order", "");
    let names: [&[u8]; 6] = [b"b", b"\xff", b"a\x00", b"ab", b"a", b"\x00"];
    let full: Vec<Vec<u8>> = names
        .iter()
        .map(|name| [prefix.as_slice(), name].concat())
        .collect();
    commit(store, |b| {
        full.iter().for_each(|k| _ = b.put(k.clone(), k.clone()))
    });
    let mut expected = full.clone();
    expected.sort();
    let entries = store.scan(&prefix, None, usize::MAX).unwrap();
    assert!(entries.iter().all(|(key, value)| key == value));
    assert_eq!(
        entries.into_iter().map(|(key, _)| key).collect::<Vec<_>>(),
        expected
    );
}

/// A scan of `a/` sees nothing of `ab/`, `a`, or `a0`; prefixes ending in `0xff` work.
pub fn scan_prefix_isolation(store: &dyn Store) {
    let (a, ab) = (key("iso", "a/"), key("iso", "ab/"));
    let neighbours = [
        key("iso", "a"),
        key("iso", "a0"),
        key("iso", "a."),
        ab.clone(),
    ];
    let inside = [key("iso", "a/"), key("iso", "a/1"), key("iso", "a/2")];
    commit(store, |b| {
        neighbours
            .iter()
            .chain(&inside)
            .for_each(|k| _ = b.put(k.clone(), "v"));
        b.put([ab.as_slice(), b"1"].concat(), "v");
    });
    assert_eq!(keys(store, &a), inside);
    assert_eq!(
        store.last(&a).unwrap().map(|(k, _)| k),
        inside.last().cloned()
    );
    assert_eq!(
        keys(store, &ab),
        vec![ab.clone(), [ab.as_slice(), b"1"].concat()]
    );

    let ff = [key("iso", "ff").as_slice(), &[0xff]].concat();
    let under = [ff.clone(), [ff.as_slice(), &[0xff, 0x01]].concat()];
    let outside = [key("iso", "ff").as_slice(), &[0xfe]].concat();
    commit(store, |b| {
        under.iter().for_each(|k| _ = b.put(k.clone(), "v"));
        b.put(outside.clone(), "v").put(key("iso", "fg"), "v");
    });
    assert_eq!(keys(store, &ff), under);
    assert_eq!(
        store.last(&ff).unwrap().map(|(k, _)| k),
        under.last().cloned()
    );
}

/// Paging with `start_after` and `limit` visits every key once.
pub fn scan_paging(store: &dyn Store) {
    let prefix = key("paging", "");
    let all: Vec<Vec<u8>> = (0..10).map(|i| key("paging", &format!("{i:02}"))).collect();
    commit(store, |b| {
        all.iter().for_each(|k| _ = b.put(k.clone(), "v"))
    });
    let (mut seen, mut after, mut pages) = (Vec::new(), None::<Vec<u8>>, Vec::new());
    loop {
        let page = store.scan(&prefix, after.as_deref(), 3).unwrap();
        pages.push(page.len());
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        seen.extend(page.into_iter().map(|(k, _)| k));
    }
    assert_eq!(pages, [3, 3, 3, 1, 0]);
    assert_eq!(seen, all);

    assert!(store.scan(&prefix, None, 0).unwrap().is_empty());
    assert_eq!(
        store.scan(&prefix, Some(&b"conformance/"[..]), 1).unwrap()[0].0,
        all[0]
    );
    assert_eq!(
        store.scan(&prefix, Some(&key("paging", "04x")), 1).unwrap()[0].0,
        all[5]
    );
    assert!(
        store
            .scan(&prefix, Some(&key("paging", "99")), 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .scan(&prefix, Some(&b"conformance/zzz"[..]), 10)
            .unwrap()
            .is_empty()
    );
}

/// `last` is the greatest key under a prefix, and follows deletes.
pub fn last_entry(store: &dyn Store) {
    let prefix = key("last", "");
    assert_eq!(store.last(&prefix).unwrap(), None);
    let (one, two) = (key("last", "1"), key("last", "2"));
    commit(store, |b| {
        _ = b.put(two.clone(), "two").put(one.clone(), "one")
    });
    assert_eq!(
        store.last(&prefix).unwrap(),
        Some((two.clone(), b"two".to_vec()))
    );
    commit(store, |b| _ = b.delete(two.clone()));
    assert_eq!(store.last(&prefix).unwrap(), Some((one, b"one".to_vec())));
}

/// Appends number each prefix 1, 2, 3… independently and report the keys they wrote.
pub fn append_sequences(store: &dyn Store) {
    let (log, other, nested) = (
        key("append", "log/"),
        key("append", "other/"),
        key("append", "log/x/"),
    );
    let first = commit(store, |b| {
        _ = b
            .append(log.clone(), "a")
            .append(log.clone(), "b")
            .append(other.clone(), "x")
    });
    assert_eq!(
        first.appended,
        [sequenced(&log, 1), sequenced(&log, 2), sequenced(&other, 1)]
    );
    assert_eq!(
        commit(store, |b| _ = b.append(nested.clone(), "n")).appended,
        [sequenced(&nested, 1)]
    );
    let third = commit(store, |b| _ = b.append(log.clone(), "c"));
    assert_eq!(third.appended, [sequenced(&log, 3)]);
    assert_eq!(store.get(&sequenced(&log, 2)).unwrap(), Some(b"b".to_vec()));
    assert_eq!(
        store.last(&log).unwrap(),
        Some((sequenced(&nested, 1), b"n".to_vec()))
    );
    let values: Vec<Vec<u8>> = (1..=3)
        .map(|seq| store.get(&sequenced(&log, seq)).unwrap().unwrap())
        .collect();
    assert_eq!(values, [b"a", b"b", b"c"]);
    assert_eq!(
        commit(store, |b| _ = b.put(key("append", "unrelated"), "v")).appended,
        Vec::<Vec<u8>>::new()
    );
}

/// The next sequence is one more than the greatest key of exactly `prefix` + 8 bytes, whoever
/// wrote it; keys of other lengths do not count.
pub fn append_follows_existing_keys(store: &dyn Store) {
    let log = key("follow", "log/");
    let append = |store: &dyn Store| commit(store, |b| _ = b.append(log.clone(), "v")).appended;
    assert_eq!(append(store), [sequenced(&log, 1)]);
    commit(store, |b| _ = b.put(sequenced(&log, 41), "put"));
    assert_eq!(append(store), [sequenced(&log, 42)]);
    commit(store, |b| {
        _ = b.delete(sequenced(&log, 42)).delete(sequenced(&log, 41))
    });
    assert_eq!(append(store), [sequenced(&log, 2)]);
    let odd = [
        [log.as_slice(), b"x"].concat(),
        [log.as_slice(), b"123456789"].concat(),
    ];
    commit(store, |b| {
        odd.iter().for_each(|k| _ = b.put(k.clone(), "odd"))
    });
    assert_eq!(append(store), [sequenced(&log, 3)]);
    let same_batch = commit(store, |b| {
        _ = b.put(sequenced(&log, 100), "put").append(log.clone(), "v")
    });
    assert_eq!(same_batch.appended, [sequenced(&log, 101)]);
}

/// A rejected batch consumes no sequence number; an exhausted sequence rejects its whole batch.
pub fn append_rejected_with_its_batch(store: &dyn Store) {
    let (log, taken) = (key("reject", "log/"), key("reject", "taken"));
    commit(store, |b| {
        _ = b.put(taken.clone(), "v").append(log.clone(), "1")
    });
    let mut conflicting = Batch::new();
    conflicting
        .expect_absent(taken.clone())
        .append(log.clone(), "lost");
    assert_conflict(store.commit(conflicting), &taken);
    assert_eq!(
        commit(store, |b| _ = b.append(log.clone(), "2")).appended,
        [sequenced(&log, 2)]
    );

    let (full, other) = (key("reject", "full/"), key("reject", "other"));
    commit(store, |b| _ = b.put(sequenced(&full, u64::MAX), "last"));
    for _ in 0..2 {
        let mut exhausted = Batch::new();
        exhausted
            .put(other.clone(), "v")
            .append(log.clone(), "3")
            .append(full.clone(), "v");
        assert!(
            store.commit(exhausted).is_err(),
            "an exhausted sequence must reject the batch"
        );
        assert_eq!(store.get(&other).unwrap(), None);
        assert_eq!(store.get(&sequenced(&log, 3)).unwrap(), None);
    }
    assert_eq!(keys(store, &full), [sequenced(&full, u64::MAX)]);
    assert_eq!(
        commit(store, |b| _ = b.append(log.clone(), "3")).appended,
        [sequenced(&log, 3)]
    );
}

/// An empty batch, or one of conditions only, commits and writes nothing.
pub fn empty_batch(store: &dyn Store) {
    assert_eq!(store.commit(Batch::new()).unwrap(), Committed::default());
    let k = key("empty", "k");
    let mut check_only = Batch::new();
    check_only.expect_absent(k.clone());
    assert_eq!(store.commit(check_only).unwrap(), Committed::default());
    assert!(keys(store, &key("empty", "")).is_empty());
}

/// Batches committed from many threads at once all land, appends numbered without gaps.
pub fn concurrent_commits(store: &dyn Store) {
    const BATCHES: usize = 50;
    let (puts, log) = (key("concurrent", "put/"), key("concurrent", "log/"));
    let mut appended: Vec<Vec<u8>> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (puts, log) = (&puts, &log);
                scope.spawn(move || {
                    let commit_one = |i: usize| {
                        let k = [puts.as_slice(), format!("{t:02}/{i:03}").as_bytes()].concat();
                        commit(store, |b| _ = b.put(k, "v").append(log.clone(), "v")).appended
                    };
                    (0..BATCHES).flat_map(commit_one).collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    appended.sort();
    let total = (THREADS * BATCHES) as u64;
    assert_eq!(keys(store, &puts).len(), THREADS * BATCHES);
    assert_eq!(
        appended,
        (1..=total)
            .map(|seq| sequenced(&log, seq))
            .collect::<Vec<_>>()
    );
    assert_eq!(keys(store, &log), appended);
}

/// Compare-and-swap increments of one counter from many threads, retried on conflict, lose
/// no increment.
pub fn concurrent_counter(store: &dyn Store) {
    const INCREMENTS: u64 = 10;
    let counter = key("counter", "n");
    let count = |value: Option<&Vec<u8>>| -> u64 {
        value.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap())
    };
    let increment = || loop {
        let current = store.get(&counter).unwrap();
        let n = count(current.as_ref());
        let mut batch = Batch::new();
        batch
            .expect(counter.clone(), current)
            .put(counter.clone(), (n + 1).to_string());
        match store.commit(batch) {
            Ok(_) => return,
            Err(Error::Conflict { .. }) => continue,
            Err(other) => panic!("increment failed: {other}"),
        }
    };
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| (0..INCREMENTS).for_each(|_| increment()));
        }
    });
    assert_eq!(
        count(store.get(&counter).unwrap().as_ref()),
        THREADS as u64 * INCREMENTS
    );
}

/// Of many threads inserting one key if absent at the same moment, exactly one wins.
pub fn insert_if_absent_race(store: &dyn Store) {
    let k = key("race", "k");
    let start = Barrier::new(THREADS);
    let winners: Vec<usize> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (k, start) = (&k, &start);
                scope.spawn(move || {
                    let mut batch = Batch::new();
                    batch.expect_absent(k.clone()).put(k.clone(), t.to_string());
                    start.wait();
                    match store.commit(batch) {
                        Ok(_) => Some(t),
                        Err(Error::Conflict { key }) if key == *k => None,
                        Err(other) => panic!("insert failed: {other}"),
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(winners.len(), 1, "exactly one insert wins");
    assert_eq!(
        store.get(&k).unwrap(),
        Some(winners[0].to_string().into_bytes())
    );
}
