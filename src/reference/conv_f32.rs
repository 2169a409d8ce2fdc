//! Placeholder: not yet written.
