pub mod driver;
pub mod mapping;
pub mod outgoing;
pub mod store;
