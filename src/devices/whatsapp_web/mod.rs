pub mod store;
pub mod driver;
pub mod mapping;
