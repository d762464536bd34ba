//! Stands in for the `whatsapp-web` driver until it is built (see the README's status table):
//! every connection attempt fails with a clear reason, so devices report `connecting` with the
//! error and the supervisor retries with backoff instead of crashing or flooding the log.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::driver::{DeviceKey, Driver, DriverError, DriverEvent, Session};

pub struct Unavailable;

#[async_trait]
impl Driver for Unavailable {
    async fn open(&self, _: DeviceKey, _: mpsc::Sender<DriverEvent>) -> Result<Arc<dyn Session>, DriverError> {
        Err(DriverError::Failed(
            "the whatsapp-web driver is not available in this build; use whatsapp.driver = \"simulator\"".into(),
        ))
    }

    async fn forget(&self, _: i64) -> Result<(), DriverError> {
        Ok(())
    }

    async fn is_paired(&self, _: i64) -> Result<bool, DriverError> {
        Ok(false)
    }
}
