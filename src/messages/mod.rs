//! Messages: recipients, the send path, history and the inbound pipeline.

pub mod inbound;
pub mod media;
pub mod outbound;
pub mod phone;
