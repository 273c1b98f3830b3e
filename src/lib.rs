//! Holds the workspace-level end-to-end tests and examples; the daemon and client live in `crates/`.
