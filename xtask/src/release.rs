//! A release on a host: its state and history, the lock, shipping images, the stack
//! (compose up/down/inspect), waiting for health, and making a release current or
//! restoring the one before it.

pub mod activate;
pub mod audit;
pub mod backup;
pub mod certs;
pub mod cluster;
pub mod fleet;
pub mod remote_build;
pub mod rollout;
pub mod ship;
pub mod stack;
pub mod state;
pub mod write;
