pub mod app_state;
pub mod contacts;
pub mod driver;
pub mod groups;
pub mod mapping;
pub mod outgoing;
pub mod store;
