//! The store's error type.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend failed (I/O, corruption, a full disk). Nothing of the batch was applied.
    #[error("storage backend failed: {context}")]
    Backend {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store was closed (server shutting down).
    #[error("store is closed")]
    Closed,
    /// A compare-and-swap condition did not hold; nothing of the batch was applied.
    #[error(
        "conflict: key {} does not hold the expected value",
        String::from_utf8_lossy(key)
    )]
    Conflict { key: Vec<u8> },
    /// A record could not be encoded for storage (an audit event the log refuses, for
    /// example). Returned before anything is written: the caller's batch must not be committed.
    #[error("cannot encode {what}")]
    Encoding {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Opening the store failed.
    #[error("cannot open store at {path}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub(crate) fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            context: context.into(),
            source: source.into(),
        }
    }
}
