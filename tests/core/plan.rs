//! The planner on toy worlds whose dynamics are known, so the optimum is known.

use foresight::plan::cost::GoalGeometry;
use foresight::plan::{Imagination, Method, Planner, PlannerConfig};

/// A point that moves by its action (each channel in [-1, 1]) every step, from `start`.
struct Point {
    start: [f32; 2],
    goal: [f32; 2],
    calls: usize,
}

impl Point {
    fn roll(&self, seq: &[Vec<f32>]) -> Vec<[f32; 2]> {
        let mut p = self.start;
        seq.iter()
            .map(|a| {
                p = [p[0] + a[0], p[1] + a[1]];
                p
            })
            .collect()
    }
}

impl Imagination for Point {
    /// Sum over the horizon of the squared distance to the goal: the optimum rushes straight at
    /// the goal at full speed and stays there.
    fn costs(&mut self, c: &[Vec<Vec<f32>>]) -> anyhow::Result<Vec<f32>> {
        self.calls += 1;
        Ok(c.iter().map(|seq| self.roll(seq).iter().map(|p| (p[0] - self.goal[0]).powi(2) + (p[1] - self.goal[1]).powi(2)).sum()).collect())
    }
}

fn optimum(start: [f32; 2], goal: [f32; 2], h: usize) -> f32 {
    // Per axis the optimum moves by min(1, remaining) each step.
    let mut p = start;
    let mut cost = 0.0;
    for _ in 0..h {
        for k in 0..2 {
            p[k] += (goal[k] - p[k]).clamp(-1.0, 1.0);
        }
        cost += (p[0] - goal[0]).powi(2) + (p[1] - goal[1]).powi(2);
    }
    cost
}

#[test]
fn cem_and_mppi_find_the_optimum_of_a_known_world() {
    let (start, goal) = ([0.0, 0.0], [3.0, -2.0]);
    let best = optimum(start, goal, 6);
    for method in [Method::Cem, Method::Mppi] {
        let cfg = PlannerConfig { horizon: 6, candidates: 256, iterations: 8, elites: 16, method, temperature: 0.1, init_std: 0.5, min_std: 0.01, momentum: 0.0, seed: 3, hold: 1, prior_share: 0.0 };
        let mut planner = Planner::new(cfg, vec![-1.0; 2], vec![1.0; 2]).unwrap();
        let mut world = Point { start, goal, calls: 0 };
        let plan = planner.plan(&mut world).unwrap();
        assert_eq!(world.calls, 8, "one batched call per iteration");
        assert_eq!(plan.evaluated, 8 * 256);
        assert!(plan.best_cost <= best + 0.15, "{method:?}: cost {} vs optimum {best}", plan.best_cost);
        // The first action heads for the goal at full speed on both axes.
        assert!(plan.best[0][0] > 0.9 && plan.best[0][1] < -0.9, "{method:?}: first action {:?}", plan.best[0]);
    }
}

#[test]
fn held_noise_is_piecewise_constant_and_still_finds_the_optimum() {
    let cfg = PlannerConfig { horizon: 6, candidates: 32, iterations: 1, init_std: 0.05, hold: 3, seed: 9, ..PlannerConfig::default() };
    let mut p = Planner::new(cfg.clone(), vec![-1.0; 2], vec![1.0; 2]).unwrap();
    let search = p.begin();
    let cands = p.propose(&search);
    assert!(cands[0].iter().flatten().all(|&a| a == 0.0), "candidate 0 is the mean");
    for c in &cands[1..] {
        for t in 0..6 {
            assert_eq!(c[t], c[t - t % 3], "steps {t} and {} share a draw", t - t % 3);
        }
        assert_ne!(c[0], c[3], "each hold block draws anew");
    }
    // With hold 1 the steps of a candidate differ.
    let mut p1 = Planner::new(PlannerConfig { hold: 1, ..cfg.clone() }, vec![-1.0; 2], vec![1.0; 2]).unwrap();
    let s1 = p1.begin();
    assert!(p1.propose(&s1)[1..].iter().all(|c| c[0] != c[1]));
    assert!(Planner::new(PlannerConfig { hold: 0, ..cfg }, vec![-1.0; 2], vec![1.0; 2]).is_err());
    // The mean is refitted per step, so held noise still reaches an optimum that is not
    // piecewise constant (full speed on y for 2 steps, on x for 3).
    let (start, goal) = ([0.0, 0.0], [3.0, -2.0]);
    let best = optimum(start, goal, 6);
    let cfg = PlannerConfig { horizon: 6, candidates: 256, iterations: 8, elites: 16, init_std: 0.5, min_std: 0.01, momentum: 0.0, seed: 3, hold: 2, ..PlannerConfig::default() };
    let plan = Planner::new(cfg, vec![-1.0; 2], vec![1.0; 2]).unwrap().plan(&mut Point { start, goal, calls: 0 }).unwrap();
    assert!(plan.best_cost <= best + 0.3, "hold 2: cost {} vs optimum {best}", plan.best_cost);
}

#[test]
fn a_prior_is_proposed_and_searched_around() {
    let cfg = PlannerConfig { horizon: 4, candidates: 9, iterations: 1, elites: 2, init_std: 0.1, hold: 2, seed: 5, prior_share: 0.5, ..PlannerConfig::default() };
    let mut p = Planner::new(cfg.clone(), vec![-1.0; 2], vec![1.0; 2]).unwrap();
    // Without a prior the share does nothing: every candidate is the mean plus noise.
    let plain = p.propose(&p.begin());
    assert!(plain[1..].iter().all(|c| c.iter().flatten().all(|a| a.abs() < 0.6)), "around the mean 0");
    // A short prior is repeated to the horizon and clamped to the bounds.
    p.set_prior(Some(vec![vec![0.9, -2.0]])).unwrap();
    let cands = p.propose(&p.begin());
    assert_eq!(cands[1], vec![vec![0.9, -1.0]; 4], "candidate 1 is the prior itself");
    assert!(cands[0].iter().flatten().all(|&a| a == 0.0), "candidate 0 is still the mean");
    // round(8 * 0.5) = 4 candidates (1..=4) centred on the prior, the rest on the mean.
    for c in &cands[2..=4] {
        assert!(c.iter().all(|a| (a[0] - 0.9).abs() < 0.6 && a[1] < -0.4), "around the prior: {c:?}");
        assert_ne!(c, &cands[1], "with noise");
    }
    for c in &cands[5..] {
        assert!(c.iter().flatten().all(|a| a.abs() < 0.6), "around the mean: {c:?}");
    }
    assert!(p.set_prior(Some(vec![vec![f32::NAN, 0.0]])).is_err());
    assert!(p.set_prior(Some(vec![vec![0.0]])).is_err());
    assert!(p.set_prior(Some(Vec::new())).is_err());
    assert!(Planner::new(PlannerConfig { prior_share: 1.5, ..cfg.clone() }, vec![-1.0; 2], vec![1.0; 2]).is_err());
    // A prior at the optimum is found in one round even when the mean is far from it.
    let (start, goal) = ([0.0, 0.0], [4.0, 4.0]);
    let mut p = Planner::new(PlannerConfig { candidates: 8, iterations: 1, init_std: 0.05, seed: 2, ..cfg }, vec![-1.0; 2], vec![1.0; 2]).unwrap();
    p.set_prior(Some(vec![vec![1.0, 1.0]])).unwrap();
    let plan = p.plan(&mut Point { start, goal, calls: 0 }).unwrap();
    assert_eq!(plan.best, vec![vec![1.0, 1.0]; 4]);
    assert_eq!(plan.best_cost, optimum(start, goal, 4));
}

#[test]
fn a_push_gain_scales_the_imagined_displacement_and_costs_a_push_away_more() {
    use foresight::plan::model::calibrated_position;
    let (s, b) = (Some([10.0, 20.0]), Some([12.0, 19.0]));
    assert_eq!(calibrated_position(s, b, 1.0, 0.0), b);
    assert_eq!(calibrated_position(s, b, 1.5, 0.0), Some([13.0, 18.5]));
    assert_eq!(calibrated_position(None, b, 1.5, 0.0), b, "no start: as imagined");
    assert_eq!(calibrated_position(s, None, 1.5, 0.0), None, "lost stays lost");
    // A body imagined pushed 2 px away from the goal costs 1 px more with gain 1.5.
    let scene = foresight::scene::Scene::load(crate::root().join("scenes/push.ron")).unwrap();
    let g = GoalGeometry::new(&scene).unwrap();
    let start = [g.centre[0] + 15.0, g.centre[1]];
    let away = Some([start[0] + 2.0, start[1]]);
    let cost = |gain| g.cost(calibrated_position(Some(start), away, gain, 0.0), None, 0.0, 5.0, 0.0);
    assert!((cost(1.5) - cost(1.0) - 1.0).abs() < 1e-4, "{} vs {}", cost(1.5), cost(1.0));
}

#[test]
fn a_push_deadzone_drops_ghost_drifts_and_shortens_real_pushes_by_its_length() {
    use foresight::plan::model::calibrated_position;
    let s = Some([10.0, 20.0]);
    // A drift of 1.5 px (3-4-5 scaled) inside a 2-px dead zone: the body stays where it was.
    assert_eq!(calibrated_position(s, Some([10.9, 21.2]), 1.0, 2.0), s);
    // A push of 10 px keeps its direction and loses 2 px; the gain applies after.
    let p = calibrated_position(s, Some([16.0, 28.0]), 1.0, 2.0).unwrap();
    assert!((p[0] - 14.8).abs() < 1e-4 && (p[1] - 26.4).abs() < 1e-4, "{p:?}");
    let q = calibrated_position(s, Some([16.0, 28.0]), 2.0, 2.0).unwrap();
    assert!((q[0] - 19.6).abs() < 1e-4 && (q[1] - 32.8).abs() < 1e-4, "{q:?}");
    assert_eq!(calibrated_position(s, None, 1.0, 2.0), None, "lost stays lost");
    assert_eq!(calibrated_position(None, Some([1.0, 1.0]), 1.0, 2.0), Some([1.0, 1.0]), "no start: as imagined");
    // Ranking: a ghost drift towards the goal no longer beats a body left in place.
    let scene = foresight::scene::Scene::load(crate::root().join("scenes/push.ron")).unwrap();
    let g = GoalGeometry::new(&scene).unwrap();
    let start = [g.centre[0] + 15.0, g.centre[1]];
    let drift = Some([start[0] - 1.5, start[1]]);
    let cost = |dz| g.cost(calibrated_position(Some(start), drift, 1.0, dz), None, 0.0, 5.0, 0.0);
    assert!(cost(0.0) < cost(2.0) && (cost(2.0) - g.distance_px(Some(start))).abs() < 1e-4);
}

#[test]
fn a_contact_gate_judges_reach_by_every_imagined_position_of_the_agent() {
    use foresight::plan::model::out_of_reach;
    let body = Some([30.0, 30.0]);
    let far = [Some([10.0, 10.0]), None, Some([12.0, 14.0]), Some([14.0, 18.0])];
    assert!(out_of_reach(body, far, 12.0), "never within 12 px: the body stays");
    // One frame 11 px away (the last one or any other) is a reach.
    let mut near = far;
    near[1] = Some([19.0, 30.0]);
    assert!(!out_of_reach(body, near, 12.0));
    assert!(out_of_reach(body, near, 10.0), "a smaller gate: still out of reach");
    assert!(!out_of_reach(body, far, 0.0), "no gate");
    assert!(!out_of_reach(None, far, 12.0), "no body start: as imagined");
    assert!(!out_of_reach(body, [None, None], 12.0), "no agent seen: as imagined");
}

#[test]
fn warm_start_and_seeds() {
    let cfg = PlannerConfig { horizon: 5, candidates: 64, iterations: 3, ..PlannerConfig::default() };
    let run = |seed| {
        let mut p = Planner::new(PlannerConfig { seed, ..cfg.clone() }, vec![-1.0; 2], vec![1.0; 2]).unwrap();
        p.plan(&mut Point { start: [0.0; 2], goal: [2.0, 2.0], calls: 0 }).unwrap()
    };
    assert_eq!(run(1).best, run(1).best, "the same seed plans the same");
    assert_ne!(run(1).best, run(2).best);
    // A warm start (the previous mean, shifted) is scored first: replanning in the same world
    // never does worse than the shifted previous plan.
    let mut p = Planner::new(cfg.clone(), vec![-1.0; 2], vec![1.0; 2]).unwrap();
    let mut w = Point { start: [0.0; 2], goal: [4.0, 0.0], calls: 0 };
    let first = p.plan(&mut w).unwrap();
    w.start = [first.best[0][0], first.best[0][1]];
    p.shift(1);
    let second = p.plan(&mut w).unwrap();
    assert!(second.best_cost.is_finite() && second.mean.len() == 5);
    assert!(Planner::new(PlannerConfig { elites: 0, ..cfg.clone() }, vec![-1.0], vec![1.0]).is_err());
    assert!(Planner::new(cfg, vec![1.0], vec![-1.0]).is_err());
}

#[test]
fn the_task_cost_prefers_the_block_in_the_goal_and_the_agent_behind_it() {
    let scene = foresight::scene::Scene::load(crate::root().join("scenes/push.ron")).unwrap();
    let g = GoalGeometry::new(&scene).unwrap();
    let c = g.centre;
    assert!(g.inside(c));
    let far = [c[0] - 20.0, c[1] + 20.0];
    assert!(g.cost(Some(c), Some(far), 0.3, 6.0, 0.0) < g.cost(Some(far), Some(far), 0.3, 6.0, 0.0));
    // Behind the block, seen from the goal, beats in front of it.
    let block = [c[0] - 20.0, c[1]];
    let behind = [block[0] - 6.0, block[1]];
    let front = [block[0] + 6.0, block[1]];
    assert!(g.cost(Some(block), Some(behind), 0.3, 6.0, 0.0) < g.cost(Some(block), Some(front), 0.3, 6.0, 0.0));
    assert!(g.cost(None, Some(behind), 0.3, 6.0, 0.0) > g.cost(Some(block), Some(front), 0.3, 6.0, 0.0), "a lost block costs the most");
    let (r_in, ok) = g.reward(Some(c));
    assert!(ok && r_in > g.reward(Some(far)).0);
}

#[test]
fn the_way_round_the_block_costs_its_length_and_falls_as_the_agent_goes_round() {
    let scene = foresight::scene::Scene::load(crate::root().join("scenes/push.ron")).unwrap();
    let g = GoalGeometry::new(&scene).unwrap();
    let c = g.centre;
    // The block 20 px west of the goal: its pushing position is west of it.
    let block = [c[0] - 20.0, c[1]];
    let (r, s) = (9.0f32, 5.0f32);
    let at = |deg: f32, dist: f32| [block[0] - dist * deg.to_radians().cos(), block[1] + dist * deg.to_radians().sin()];
    let approach = |agent: [f32; 2], around: f32| g.cost(Some(block), Some(agent), 1.0, s, around) - g.cost(Some(block), Some(agent), 0.0, s, around);
    // Straight behind: the same as the straight line.
    let behind = at(0.0, 12.0);
    assert!((approach(behind, r) - approach(behind, 0.0)).abs() < 1e-3, "{} vs {}", approach(behind, r), approach(behind, 0.0));
    // On the goal's side at the circle: half its circumference plus the way in.
    let front = at(180.0, r);
    let half_round = std::f32::consts::PI * r + (r - s);
    assert!((approach(front, r) - half_round).abs() < 1e-2, "{} vs {half_round}", approach(front, r));
    assert!(approach(front, r) > approach(front, 0.0) + 10.0, "the straight line goes through the block");
    // Going round at the circle, or from farther out, the cost falls all the way to behind.
    for dist in [r, 14.0, 25.0] {
        let costs: Vec<f32> = (0..=18).map(|k| approach(at(180.0 - 10.0 * k as f32, dist), r)).collect();
        assert!(costs.windows(2).all(|w| w[1] < w[0]), "at {dist} px: {costs:?}");
    }
    // Continuous across the circle, and symmetric about the line from the goal.
    assert!((approach(at(90.0, r - 1e-3), r) - approach(at(90.0, r + 1e-3), r)).abs() < 1e-2);
    assert!((approach(at(120.0, 15.0), r) - approach(at(-120.0, 15.0), r)).abs() < 1e-3);
    // Touching a face on the goal's side (8 px), coming out to the circle to pass a corner costs
    // no more than the pixel of the way in, and going round at 8 px falls all the way.
    for deg in [60.0f32, 90.0, 135.0, 180.0] {
        let (touch, out) = (approach(at(deg, 8.0), r), approach(at(deg, r), r));
        assert!(out - touch <= 1.0 + 1e-3, "at {deg}°: {touch} touching, {out} at the circle");
    }
    let hugging: Vec<f32> = (0..=18).map(|k| approach(at(180.0 - 10.0 * k as f32, 8.0), r)).collect();
    assert!(hugging.windows(2).all(|w| w[1] < w[0]), "{hugging:?}");
    // A lost agent or block still costs the most.
    assert!(g.cost(Some(block), None, 1.0, s, r) > g.cost(Some(block), Some(front), 1.0, s, r));
}

#[test]
fn policy_evaluation_statistics_on_fixed_inputs() {
    use foresight::plan::policies::{mean_abs_error, spearman};
    // Same order: 1; reversed: -1.
    let a = [(0.9, 0.0), (0.5, 0.0), (0.1, 0.0)];
    assert!((spearman(&a, &a) - 1.0).abs() < 1e-12);
    let r = [(0.1, 0.0), (0.5, 0.0), (0.9, 0.0)];
    assert!((spearman(&a, &r) + 1.0).abs() < 1e-12);
    // Ties on success are broken by return.
    let m = [(0.5, -10.0), (0.5, -20.0), (0.0, -30.0), (1.0, 0.0)];
    let t = [(0.6, -1.0), (0.4, -2.0), (0.0, -3.0), (0.9, 0.0)];
    assert!((spearman(&m, &t) - 1.0).abs() < 1e-12);
    // A textbook case: ranks (1,2,3,4,5) vs (2,1,4,3,5): rho = 1 - 6*4/(5*24) = 0.8.
    let x: Vec<(f64, f64)> = [1.0, 2.0, 3.0, 4.0, 5.0].iter().map(|&v| (v, 0.0)).collect();
    let y: Vec<(f64, f64)> = [2.0, 1.0, 4.0, 3.0, 5.0].iter().map(|&v| (v, 0.0)).collect();
    assert!((spearman(&x, &y) - 0.8).abs() < 1e-12);
    // Full ties share ranks; a constant list has no correlation.
    assert!(spearman(&[(0.0, 0.0); 3], &x[..3]).is_nan());
    assert!((mean_abs_error(&[0.9, 0.5, 0.0], &[0.8, 0.7, 0.0]) - 0.1).abs() < 1e-12);
}

#[test]
fn several_sampled_futures_score_a_candidate_by_their_mean_and_spread() {
    use foresight::plan::model::{aggregate_samples, ModelCost, ModelImagination};
    assert_eq!(aggregate_samples(&[1.0, 3.0], 0.0), 2.0);
    assert_eq!(aggregate_samples(&[1.0, 3.0], 2.0), 4.0);
    assert_eq!(aggregate_samples(&[5.0], 3.0), 5.0);
    let wm = foresight::world_model::WorldModel::load(&crate::world_model::tiny_checkpoint()).unwrap();
    let frame = vec![30u8; 64 * 64 * 3];
    let n: usize = wm.meta.dit.latent.iter().product();
    let goal = ModelCost::GoalLatent(vec![0.1; n]);
    let sampler = foresight::model::diffusion::SamplerConfig { temperature: 1.0, ..wm.meta.sampler };
    let cands: Vec<Vec<Vec<f32>>> = [[1.0, 0.0], [-1.0, 0.5], [0.0, -1.0]].iter().map(|a| vec![a.to_vec(); 3]).collect();
    let mut one = ModelImagination::new(&wm, vec![frame.clone(); 2], None, sampler, goal.clone(), 7).unwrap();
    let single = one.costs(&cands).unwrap();
    let mut three = ModelImagination::new(&wm, vec![frame; 2], None, sampler, goal, 7).unwrap();
    three.samples = 3;
    let mean = three.costs(&cands).unwrap();
    three.spread_weight = 1.0;
    let pessimistic = three.costs(&cands).unwrap();
    for (i, per) in three.sample_costs.iter().enumerate() {
        assert_eq!(per.len(), 3);
        // Sample 0 draws the noise a single sample does.
        assert!((per[0] - single[i]).abs() < 1e-4 * single[i].abs().max(1.0), "{per:?} vs {}", single[i]);
        assert!(per.iter().any(|c| (c - per[0]).abs() > 0.0), "samples differ: {per:?}");
        assert!((mean[i] - per.iter().sum::<f32>() / 3.0).abs() < 1e-5);
        assert!((pessimistic[i] - aggregate_samples(per, 1.0)).abs() < 1e-5 && pessimistic[i] > mean[i]);
    }
}
