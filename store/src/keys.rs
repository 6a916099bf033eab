//! Key arithmetic shared by the backends: prefix ranges and the sequence numbers of appends.
//!
//! An [`Op::Append`](crate::Op::Append) under `prefix` writes the key `prefix ++ seq`, `seq` a
//! big-endian `u64`. The next `seq` is one more than the sequence of the greatest existing key
//! under `prefix` that is exactly [`SEQUENCE_LEN`] bytes longer than `prefix` (1 when none).

use std::ops::Bound;

/// Bytes an append adds to its prefix.
pub(crate) const SEQUENCE_LEN: usize = 8;

/// A range of keys, in the form both `BTreeMap::range` and redb's `range` take.
pub(crate) type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The key an append under `prefix` with sequence `seq` writes.
pub(crate) fn sequenced(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + SEQUENCE_LEN);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The sequence of `key` if it is an appended key of `prefix`.
pub(crate) fn sequence_of(prefix: &[u8], key: &[u8]) -> Option<u64> {
    let tail: [u8; SEQUENCE_LEN] = key.strip_prefix(prefix)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The only prefix whose sequence a write of `key` can change: `key` without its last
/// [`SEQUENCE_LEN`] bytes (none when `key` is shorter).
pub(crate) fn sequence_prefix(key: &[u8]) -> Option<&[u8]> {
    key.get(..key.len().checked_sub(SEQUENCE_LEN)?)
}

/// The greatest key an append under `prefix` can write: `prefix ++ [0xff; 8]`.
pub(crate) fn sequence_ceiling(prefix: &[u8]) -> Vec<u8> {
    sequenced(prefix, u64::MAX)
}

/// The range holding every appended key of `prefix` (and some other keys, which
/// [`sequence_of`] tells apart).
pub(crate) fn sequence_bounds<'a>(prefix: &'a [u8], ceiling: &'a [u8]) -> KeyBounds<'a> {
    (Bound::Included(prefix), Bound::Included(ceiling))
}

/// The least key greater than every key starting with `prefix`; `None` when there is none
/// (`prefix` is empty or all `0xff`), so the range is unbounded above.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if let Some(next) = last.checked_add(1) {
            end.push(next);
            return Some(end);
        }
    }
    None
}

/// The keys starting with `prefix` (whose [`prefix_end`] is `end`) and greater than
/// `start_after`; `None` when that range is empty.
///
/// Backends must not build an inverted range: `BTreeMap::range` panics on one.
pub(crate) fn scan_bounds<'a>(
    prefix: &'a [u8],
    start_after: Option<&'a [u8]>,
    end: Option<&'a [u8]>,
) -> Option<KeyBounds<'a>> {
    let lower = match start_after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    let upper = match end {
        Some(end) if start_after.is_some_and(|after| after >= end) => return None,
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    Some((lower, upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn sequence_round_trips() {
        let key = sequenced(b"log/", 7);
        assert_eq!(sequence_of(b"log/", &key), Some(7));
        assert_eq!(sequence_prefix(&key), Some(&b"log/"[..]));
        assert_eq!(sequence_of(b"log/", b"log/short"), None);
        assert_eq!(sequence_of(b"log/", b"other/12345678"), None);
        assert_eq!(sequence_prefix(b"short"), None);
    }

    #[test]
    fn scan_bounds_never_inverts() {
        assert_eq!(scan_bounds(b"a/", Some(b"b"), Some(b"a0")), None);
        assert_eq!(scan_bounds(b"a/", Some(b"a0"), Some(b"a0")), None);
        assert_eq!(
            scan_bounds(b"a/", Some(b"0"), Some(b"a0")),
            Some((Bound::Included(&b"a/"[..]), Bound::Excluded(&b"a0"[..])))
        );
        assert_eq!(
            scan_bounds(b"", Some(b"x"), None),
            Some((Bound::Excluded(&b"x"[..]), Bound::Unbounded))
        );
    }
}
