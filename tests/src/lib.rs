//! Helpers for the container tests: see tests/containers/.
