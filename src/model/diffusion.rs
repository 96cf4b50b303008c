//! Rectified flow on the next latent frame, with x-prediction (the network outputs the clean
//! target, here the normalised change from the last context latent), and a few-step Euler
//! sampler. τ = 1 is pure noise: `z_τ = (1 - τ) x + τ ε`.

use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::dit::{Dit, DitExtras, DitInput};
use crate::rng::Rng;

/// How futures are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    /// Euler steps from τ = 1 to 0 (1 to 8).
    pub steps: usize,
    /// Scale of the starting noise (1 is the training distribution; 0 gives the mean future).
    pub temperature: f32,
    /// Context noise level the model is told at inference (the context itself is left clean: a
    /// level above 0 tells the model to trust the frames it is given less).
    pub context_noise: f32,
    /// Classifier-free guidance weight on the actions (1 is off: one pass per step).
    pub guidance: f32,
    /// Classifier-free guidance weight on the caption (1 is off; used only with a caption).
    #[serde(default = "one")]
    pub text_guidance: f32,
    /// Decode each predicted chunk to 8-bit frames and encode it again before it becomes
    /// context: the next prediction then reads latents of real images, as in training, instead
    /// of raw predicted latents whose small off-image errors compound.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reencode: bool,
    /// With `reencode`, re-encode every this many chunks (1: each one); the chunks between go
    /// on as raw latents, which keep their colour, while the re-encoded ones pull the window
    /// back to the images' manifold.
    #[serde(default = "one_usize", skip_serializing_if = "is_one")]
    pub reencode_every: usize,
}

fn one() -> f32 {
    1.0
}

fn one_usize() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { steps: 2, temperature: 1.0, context_noise: 0.05, guidance: 1.0, text_guidance: 1.0, reencode: false, reencode_every: 1 }
    }
}

/// A re-encoding setting given on a command line: `off`, or a chunk count N (re-encode every
/// N-th predicted chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReencodeEvery {
    /// Never re-encode.
    Off,
    /// Re-encode every N-th chunk.
    Every(usize),
}

impl std::str::FromStr for ReencodeEvery {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" => Ok(ReencodeEvery::Off),
            n => n.parse().map(ReencodeEvery::Every).map_err(|_| format!("`{n}` is neither `off` nor a chunk count")),
        }
    }
}

impl ReencodeEvery {
    /// Sets `reencode` / `reencode_every` of a sampler and validates it.
    pub fn apply(self, s: &mut SamplerConfig) -> std::result::Result<(), String> {
        match self {
            ReencodeEvery::Off => s.reencode = false,
            ReencodeEvery::Every(n) => {
                s.reencode = true;
                s.reencode_every = n;
            }
        }
        s.validate()
    }
}

impl SamplerConfig {
    /// This sampler with the command-line overrides given (Euler steps, temperature,
    /// re-encoding), validated.
    pub fn overridden(mut self, steps: Option<usize>, temperature: Option<f32>, reencode: Option<ReencodeEvery>) -> std::result::Result<Self, String> {
        self.steps = steps.unwrap_or(self.steps);
        self.temperature = temperature.unwrap_or(self.temperature);
        match reencode {
            Some(r) => r.apply(&mut self)?,
            None => self.validate()?,
        }
        Ok(self)
    }
}

impl SamplerConfig {
    /// Refuses settings outside the supported ranges.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(1..=8).contains(&self.steps) {
            return Err(format!("sampler steps {} must be in 1..=8", self.steps));
        }
        if !(1..=64).contains(&self.reencode_every) {
            return Err(format!("sampler reencode_every {} must be in 1..=64", self.reencode_every));
        }
        for (name, v) in [("temperature", self.temperature), ("context_noise", self.context_noise), ("guidance", self.guidance), ("text_guidance", self.text_guidance)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("sampler {name} {v} must be a finite number >= 0"));
            }
        }
        Ok(())
    }
}

/// Standard normal noise of `shape` from a seeded generator (the same seed, the same noise).
pub fn seeded_noise(rng: &mut Rng, shape: &[usize], device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    Tensor::from_vec(v, shape, device)
}

/// The conditioning of a batch of predictions (everything but the noisy target).
pub struct Conditioning<'a> {
    /// `(B, K, C, H, W)` context latents, oldest first, zeros where missing.
    pub context: &'a Tensor,
    /// `(B, K)` presence of context frames.
    pub context_mask: &'a Tensor,
    /// `(B, K + F - 1, A)` normalised actions (see [`DitInput::actions`]).
    pub actions: &'a Tensor,
    /// `(B, K + F - 1)` presence of actions.
    pub action_mask: &'a Tensor,
    /// `(B)`: 1 where the actions are left out (unconditioned on actions).
    pub drop_actions: &'a Tensor,
    /// Caption, direction, anchor.
    pub extras: Option<DitExtras<'a>>,
}

/// Draws the clean target from `noise` (B, F·C, H, W) with the few-step Euler sampler.
pub fn sample(dit: &Dit, cond: &Conditioning, noise: &Tensor, cfg: &SamplerConfig) -> Result<Tensor> {
    sample_from(dit, cond, &(noise * cfg.temperature as f64)?, 1.0, cfg)
}

/// Integrates from `z` at noise level `tau_start` (1: pure noise; less: SDEdit, `z` holds the
/// noised input) down to 0, with `ceil(steps · tau_start)` Euler steps.
pub fn sample_from(dit: &Dit, cond: &Conditioning, z: &Tensor, tau_start: f32, cfg: &SamplerConfig) -> Result<Tensor> {
    let b = z.dim(0)?;
    let dev = z.device();
    let full = |v: f32| Tensor::full(v, b, dev);
    let ctx_noise = full(cfg.context_noise)?;
    let drop = full(1.0)?;
    let no_text = full(0.0)?;
    let mut z = z.clone();
    let mut x = z.zeros_like()?;
    let tau_start = tau_start.clamp(0.0, 1.0);
    let steps = ((cfg.steps as f32 * tau_start).ceil() as usize).max(1);
    let with_text = cond.extras.is_some_and(|e| e.text.is_some());
    for i in 0..steps {
        let tau = tau_start * (1.0 - i as f32 / steps as f32);
        let tau_next = tau_start * (1.0 - (i + 1) as f32 / steps as f32);
        let t = full(tau)?;
        let input = |drop_actions, extras| DitInput {
            noisy: &z,
            context: cond.context,
            context_mask: cond.context_mask,
            tau: &t,
            context_noise: &ctx_noise,
            actions: cond.actions,
            action_mask: cond.action_mask,
            drop_actions,
            extras,
        };
        let xc = dit.forward(&input(cond.drop_actions, cond.extras.as_ref()))?;
        x = xc.clone();
        if (cfg.guidance - 1.0).abs() > 1e-6 {
            let xu = dit.forward(&input(&drop, cond.extras.as_ref()))?;
            x = (&x + ((&xc - &xu)? * (cfg.guidance - 1.0) as f64)?)?;
        }
        if with_text && (cfg.text_guidance - 1.0).abs() > 1e-6 {
            let e = cond.extras.map(|e| DitExtras { text_keep: &no_text, ..e });
            let xu = dit.forward(&input(cond.drop_actions, e.as_ref()))?;
            x = (&x + ((&xc - &xu)? * (cfg.text_guidance - 1.0) as f64)?)?;
        }
        if tau_next > 0.0 {
            // ε̂ from x̂, then step to τ_next on the straight path.
            let eps = ((&z - (&x * (1.0 - tau as f64))?)? / tau as f64)?;
            z = ((&x * (1.0 - tau_next as f64))? + (eps * tau_next as f64)?)?;
        }
    }
    Ok(x)
}
