pub mod driver;
pub mod mapping;
pub mod store;
