//! Talking to Jellyfin: [`Client`] sends authenticated GETs and decodes JSON into the DTOs in
//! [`dto`]; [`ApiError`] says what went wrong in words a user can act on, naming the endpoint.

mod client;
pub mod date;
mod decode;
#[cfg(test)]
mod decode_tests;
pub mod dto;
mod error;
mod incoming;
mod json_path;
mod shape;
mod skim;

pub use client::{ApiStats, Client, ClientError, EndpointStats};
#[cfg(test)]
pub(crate) use decode::skim_only;
pub use decode::{decode, decode_whole};
pub use error::ApiError;
pub use incoming::Incoming;
