//! `PlannerAgent`: an agent that plans through the plugin. Each round of the cross-entropy method
//! (or MPPI) becomes one `PredictFutures` request per candidate, all written in the same frame so
//! the worker answers them in one batched call; the costs are read from the predicted last frames
//! (bodies located by colour, [`GoalGeometry::cost`]). The game never waits: a plan takes as many
//! frames as the model needs, then [`PlannerAgent::take_action`] hands out its first action.

use std::collections::{HashMap, VecDeque};

use bevy::prelude::*;
use foresight::plan::cost::GoalGeometry;
use foresight::plan::{Plan, Planner, PlannerConfig, Search};
use foresight::scene::Scene;

use crate::plugin::{ContextSource, ForesightSystems, FuturesPredicted, PredictFutures, PredictionFailed};

/// Plans with the world model behind [`crate::WorldModelPlugin`]; feed it frames with
/// [`PlannerAgent::observe`] and take actions with [`PlannerAgent::take_action`].
#[derive(Component)]
pub struct PlannerAgent {
    planner: Planner,
    geometry: GoalGeometry,
    /// Weight of the agent's distance to its pushing position, and the standoff in pixels.
    pub shape: (f32, f32),
    context: VecDeque<Vec<u8>>,
    past: VecDeque<Vec<f32>>,
    k: usize,
    round: Option<Round>,
    ready: Option<Plan>,
    slots: Vec<Entity>,
    seed: u64,
    /// The last finished plan (its best sequence and cost), for display.
    pub last_plan: Option<Plan>,
    /// The slot entity whose request imagined the best candidate of the last round (its
    /// `PredictedFutures` hold that imagined future: show it with a `FuturesView`).
    pub best_slot: Option<Entity>,
    /// Seconds the last plan took, from its first request to its last answer.
    pub last_plan_seconds: f64,
}

struct Round {
    search: Search,
    cands: Vec<Vec<Vec<f32>>>,
    costs: Vec<Option<f32>>,
    ids: HashMap<u64, usize>,
    started: std::time::Instant,
}

impl PlannerAgent {
    /// An agent for `scene` (which must have a goal) keeping `k` context frames.
    pub fn new(scene: &Scene, cfg: PlannerConfig, k: usize) -> Result<Self, String> {
        let geometry = GoalGeometry::new(scene).ok_or_else(|| format!("scene `{}` has no goal", scene.name))?;
        let low: Vec<f32> = scene.actions.iter().map(|a| a.low).collect();
        let high: Vec<f32> = scene.actions.iter().map(|a| a.high).collect();
        let seed = cfg.seed;
        Ok(PlannerAgent {
            planner: Planner::new(cfg, low, high)?,
            geometry,
            shape: (0.3, 5.0),
            context: VecDeque::new(),
            past: VecDeque::new(),
            k: k.max(1),
            round: None,
            ready: None,
            slots: Vec::new(),
            seed,
            last_plan: None,
            best_slot: None,
            last_plan_seconds: 0.0,
        })
    }

    /// A new frame of the scene, and the action that led to it (`None` for the first frame).
    pub fn observe(&mut self, frame: Vec<u8>, action: Option<Vec<f32>>) {
        if let Some(a) = action {
            self.past.push_back(a);
        }
        self.context.push_back(frame);
        while self.context.len() > self.k {
            self.context.pop_front();
        }
        while self.past.len() + 1 > self.context.len() {
            self.past.pop_front();
        }
    }

    /// Starts a new episode: forgets context and warm start.
    pub fn reset(&mut self) {
        self.context.clear();
        self.past.clear();
        self.round = None;
        self.ready = None;
        self.planner.reset();
    }

    /// Whether a plan is being computed.
    pub fn planning(&self) -> bool {
        self.round.is_some()
    }

    /// The first action of the finished plan, if one is ready (the plan's mean shifts by one
    /// step as the next warm start). A new plan starts on the next update.
    pub fn take_action(&mut self) -> Option<Vec<f32>> {
        let plan = self.ready.take()?;
        self.planner.shift(1);
        let a = plan.best.first().cloned();
        self.last_plan = Some(plan);
        a
    }
}

/// Plans agents with [`PlannerAgent`] (needs [`crate::WorldModelPlugin`]).
pub struct PlannerAgentPlugin;

impl Plugin for PlannerAgentPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (collect_costs, start_rounds).chain().after(ForesightSystems::Receive));
    }
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 48);

fn send_round(agent: &mut PlannerAgent, commands: &mut Commands, requests: &mut MessageWriter<PredictFutures>, search: Search, started: std::time::Instant) {
    let cands = agent.planner.propose(&search);
    while agent.slots.len() < cands.len() {
        agent.slots.push(commands.spawn(Name::new("planner candidate")).id());
    }
    let context: Vec<Vec<u8>> = agent.context.iter().cloned().collect();
    let past: Vec<Vec<f32>> = agent.past.iter().cloned().collect();
    let mut ids = HashMap::new();
    for (i, c) in cands.iter().enumerate() {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ids.insert(id, i);
        requests.write(PredictFutures {
            request_id: id,
            requester: agent.slots[i],
            context: ContextSource::Frames(context.clone()),
            past_actions: Some(past.clone()),
            actions: c.clone(),
            samples: 1,
            seed: agent.seed,
            deadline: None,
            from_frame: 0,
        });
    }
    let n = cands.len();
    agent.round = Some(Round { search, cands, costs: vec![None; n], ids, started });
}

fn start_rounds(mut commands: Commands, mut agents: Query<&mut PlannerAgent>, mut requests: MessageWriter<PredictFutures>) {
    for mut agent in &mut agents {
        if agent.round.is_none() && agent.ready.is_none() && !agent.context.is_empty() {
            let search = agent.planner.begin();
            send_round(&mut agent, &mut commands, &mut requests, search, std::time::Instant::now());
        }
    }
}

fn collect_costs(
    mut commands: Commands,
    mut agents: Query<&mut PlannerAgent>,
    mut done: MessageReader<FuturesPredicted>,
    mut failed: MessageReader<PredictionFailed>,
    mut requests: MessageWriter<PredictFutures>,
) {
    let done: Vec<&FuturesPredicted> = done.read().collect();
    let failed: Vec<&PredictionFailed> = failed.read().collect();
    if done.is_empty() && failed.is_empty() {
        return;
    }
    for mut agent in &mut agents {
        let agent = &mut *agent;
        let Some(round) = agent.round.as_mut() else { continue };
        for d in &done {
            if let Some(&i) = round.ids.get(&d.request_id) {
                let cost = d.frames.first().and_then(|s| s.last()).map_or(f32::INFINITY, |f| {
                    let (body, me) = agent.geometry.locate(f);
                    agent.geometry.cost(body, me, agent.shape.0, agent.shape.1, 0.0)
                });
                round.costs[i] = Some(cost);
            }
        }
        for f in &failed {
            if let Some(&i) = round.ids.get(&f.request_id) {
                round.costs[i] = Some(f32::INFINITY);
            }
        }
        if !round.costs.iter().all(Option::is_some) {
            continue;
        }
        let Some(round) = agent.round.take() else { continue };
        let costs: Vec<f32> = round.costs.iter().map(|c| c.unwrap_or(f32::INFINITY)).collect();
        if let Some((i, _)) = costs.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)) {
            agent.best_slot = Some(agent.slots[i]);
        }
        let mut search = round.search;
        if let Err(e) = agent.planner.update(&mut search, &round.cands, &costs) {
            warn!("foresight planner: {e}");
            continue;
        }
        if search.iteration < agent.planner.config().iterations {
            send_round(agent, &mut commands, &mut requests, search, round.started);
        } else {
            agent.last_plan_seconds = round.started.elapsed().as_secs_f64();
            agent.ready = Some(agent.planner.finish(search));
        }
    }
}
