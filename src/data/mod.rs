//! Episodes and datasets: the contract between the simulator, importers and training.

pub mod episode;
pub mod events;
pub mod import;
pub mod manifest;
pub mod store;

pub use episode::Episode;
pub use manifest::{ActionSpec, BodyInfo, EpisodeInfo, Events, Manifest, StateSpec, FORMAT_VERSION, STATE_FIELDS, STATE_PX};
pub use store::{write_atomic, DataError, Dataset, DatasetWriter};
