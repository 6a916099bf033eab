//! Atomic write batches with compare-and-swap conditions.

/// One write of a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Appends `value` at `prefix` followed by the next sequence number of that prefix
    /// (8 bytes, big-endian, starting at 1): an append-only log without a read-modify-write.
    Append { prefix: Vec<u8>, value: Vec<u8> },
    /// Removes `key` (no error when absent).
    Delete { key: Vec<u8> },
    /// Sets `key` to `value`.
    Put { key: Vec<u8>, value: Vec<u8> },
}

/// A compare-and-swap guard: the batch applies only if `key` currently holds `expected`
/// (`None`: the key must be absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub key: Vec<u8>,
    pub expected: Option<Vec<u8>>,
}

/// Writes applied together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub conditions: Vec<Condition>,
    pub ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }

    /// Appends `value` under `prefix` with the prefix's next sequence number.
    pub fn append(&mut self, prefix: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Append {
            prefix: prefix.into(),
            value: value.into(),
        });
        self
    }

    /// Requires `key` to hold `expected` (`None`: absent) when the batch commits.
    pub fn expect(&mut self, key: impl Into<Vec<u8>>, expected: Option<Vec<u8>>) -> &mut Self {
        self.conditions.push(Condition {
            key: key.into(),
            expected,
        });
        self
    }

    /// Requires `key` to be absent when the batch commits (insert-if-absent).
    pub fn expect_absent(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.expect(key, None)
    }

    /// Adds `other`'s conditions and writes to this batch.
    pub fn extend(&mut self, other: Batch) -> &mut Self {
        self.conditions.extend(other.conditions);
        self.ops.extend(other.ops);
        self
    }

    /// True when the batch writes nothing and checks nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.conditions.is_empty()
    }
}
