//! Middleware for the crates Rust services are built on, each behind its cargo feature:
//! `tower` (servers: axum, tonic, hyper).

#[cfg(feature = "tower")]
pub mod tower;
