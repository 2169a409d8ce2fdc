//! Placeholder: not yet written (issue 4).
