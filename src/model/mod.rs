//! The world model's networks: the video compression network (autoencoder) and, next, the
//! spacetime-patch diffusion transformer.

pub mod autoencoder;
pub mod blocks;
pub mod frames;

pub use autoencoder::{Autoencoder, AutoencoderConfig};
