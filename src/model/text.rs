//! Text conditioning: a hashing tokenizer that never meets an unknown word, and a small
//! transformer text encoder trained with the world model.
//!
//! Tokenizer: a caption is lower-cased and split into words (letters and digits); each word
//! becomes a bag of hashed features, fastText-style: the whole word and its character trigrams
//! (with `<` and `>` marking the ends), each hashed into one of `buckets` rows of an embedding
//! table. A word never seen in training still lands on trained rows through its trigrams
//! ("leftward" shares `<le`, `lef`, `eft` with "left"). The bag is a dense `(tokens, buckets)`
//! weight matrix, so the embedding lookup is a matmul and records gradients in candle 0.11.
//!
//! Encoder: token embeddings + learned positions, `depth` pre-norm transformer blocks
//! ([`Block`]: `ops::softmax`, arithmetic norms), a mean over the caption's words, then an MLP to
//! the transformer's conditioning width whose last layer starts at zero (a checkpoint
//! fine-tuned with text starts out as the same model).

use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::transformer::{linear_zero, Block};

/// Text encoder sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Rows of the hashed embedding table.
    pub buckets: usize,
    /// Longest caption in words (longer captions are refused).
    pub max_tokens: usize,
    /// Token width.
    pub dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig { buckets: 1024, max_tokens: 32, dim: 128, depth: 2, heads: 4 }
    }
}

impl TextConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if [self.buckets, self.max_tokens, self.dim, self.heads].contains(&0) {
            return Err("text buckets, max_tokens, dim and heads must be positive".into());
        }
        if self.dim % self.heads != 0 {
            return Err(format!("text dim {} is not a multiple of heads {}", self.dim, self.heads));
        }
        Ok(())
    }
}

/// Words of a caption: lower-case runs of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
}

fn bucket(s: &str, buckets: usize) -> usize {
    (crate::rng::mix64(crate::rng::fnv1a(s.as_bytes())) % buckets as u64) as usize
}

/// The hashed features of one word: the word itself and its character trigrams.
pub fn word_features(word: &str, buckets: usize) -> Vec<usize> {
    let marked: Vec<char> = format!("<{word}>").chars().collect();
    let mut f = vec![bucket(&format!("w:{word}"), buckets)];
    for w in marked.windows(3) {
        f.push(bucket(&w.iter().collect::<String>(), buckets));
    }
    f
}

/// A tokenised caption: `(max_tokens × buckets)` feature weights (each word's row sums to 1) and
/// a `max_tokens` mask of real words.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    /// Row-major `(max_tokens, buckets)`.
    pub weights: Vec<f32>,
    /// 1 for a word, 0 for padding.
    pub mask: Vec<f32>,
}

/// Tokenises `text`; an empty caption (no words) or one longer than `max_tokens` words is an
/// error naming the problem.
pub fn tokenize(text: &str, cfg: &TextConfig) -> std::result::Result<Tokens, String> {
    let w = words(text);
    if w.is_empty() {
        return Err("the text is empty: give at least one word".into());
    }
    if w.len() > cfg.max_tokens {
        return Err(format!("the text has {} words; the model reads at most {}", w.len(), cfg.max_tokens));
    }
    let mut weights = vec![0f32; cfg.max_tokens * cfg.buckets];
    let mut mask = vec![0f32; cfg.max_tokens];
    for (i, word) in w.iter().enumerate() {
        let f = word_features(word, cfg.buckets);
        let share = 1.0 / f.len() as f32;
        for b in f {
            weights[i * cfg.buckets + b] += share;
        }
        mask[i] = 1.0;
    }
    Ok(Tokens { weights, mask })
}

/// Stacks tokenised captions into `(B, L, buckets)` weights and a `(B, L)` mask; `None` rows
/// (no text) are zeros.
pub fn stack(rows: &[Option<&Tokens>], cfg: &TextConfig, device: &candle_core::Device) -> Result<(Tensor, Tensor)> {
    let (l, nb) = (cfg.max_tokens, cfg.buckets);
    let mut w = vec![0f32; rows.len() * l * nb];
    let mut m = vec![0f32; rows.len() * l];
    for (i, r) in rows.iter().enumerate() {
        if let Some(t) = r {
            w[i * l * nb..(i + 1) * l * nb].copy_from_slice(&t.weights);
            m[i * l..(i + 1) * l].copy_from_slice(&t.mask);
        }
    }
    Ok((Tensor::from_vec(w, (rows.len(), l, nb), device)?, Tensor::from_vec(m, (rows.len(), l), device)?))
}

/// The text encoder: captions to a conditioning vector.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    table: Tensor,
    pos: Tensor,
    blocks: Vec<Block>,
    out1: Linear,
    out2: Linear,
    /// Sizes.
    pub config: TextConfig,
}

impl TextEncoder {
    /// Builds the encoder; its output has `cond_dim` channels.
    pub fn new(config: TextConfig, cond_dim: usize, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = config.validate() {
            candle_core::bail!("{e}");
        }
        let d = config.dim;
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: 0.5 };
        Ok(TextEncoder {
            table: vb.get_with_hints((config.buckets, d), "table", init)?,
            pos: vb.get_with_hints((config.max_tokens, d), "pos", candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 })?,
            blocks: (0..config.depth).map(|i| Block::new(d, config.heads, 2, vb.pp(format!("block{i}")))).collect::<Result<_>>()?,
            out1: linear(d, cond_dim, vb.pp("out1"))?,
            out2: linear_zero(cond_dim, cond_dim, vb.pp("out2"))?,
            config,
        })
    }

    /// `weights` `(B, L, buckets)`, `mask` `(B, L)` -> `(B, cond_dim)`; rows without words give
    /// the encoding of an empty bag (the caller masks them out).
    pub fn forward(&self, weights: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, l, nb) = weights.dims3()?;
        let d = self.config.dim;
        let x = weights.reshape((b * l, nb))?.matmul(&self.table)?.reshape((b, l, d))?.broadcast_add(&self.pos)?;
        let mut h = x;
        for blk in &self.blocks {
            h = blk.forward(&h)?;
        }
        // Mean over words.
        let m = mask.unsqueeze(2)?;
        let n = (mask.sum_keepdim(1)? + 1e-6)?;
        let pooled = h.broadcast_mul(&m)?.sum(1)?.broadcast_div(&n)?;
        self.out2.forward(&self.out1.forward(&pooled)?.silu()?)
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        let c = &self.config;
        let d = c.dim;
        let lin = |l: &Linear| l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count());
        let block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (2 * d * d + 2 * d) + (2 * d * d + d);
        self.table.elem_count() + self.pos.elem_count() + c.depth * block + lin(&self.out1) + lin(&self.out2)
    }
}
