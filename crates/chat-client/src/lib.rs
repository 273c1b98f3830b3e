//! The terminal client (placeholder until the client lands).
