//! What a deployment is, as data: the configuration, the typed compose file and env
//! file, the per-OS path strategy, the target platform's vocabulary. Pure: no command
//! runs here.

pub mod certificate;
pub mod compose;
pub mod config;
pub mod image;
pub mod paths;
pub mod platform;
pub mod service;
pub mod ssh_target;
pub mod stack;
