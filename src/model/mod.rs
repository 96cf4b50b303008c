//! The world model's networks: the video compression network (autoencoder) and the spacetime
//! patch diffusion transformer, built from shared transformer pieces.

pub mod autoencoder;
pub mod conv;
pub mod diffusion;
pub mod dit;
pub mod text;
pub mod frames;
pub mod transformer;

pub use autoencoder::{Autoencoder, AutoencoderConfig};
