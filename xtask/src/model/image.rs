//! One image of a release, the same record wherever it is: built here, shipped, or
//! recorded in the host's history (`release.json`, `deployments.json`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The service's image name (`database`, `backend-api`, `web-frontend`), or `base`.
    pub service: String,
    /// `name:version`, the reference the compose file names.
    pub reference: String,
    /// The image id in the engine that holds it (the config digest in Docker's classic
    /// store).
    pub id: String,
    /// Layer diff_ids, base first.
    pub layers: Vec<String>,
    /// Its size in this machine's engine, for the disk check before shipping; not
    /// recorded on the host.
    #[serde(skip)]
    pub size_bytes: u64,
}
