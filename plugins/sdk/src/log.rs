//! The bounded logger: lines are kept with the run's record in `webhook-logs` and returned by
//! a dry run (`POST /api/user/plugins/{id}/test`).
//!
//! The operator caps the lines one run keeps (20 by default) and their length (512 bytes);
//! lines past the caps are dropped or cut. Never log secrets: tenants read these lines.
//!
//! Use the functions with a string, or the macros with `format!` arguments:
//!
//! ```no_run
//! use wa_gateway_plugin_sdk::log;
//! log::info("configured");
//! log::warn!("no route for {} words", 3);
//! ```

use crate::bindings::wa_gateway::plugin::log as raw;
use crate::Level;

/// Records one line at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    raw::log(level, message.as_ref());
}

/// Records one line at [`Level::Debug`].
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

/// Records one line at [`Level::Info`].
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

/// Records one line at [`Level::Warn`].
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

/// Records one line at [`Level::Error`].
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)*) => { $crate::log::debug(::std::format!($($arg)*)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)*) => { $crate::log::info(::std::format!($($arg)*)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)*) => { $crate::log::warn(::std::format!($($arg)*)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)*) => { $crate::log::error(::std::format!($($arg)*)) };
}

/// Records a `format!`-style line at [`Level::Debug`]: `log::debug!("{n} routes")`.
#[doc(inline)]
pub use crate::__log_debug as debug;
/// Records a `format!`-style line at [`Level::Error`]: `log::error!("{n} routes")`.
#[doc(inline)]
pub use crate::__log_error as error;
/// Records a `format!`-style line at [`Level::Info`]: `log::info!("{n} routes")`.
#[doc(inline)]
pub use crate::__log_info as info;
/// Records a `format!`-style line at [`Level::Warn`]: `log::warn!("{n} routes")`.
#[doc(inline)]
pub use crate::__log_warn as warn;
