//! Measured personalization (issue 10, part 4): simulated users of the synthetic demo world, whose
//! tastes are planted, use the page's "For you" list, and what they like is counted in it with and
//! without on-device learning.
//!
//! Each simulated user has a planted [`Taste`] and a fixed context: its usual time-of-day bucket
//! and device. Each round the engine ranks the whole catalog for the context the page builds
//! (`web/app.js`: the bucket's hour, likes this session, all likes, the last `history` liked items
//! and their categories, most recent first, the time of day, the device), re-ranked for diversity
//! over category and attributes as the page does, and shows the top `shown` items not yet liked.
//! The user likes one shown item by the planted choice model: the largest utility plus Gumbel
//! noise, a softmax over utility. With learning on, each like is one learn call, as on the page:
//! the liked item with label 1 and `negatives` other shown items with label 0 (by default drawn
//! uniformly, as the page draws them; [`NegativesFrom`] has other ways), all in the context of
//! just before the like.
//!
//! A user's planted-liked items are the top `liked_share` of the catalog by planted utility in
//! the user's context (no last category: the lasting taste, not the pull of the last click).
//! After `n` clicks the shown list is measured by its hit rate (the share of shown items that are
//! planted-liked and not yet clicked) and its NDCG (binary relevance; the ideal list is all hits).
//! Every variant sees the same users with the same random draws, so the per-user differences
//! between two variants are paired, and their confidence intervals are the tight ones.

use crate::demo::{self, Catalog, ItemTruth, Taste};
use anyhow::{Context as _, Result, bail};
use pocketrec::diversity::{self, Diversity};
use pocketrec::{Candidates, Dlrm, LearnOptions, Learner, input};
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use rayon::prelude::*;
use serde_json::{Value, json};

/// The candidate fields the page's diversity re-ranking compares.
pub const DIVERSITY_FEATURES: [&str; 2] = ["category", "attributes"];

/// How the simulation runs.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub users: usize,
    pub seed: u64,
    /// Click counts to measure after, increasing (0 measures the first list).
    pub at: Vec<usize>,
    /// Length of the shown list (the page shows 24).
    pub shown: usize,
    /// Negatives per like, from the other shown items (the page samples 4).
    pub negatives: usize,
    /// Which shown items the negatives are drawn from.
    pub negatives_from: NegativesFrom,
    /// The share of the catalog each user plants as liked.
    pub liked_share: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            users: 200,
            seed: 1,
            at: vec![5, 10, 20],
            shown: 24,
            negatives: 4,
            negatives_from: NegativesFrom::Shown,
            liked_share: 0.02,
        }
    }
}

/// Where a like's negatives come from, among the other shown items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NegativesFrom {
    /// Any other shown item, uniformly (the page's way).
    Shown,
    /// Shown items of other categories than the liked one's, uniformly; items of its category
    /// only when too few others were shown.
    OtherCategories,
    /// One shown item of the liked item's category, the rest of other categories (each uniformly;
    /// whatever is left when one kind runs short).
    OneOfItsCategory,
}

/// One way of serving the list.
#[derive(Clone, Debug)]
pub struct Variant {
    pub name: String,
    /// `None`: the base model, never updated (the page without learning).
    pub learn: Option<LearnOptions>,
    /// MMR strength (the page uses 0.45).
    pub diversity: f32,
    /// The variant whose per-user results this one is compared against.
    pub against: Option<usize>,
}

/// The variants of the benchmark: (a) the base model with context bags only, (b) learning with
/// `learn`, (c) learning in each other scope, and (a) and (b) without diversity, the cost of it.
pub fn standard_variants(learn: &LearnOptions, diversity: f32) -> Vec<Variant> {
    let v = |name: String, learn: Option<LearnOptions>, diversity, against| Variant { name, learn, diversity, against };
    let mut out = vec![
        v("(a) base model, context bags only".into(), None, diversity, None),
        v(format!("(b) learning, scope {}", scope_name(learn.scope)), Some(learn.clone()), diversity, Some(0)),
    ];
    for scope in [pocketrec::Scope::All, pocketrec::Scope::Embeddings, pocketrec::Scope::Top] {
        if scope != learn.scope {
            let opts = LearnOptions { scope, ..learn.clone() };
            out.push(v(format!("(c) learning, scope {}", scope_name(scope)), Some(opts), diversity, Some(0)));
        }
    }
    if diversity > 0.0 {
        out.push(v("(a) without diversity".into(), None, 0.0, Some(0)));
        out.push(v("(b) without diversity".into(), Some(learn.clone()), 0.0, Some(1)));
    }
    out
}

pub fn scope_name(scope: pocketrec::Scope) -> &'static str {
    match scope {
        pocketrec::Scope::All => "all",
        pocketrec::Scope::Embeddings => "embeddings",
        pocketrec::Scope::Top => "top",
    }
}

/// Hit rate and NDCG of one shown list.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measure {
    pub hit_rate: f64,
    pub ndcg: f64,
}

/// The share of the list that is relevant (`hits[k]`: the item at position `k` is); 0 for an
/// empty list.
pub fn hit_rate(hits: &[bool]) -> f64 {
    if hits.is_empty() {
        return 0.0;
    }
    hits.iter().filter(|&&h| h).count() as f64 / hits.len() as f64
}

/// NDCG of the list with binary relevance, given how many relevant items exist in all: the
/// ideal list puts `min(len, relevant)` hits first. 0 when nothing is relevant.
pub fn ndcg(hits: &[bool], relevant: usize) -> f64 {
    let gain = |k: usize| 1.0 / (k as f64 + 2.0).log2();
    let dcg: f64 = hits.iter().enumerate().filter(|(_, h)| **h).map(|(k, _)| gain(k)).sum();
    let ideal: f64 = (0..hits.len().min(relevant)).map(gain).sum();
    if ideal == 0.0 { 0.0 } else { dcg / ideal }
}

/// A mean with the half-width of its 95% confidence interval (normal approximation,
/// `1.96 · sd / √n`; 0 for fewer than two values).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub ci95: f64,
}

pub fn estimate(xs: &[f64]) -> Estimate {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return Estimate { mean: f64::NAN, ci95: f64::NAN };
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return Estimate { mean, ci95: 0.0 };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Estimate { mean, ci95: 1.96 * (var / n).sqrt() }
}

/// The demo world set up for one model: the catalog as candidates in the model's field order.
pub struct Sim<'a> {
    catalog: &'a Catalog,
    truth: &'a [ItemTruth],
    candidates: Candidates,
}

impl<'a> Sim<'a> {
    /// Fails when the model does not read the demo world's rows (another schema).
    pub fn new(model: &Dlrm, catalog: &'a Catalog, truth: &'a [ItemTruth]) -> Result<Self> {
        if catalog.items.len() != truth.len() || catalog.items.is_empty() {
            bail!("the catalog has {} items and the world's truth {}", catalog.items.len(), truth.len());
        }
        let not_demo = || {
            format!(
                "the model does not read the demo world's rows (schema {}): give a model trained by `make demo-model`",
                demo::SCHEMA.join(" ")
            )
        };
        let ctx =
            input::context_from_object(&model.config, &context_json(catalog, &[], 0, 0)).with_context(not_demo)?;
        let items: Vec<Value> = catalog.items.iter().map(item_json).collect();
        let candidates = input::candidates_from_objects(&model.config, &ctx, &items).with_context(not_demo)?;
        Ok(Sim { catalog, truth, candidates })
    }

    /// Each user's measures after each of `opts.at` clicks, per variant: `[user][variant][at]`.
    /// Users run in parallel.
    pub fn run(&self, model: &Dlrm, variants: &[Variant], opts: &SimOptions) -> Result<Vec<Vec<Vec<Measure>>>> {
        if opts.at.is_empty() || opts.at.windows(2).any(|w| w[0] >= w[1]) {
            bail!("the click counts to measure after must be increasing, got {:?}", opts.at);
        }
        if opts.shown == 0 || !(opts.liked_share > 0.0 && opts.liked_share <= 1.0) {
            bail!("the shown list needs at least 1 item and the liked share must be in (0, 1]");
        }
        let last = opts.at[opts.at.len() - 1];
        if last + opts.shown > self.catalog.items.len() {
            bail!("{last} clicks with {} shown items need a larger catalog", opts.shown);
        }
        (0..opts.users)
            .into_par_iter()
            .map(|user| variants.iter().map(|v| self.user(model, v, opts, user as u64)).collect())
            .collect()
    }

    /// One user's session under one variant.
    fn user(&self, base: &Dlrm, variant: &Variant, opts: &SimOptions, user: u64) -> Result<Vec<Measure>> {
        let rng = |stream: u64| StdRng::seed_from_u64(crate::data::rng::hash(&[opts.seed, user, stream]));
        let taste = demo::random_taste(&mut rng(0));
        let (mut choice_rng, mut negative_rng) = (rng(1), rng(2));
        let liked = self.planted_liked(&taste, opts.liked_share);
        let diversity = Diversity {
            strength: variant.diversity,
            features: DIVERSITY_FEATURES.iter().map(|s| s.to_string()).collect(),
        };
        let mut learning = variant.learn.as_ref().map(|o| (base.clone(), Learner::new(base), o));
        let (mut likes, mut clicked) = (Vec::new(), vec![false; self.truth.len()]);
        let mut out = Vec::with_capacity(opts.at.len());
        for clicks in 0.. {
            let model = learning.as_ref().map_or(base, |(m, _, _)| m);
            let context = context_json(self.catalog, &likes, taste.time, taste.device);
            let ctx = input::context_from_object(&model.config, &context)?;
            let k = opts.shown + likes.len();
            let ranked = diversity::rank(model, &ctx, &self.candidates, k, &diversity)?;
            let shown: Vec<usize> = ranked.iter().map(|r| r.index).filter(|&i| !clicked[i]).take(opts.shown).collect();
            if opts.at.contains(&clicks) {
                let hits: Vec<bool> = shown.iter().map(|&i| liked[i]).collect();
                let relevant = (0..liked.len()).filter(|&i| liked[i] && !clicked[i]).count();
                out.push(Measure { hit_rate: hit_rate(&hits), ndcg: ndcg(&hits, relevant) });
            }
            if out.len() == opts.at.len() {
                break;
            }
            let last_category = likes.last().map(|&i: &usize| self.truth[i].category);
            let pick = shown
                .iter()
                .map(|&i| {
                    let u = demo::utility(&taste, &self.truth[i], taste.time, taste.device, last_category);
                    (u + demo::gumbel(&mut choice_rng), i)
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, i)| i)
                .context("nothing was shown")?;
            if let Some((model, learner, learn)) = &mut learning {
                let category = |i: usize| self.truth[i].category;
                let negatives = draw_negatives(&shown, pick, category, opts, &mut negative_rng);
                let rows: Vec<Value> = std::iter::once(&pick)
                    .chain(&negatives)
                    .map(|&i| {
                        let mut row = context.clone();
                        row.as_object_mut()
                            .expect("an object")
                            .extend(item_json(&self.catalog.items[i]).as_object().expect("an object").clone());
                        row
                    })
                    .collect();
                let labels: Vec<f32> = (0..rows.len()).map(|r| if r == 0 { 1.0 } else { 0.0 }).collect();
                let batch = input::batch_from_objects(&model.config, &rows)?;
                learner.learn(model, &batch, &labels, learn)?;
            }
            likes.push(pick);
            clicked[pick] = true;
        }
        Ok(out)
    }

    /// Per item: whether it is among the top `share` of the catalog by the user's planted utility
    /// in the user's context.
    fn planted_liked(&self, taste: &Taste, share: f64) -> Vec<bool> {
        let n = self.truth.len();
        let u: Vec<f32> = self.truth.iter().map(|t| demo::utility(taste, t, taste.time, taste.device, None)).collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| u[b].total_cmp(&u[a]).then(a.cmp(&b)));
        let mut liked = vec![false; n];
        let top = ((share * n as f64).round() as usize).clamp(1, n);
        order[..top].iter().for_each(|&i| liked[i] = true);
        liked
    }
}

/// The context the page sends after `likes` (item indices, oldest first), all in one session.
fn context_json(catalog: &Catalog, likes: &[usize], time: usize, device: usize) -> Value {
    let recent: Vec<&demo::Item> = likes.iter().rev().take(catalog.history).map(|&i| &catalog.items[i]).collect();
    json!({
        "hour": catalog.times[time].hour,
        "session_length": likes.len(),
        "history_length": likes.len(),
        "recent_items": recent.iter().map(|i| &i.id).collect::<Vec<_>>(),
        "recent_categories": recent.iter().map(|i| &i.category).collect::<Vec<_>>(),
        "time_of_day": catalog.times[time].id,
        "device": catalog.devices[device],
    })
}

fn item_json(item: &demo::Item) -> Value {
    json!({ "item": item.id, "category": item.category, "attributes": item.attributes })
}

/// A like's negatives: `opts.negatives` of the `shown` items other than `pick`, in the way
/// `opts.negatives_from` says (`category`: a catalog item's category).
fn draw_negatives(
    shown: &[usize],
    pick: usize,
    category: impl Fn(usize) -> usize,
    opts: &SimOptions,
    rng: &mut StdRng,
) -> Vec<usize> {
    let mut others: Vec<usize> = shown.iter().copied().filter(|&i| i != pick).collect();
    others.shuffle(rng);
    let (mut same, other): (Vec<usize>, Vec<usize>) = others.iter().partition(|&&i| category(i) == category(pick));
    let mut ordered: Vec<usize> = match opts.negatives_from {
        NegativesFrom::Shown => others,
        NegativesFrom::OtherCategories => other.into_iter().chain(same).collect(),
        NegativesFrom::OneOfItsCategory => {
            let rest = same.split_off(same.len().min(1));
            same.into_iter().chain(other).chain(rest).collect()
        }
    };
    ordered.truncate(opts.negatives);
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Loader, LoaderOptions};
    use crate::demo::{DemoOptions, synthetic_world, write_demo};
    use pocketrec::{HashVariant, ModelConfig, Optimizer, OptimizerKind, Preset, StoredDtype, TrainStep};

    #[test]
    fn negatives_are_drawn_from_the_shown_items_the_named_way() {
        // Items 0..12 of category i % 3; the user liked item 0 (category 0) of the 12 shown.
        let categories: Vec<usize> = (0..12).map(|i| i % 3).collect();
        let shown: Vec<usize> = (0..12).collect();
        let draw = |from, negatives, seed| {
            let opts = SimOptions { negatives, negatives_from: from, ..SimOptions::default() };
            draw_negatives(&shown, 0, |i| categories[i], &opts, &mut StdRng::seed_from_u64(seed))
        };
        let same = |list: &[usize]| list.iter().filter(|&&i| categories[i] == 0).count();
        for seed in 0..20 {
            let any = draw(NegativesFrom::Shown, 4, seed);
            assert_eq!(any.len(), 4);
            assert!(any.iter().all(|&i| i != 0 && shown.contains(&i)), "{any:?}");
            assert_eq!(same(&draw(NegativesFrom::OtherCategories, 4, seed)), 0);
            // 8 others exist: the 9th and 10th come from the liked category.
            assert_eq!(same(&draw(NegativesFrom::OtherCategories, 10, seed)), 2);
            assert_eq!(same(&draw(NegativesFrom::OneOfItsCategory, 4, seed)), 1);
            let all = draw(NegativesFrom::Shown, 50, seed);
            assert_eq!(all.len(), 11, "at most every other shown item");
        }
        // Uniform draws do reach the liked category.
        assert!((0..20).any(|seed| same(&draw(NegativesFrom::Shown, 4, seed)) > 0));
    }

    #[test]
    fn metrics_of_hand_made_lists() {
        let (t, f) = (true, false);
        assert_eq!(hit_rate(&[t, f, t, f]), 0.5);
        assert_eq!(hit_rate(&[f, f]), 0.0);
        assert_eq!(hit_rate(&[]), 0.0);
        assert_eq!(ndcg(&[t, t, f], 2), 1.0);
        assert_eq!(ndcg(&[t, f, f], 1), 1.0);
        // One hit at position 2 of 3 relevant items: (1/log2 3) / (1 + 1/log2 3 + 1/2).
        let g = 1.0 / 3f64.log2();
        assert!((ndcg(&[f, t, f], 3) - g / (1.0 + g + 0.5)).abs() < 1e-12);
        // More relevant items than positions: the ideal list is all hits.
        assert!((ndcg(&[t, f], 100) - 1.0 / (1.0 + g)).abs() < 1e-12);
        assert_eq!(ndcg(&[f, f], 0), 0.0);
        let e = estimate(&[1.0, 2.0, 3.0]);
        assert_eq!(e.mean, 2.0);
        assert!((e.ci95 - 1.96 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(estimate(&[4.0]), Estimate { mean: 4.0, ci95: 0.0 });
    }

    #[test]
    fn planted_liked_items_are_the_users_best_by_utility() {
        let (catalog, truth) = synthetic_world(&DemoOptions { items: 1000, ..DemoOptions::default() }).unwrap();
        let taste = demo::random_taste(&mut StdRng::seed_from_u64(3));
        let cfg =
            ModelConfig::preset(Preset::Small, dense(), fields(), 100_000, 4, HashVariant::UmaV1, StoredDtype::F32);
        let model = Dlrm::init(cfg.unwrap(), 1).unwrap();
        let liked = Sim::new(&model, &catalog, &truth).unwrap().planted_liked(&taste, 0.02);
        assert_eq!(liked.iter().filter(|&&l| l).count(), 20);
        let u = |i: usize| demo::utility(&taste, &truth[i], taste.time, taste.device, None);
        let worst_liked = (0..1000).filter(|&i| liked[i]).map(u).fold(f32::INFINITY, f32::min);
        let best_other = (0..1000).filter(|&i| !liked[i]).map(u).fold(f32::NEG_INFINITY, f32::max);
        assert!(worst_liked >= best_other, "{worst_liked} < {best_other}");
    }

    fn dense() -> Vec<String> {
        demo::SCHEMA.iter().filter_map(|c| c.strip_prefix("dense:")).map(str::to_string).collect()
    }

    fn fields() -> Vec<pocketrec::Field> {
        let kind = |c: &str| if c == "cat" { pocketrec::FieldKind::Categorical } else { pocketrec::FieldKind::BagMean };
        demo::SCHEMA
            .iter()
            .filter_map(|c| c.split_once(':'))
            .filter(|(k, _)| *k != "dense")
            .map(|(k, name)| pocketrec::Field { name: name.into(), kind: kind(k) })
            .collect()
    }

    /// A small demo world and a model trained on it, as `make demo-model` does at full size.
    fn small_world() -> (Dlrm, Catalog, Vec<ItemTruth>) {
        let dir = std::env::temp_dir().join(format!("pocketrec-personalize-{}", std::process::id()));
        let opts = DemoOptions { items: 1000, users: 1000, events_per_user: 20, ..DemoOptions::default() };
        write_demo(&dir, &opts, None).unwrap();
        let path = dir.join("train.tsv");
        let mut loader =
            Loader::open(path.to_str().unwrap(), LoaderOptions { batch_size: 64, ..LoaderOptions::default() }).unwrap();
        let schema = loader.schema().clone();
        assert_eq!((schema.dense.clone(), schema.fields.clone()), (dense(), fields()));
        let cfg = ModelConfig::preset(
            Preset::Small,
            schema.dense,
            schema.fields,
            200_000,
            4,
            HashVariant::UmaV1,
            StoredDtype::F32,
        );
        let mut model = Dlrm::init(cfg.unwrap(), 7).unwrap();
        let (mut opt, mut step) = (Optimizer::new(OptimizerKind::Adagrad, 0.05, &model), TrainStep::new());
        while let Some(batch) = loader.next_batch().unwrap() {
            step.step(&mut model, &mut opt, &batch);
        }
        std::fs::remove_dir_all(dir).unwrap();
        let (catalog, truth) = synthetic_world(&opts).unwrap();
        (model, catalog, truth)
    }

    /// On a small world, learning with the default options shows more of what users like after
    /// twenty clicks than the base model does, paired over the same users, beyond the noise. (Without
    /// diversity, which is cheaper to run and leaves the list to the model alone.)
    #[test]
    fn learning_beats_the_base_model_on_planted_tastes() {
        let (model, catalog, truth) = small_world();
        let sim = Sim::new(&model, &catalog, &truth).unwrap();
        let variants = standard_variants(&LearnOptions::default(), 0.0);
        let opts = SimOptions { users: 60, at: vec![0, 20], liked_share: 0.05, ..SimOptions::default() };
        let results = sim.run(&model, &variants[..2], &opts).unwrap();
        let at = |v: usize, a: usize| -> Vec<f64> { results.iter().map(|u| u[v][a].hit_rate).collect() };
        // Before any click nothing was learned: both lists are the same.
        assert_eq!(at(0, 0), at(1, 0));
        let diff: Vec<f64> = at(1, 1).iter().zip(at(0, 1)).map(|(l, b)| l - b).collect();
        let d = estimate(&diff);
        assert!(d.mean > d.ci95 && d.mean > 0.03, "learning minus base after 20 clicks: {d:?}");
    }
}
