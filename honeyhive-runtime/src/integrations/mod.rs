//! Middleware for the crates Rust services are built on, each behind its cargo feature:
//! `tower` (servers: axum, tonic, hyper) and `reqwest` (clients built with reqwest-middleware).

#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "tower")]
pub mod tower;
