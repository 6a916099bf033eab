//! The govtrust encrypted backup agent.
//!
//! Placeholder: the repository format, the agent binary `govtrust-backup` and the catalog
//! service come with the backup issue (see `DESIGN.md`, "Backups").
