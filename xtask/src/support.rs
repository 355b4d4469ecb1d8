//! The bottom layer: what every other layer uses and that knows nothing of targets or
//! releases. Commands as values, the one logger, the project's checkout, digests.

pub mod cargo;
pub mod command;
pub mod digest;
pub mod interrupt;
pub mod log;
pub mod project;
pub mod secrets;
