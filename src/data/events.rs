//! Captions from what happened: which body moved where, which bodies touched, where they ended.

use super::manifest::{EndedIn, Events, Moved, STATE_FIELDS, STATE_PX};
use crate::scene::Scene;

/// Displacement in pixels under which a body counts as still.
pub const STILL_PX: f32 = 2.0;

/// Builds the events of an episode from its first and last state rows and the body pairs that
/// touched (indices into `scene.bodies`).
pub fn episode_events(scene: &Scene, first: &[f32], last: &[f32], touched: &[(usize, usize)]) -> Events {
    let n = STATE_FIELDS.len();
    let mut ev = Events::default();
    for (i, b) in scene.bodies.iter().enumerate() {
        let (x0, y0) = (first[i * n + STATE_PX], first[i * n + STATE_PX + 1]);
        let (x1, y1) = (last[i * n + STATE_PX], last[i * n + STATE_PX + 1]);
        let (dx, dy) = (x1 - x0, y1 - y0);
        let d = (dx * dx + dy * dy).sqrt();
        if d > STILL_PX {
            let direction = if dx.abs() >= dy.abs() {
                if dx > 0.0 { "right" } else { "left" }
            } else if dy > 0.0 {
                "down"
            } else {
                "up"
            };
            ev.moved.push(Moved { body: b.name.clone(), direction: direction.into(), distance_px: d });
        } else {
            ev.still.push(b.name.clone());
        }
        let p = [last[i * n], last[i * n + 1], last[i * n + 2]];
        for r in scene.regions.iter().filter(|r| r.contains(p)) {
            ev.ended_in.push(EndedIn { body: b.name.clone(), region: r.name.clone() });
        }
    }
    // The actor first: an agent body before an object, else by name.
    let key = |i: usize| (scene.bodies[i].role != crate::scene::Role::Agent, scene.bodies[i].name.clone());
    let mut pairs: Vec<[String; 2]> = touched
        .iter()
        .map(|&(a, b)| {
            let (a, b) = if key(a) <= key(b) { (a, b) } else { (b, a) };
            [scene.bodies[a].name.clone(), scene.bodies[b].name.clone()]
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    ev.touched = pairs;
    ev
}

/// Renders events into sentences with the scene's templates.
pub fn caption(scene: &Scene, ev: &Events) -> String {
    let t = &scene.captions;
    let mut s: Vec<String> = Vec::new();
    for m in &ev.moved {
        s.push(t.moved.replace("{body}", &m.body).replace("{direction}", &m.direction));
    }
    for b in &ev.still {
        s.push(t.still.replace("{body}", b));
    }
    for [a, b] in &ev.touched {
        s.push(t.touched.replace("{a}", a).replace("{b}", b));
    }
    for e in &ev.ended_in {
        s.push(t.ended_in.replace("{body}", &e.body).replace("{region}", &e.region));
    }
    let mut out = s.join(". ");
    if !out.is_empty() {
        out.push('.');
    }
    out
}

/// Steps a caption describes when it conditions generation (text-to-video clips).
pub const CLIP_STEPS: usize = 16;

/// Sentence templates for clip captions: `{body}` and `{direction}` are filled in.
pub struct Phrasing {
    /// For a body that moved.
    pub moved: &'static [&'static str],
    /// For a body that stayed within [`STILL_PX`].
    pub still: &'static [&'static str],
}

/// The templates captions are trained with.
pub const TRAIN_PHRASING: Phrasing = Phrasing {
    moved: &["the {body} slides {direction}", "the {body} moves {direction}", "{body} goes {direction}", "the {body} is pushed {direction}", "{direction} goes the {body}"],
    still: &["the {body} stays still", "the {body} does not move", "{body} stays put"],
};

/// Templates never seen in training (to measure whether captions generalise).
pub const HELDOUT_PHRASING: Phrasing = Phrasing {
    moved: &["the {body} travels {direction}wards", "watch the {body} head {direction}"],
    still: &["the {body} remains where it is", "nothing shifts the {body}"],
};

/// What a clip shows, per body: `None` for still, else the dominant direction of its
/// displacement (`left`, `right`, `up`, `down`), from pixel positions at the clip's two ends.
pub fn clip_motion(first: &[[f32; 2]], last: &[[f32; 2]]) -> Vec<Option<&'static str>> {
    first
        .iter()
        .zip(last)
        .map(|(a, b)| {
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            if !(dx.is_finite() && dy.is_finite()) || (dx * dx + dy * dy).sqrt() <= STILL_PX {
                return None;
            }
            Some(if dx.abs() >= dy.abs() {
                if dx > 0.0 { "right" } else { "left" }
            } else if dy > 0.0 {
                "down"
            } else {
                "up"
            })
        })
        .collect()
}

/// A caption of `motion` (one entry per body in `names`), each sentence from a template drawn by
/// `pick(n)` (which returns an index below `n`), bodies in a drawn order.
pub fn phrase_motion(names: &[String], motion: &[Option<&str>], phrasing: &Phrasing, mut pick: impl FnMut(usize) -> usize) -> String {
    let mut order: Vec<usize> = (0..names.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, pick(i + 1));
    }
    let sentences: Vec<String> = order
        .iter()
        .map(|&i| match motion[i] {
            Some(d) => phrasing.moved[pick(phrasing.moved.len())].replace("{body}", &names[i]).replace("{direction}", d),
            None => phrasing.still[pick(phrasing.still.len())].replace("{body}", &names[i]),
        })
        .collect();
    format!("{}.", sentences.join(". "))
}

/// Fraction of bodies whose motion (still, or its direction) agrees between two descriptions.
pub fn motion_agreement(a: &[Option<&str>], b: &[Option<&str>]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}
