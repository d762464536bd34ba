//! Messages: recipients, the send path, history and the inbound pipeline.

pub mod phone;
pub mod inbound;
pub mod media;
pub mod outbound;
