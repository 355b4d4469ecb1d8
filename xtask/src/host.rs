//! The one object that talks to a target: the transport (this machine, SSH, or a
//! test's script), the probe that tells what the target is, its container runtime,
//! installing what it lacks, and the session every host task runs its commands
//! through.

pub mod install;
pub mod probe;
pub mod report;
pub mod runtime;
pub mod scripted;
pub mod selection;
pub mod session;
pub mod swarm;
pub mod transport;
