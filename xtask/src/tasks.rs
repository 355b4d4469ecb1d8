//! One file per `cargo xtask` command, each thin: parse, call the layers below,
//! print. Tasks never call each other.

pub mod audit;
pub mod backup;
pub mod certs;
pub mod deploy;
pub mod doctor;
pub mod images;
pub mod lock;
pub mod logs;
pub mod render;
pub mod restore;
pub mod rollback;
pub mod status;
pub mod verify;
