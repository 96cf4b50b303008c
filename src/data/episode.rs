//! One recorded episode in memory.

use super::manifest::Events;

/// An episode of `steps` transitions: `steps + 1` frames and `steps` actions, where `actions[i]`
/// is applied between `frames[i]` and `frames[i + 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Frame height.
    pub height: usize,
    /// Frame width.
    pub width: usize,
    /// `[steps + 1, H, W, 3]` u8, row-major.
    pub frames: Vec<u8>,
    /// Action dimension.
    pub action_dim: usize,
    /// `[steps, action_dim]` f32.
    pub actions: Vec<f32>,
    /// Values per state row (0 when there are no states).
    pub state_dim: usize,
    /// `[steps + 1, state_dim]` f32.
    pub states: Vec<f32>,
    /// The episode's seed.
    pub seed: u64,
    /// The policy that chose the actions.
    pub policy: String,
    /// Caption sentence(s).
    pub caption: String,
    /// Checkable events behind the caption.
    pub events: Events,
    /// Transitions in which the agent touched another dynamic body.
    pub contact_steps: usize,
}

impl Episode {
    /// Number of transitions.
    pub fn steps(&self) -> usize {
        self.actions.len() / self.action_dim.max(1)
    }

    /// Number of frames.
    pub fn num_frames(&self) -> usize {
        self.frames.len() / (self.height * self.width * 3).max(1)
    }

    /// Bytes of one frame.
    pub fn frame_len(&self) -> usize {
        self.height * self.width * 3
    }

    /// Frame `t` as `H*W*3` bytes.
    pub fn frame(&self, t: usize) -> &[u8] {
        let n = self.frame_len();
        &self.frames[t * n..(t + 1) * n]
    }

    /// Action `t`.
    pub fn action(&self, t: usize) -> &[f32] {
        &self.actions[t * self.action_dim..(t + 1) * self.action_dim]
    }

    /// State row `t` (empty without states).
    pub fn state(&self, t: usize) -> &[f32] {
        &self.states[t * self.state_dim..(t + 1) * self.state_dim]
    }

    /// Checks that frames, actions and states agree in length.
    pub fn check(&self) -> Result<(), String> {
        let f = self.frame_len();
        if f == 0 || self.frames.len() % f != 0 {
            return Err(format!("{} frame bytes are not a whole number of {}x{}x3 frames", self.frames.len(), self.height, self.width));
        }
        if self.action_dim == 0 || self.actions.len() % self.action_dim != 0 {
            return Err(format!("{} action values are not a whole number of {}-vectors", self.actions.len(), self.action_dim));
        }
        if self.num_frames() != self.steps() + 1 {
            return Err(format!("{} frames for {} actions: an episode of T actions has T+1 frames", self.num_frames(), self.steps()));
        }
        if self.state_dim > 0 && self.states.len() != self.num_frames() * self.state_dim {
            return Err(format!("{} state values for {} frames of {} values", self.states.len(), self.num_frames(), self.state_dim));
        }
        if let Some(v) = self.actions.iter().find(|v| !v.is_finite()) {
            return Err(format!("action value {v} is not finite"));
        }
        Ok(())
    }
}
