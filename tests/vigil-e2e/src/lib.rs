//! End-to-end tests of Vigil live in `tests/e2e.rs` (one test binary, with its
//! modules under `tests/e2e/`); this library is intentionally empty.
