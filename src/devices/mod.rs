//! WhatsApp devices: the driver seam, the simulator, QR rendering and the per-device supervisor.

pub mod driver;
pub mod manager;
pub mod qr;
pub mod simulator;
pub mod whatsapp_web;
