//! Talking to Jellyfin: [`Client`] sends authenticated GETs and decodes JSON into the DTOs in
//! [`dto`]; [`ApiError`] says what went wrong in words a user can act on, naming the endpoint.

mod client;
pub mod date;
mod decode;
pub mod dto;
mod error;
mod json_path;

pub use client::{ApiStats, Client, ClientError, EndpointStats};
pub use decode::decode;
pub use error::ApiError;
