//! The demo world of the web page (issue 5): a catalog of items and interaction logs, written as a
//! `catalog.json` the page shows and schema-TSV training data (docs/rows.md) the trainer reads.
//!
//! Two sources feed one pipeline. The default is synthetic: a shop of generated items (readable
//! names from style, colour and noun word lists) and users whose tastes are planted (2-3 liked
//! categories, a colour, a style, a price tier, plus category affinities to the time of day and the
//! device), so a test can check that the model learned what was planted. With `--movielens DIR`
//! the same pipeline runs on MovieLens ratings (rating >= 4 is a positive) and the catalog is the
//! movies. Either way every positive gets `negatives` uniformly sampled negatives, each user's
//! last `eval_fraction` of events goes to the eval file, and the row schema is [`SCHEMA`].

use anyhow::{Context as _, bail};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;

/// Header of the schema TSV: three context dense features, four context fields (the recent items
/// and their categories, most recent first, the time of day, the device) and three candidate
/// fields (the item, its category, its attributes).
pub const SCHEMA: [&str; 11] = [
    "label",
    "dense:hour",
    "dense:session_length",
    "dense:history_length",
    "bag:recent_items",
    "bag:recent_categories",
    "cat:time_of_day",
    "cat:device",
    "cat:item",
    "cat:category",
    "bag:attributes",
];

/// How many recent items the context carries.
pub const HISTORY: usize = 10;

/// Time-of-day buckets: name, first hour, and the hour the page uses for it.
pub const TIMES: [(&str, u32, u32); 4] =
    [("morning", 6, 9), ("afternoon", 12, 15), ("evening", 18, 20), ("night", 23, 1)];

/// The bucket of an hour of the day.
pub fn time_of_day(hour: u32) -> usize {
    match hour % 24 {
        6..=11 => 0,
        12..=17 => 1,
        18..=22 => 2,
        _ => 3,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Item {
    pub id: String,
    pub name: String,
    pub category: String,
    pub attributes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Category {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimeOfDay {
    pub id: String,
    /// The `hour` dense feature the page sends for this bucket.
    pub hour: u32,
}

/// What the page needs to build rows: the items, the context choices and the row schema.
#[derive(Clone, Debug, Serialize)]
pub struct Catalog {
    pub source: String,
    pub schema: Vec<String>,
    pub history: usize,
    pub times: Vec<TimeOfDay>,
    pub devices: Vec<String>,
    pub categories: Vec<Category>,
    pub items: Vec<Item>,
}

/// One positive interaction: `item` indexes the catalog. Events of a user are in time order.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub user: u32,
    pub item: u32,
    pub hour: u32,
    pub device: u32,
    /// Earlier events in the same session.
    pub session_length: u32,
}

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub seed: u64,
    pub items: usize,
    pub users: usize,
    pub events_per_user: usize,
    pub negatives: usize,
    pub eval_fraction: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { seed: 7, items: 10_000, users: 2_000, events_per_user: 30, negatives: 4, eval_fraction: 0.2 }
    }
}

/// What was written, for the CLI's summary.
#[derive(Clone, Debug, Default)]
pub struct DemoSummary {
    pub items: usize,
    pub users: usize,
    pub events: usize,
    pub train_rows: usize,
    pub eval_rows: usize,
}

// ---------------------------------------------------------------------------------------------
// The synthetic shop.

const COLORS: [(&str, [&str; 3]); 8] = [
    ("red", ["Crimson", "Scarlet", "Ruby"]),
    ("blue", ["Cobalt", "Azure", "Navy"]),
    ("green", ["Emerald", "Sage", "Forest"]),
    ("yellow", ["Golden", "Amber", "Lemon"]),
    ("black", ["Onyx", "Midnight", "Ebony"]),
    ("white", ["Ivory", "Pearl", "Snow"]),
    ("purple", ["Violet", "Plum", "Lavender"]),
    ("orange", ["Copper", "Tangerine", "Coral"]),
];

const STYLES: [(&str, [&str; 3]); 6] = [
    ("vintage", ["Vintage", "Retro", "Heritage"]),
    ("minimal", ["Minimal", "Nordic", "Slim"]),
    ("bold", ["Bold", "Neon", "Electric"]),
    ("classic", ["Classic", "Timeless", "Royal"]),
    ("rustic", ["Rustic", "Oak", "Woodland"]),
    ("sporty", ["Sporty", "Turbo", "Active"]),
];

const PRICES: [&str; 3] = ["budget", "mid", "premium"];

pub const DEVICES: [&str; 3] = ["mobile", "desktop", "tablet"];

/// Category id, display name, preferred time-of-day bucket, preferred device, nouns.
#[rustfmt::skip] // a table laid out by hand: one category per entry, its nouns in rows
const CATEGORIES: [(&str, &str, usize, usize, [&str; 20]); 12] = [
    ("books", "Books", 3, 2, [
        "Novel", "Cookbook", "Atlas", "Memoir", "Anthology", "Journal", "Almanac", "Poetry Book", "Field Guide",
        "Thriller", "Biography", "Graphic Novel", "Sketchbook", "Travelogue", "Handbook", "Encyclopedia",
        "Storybook", "Essay Collection", "Planner", "Notebook",
    ]),
    ("music", "Music", 2, 0, [
        "Vinyl Record", "Headphones", "Ukulele", "Synthesizer", "Guitar Strap", "Drum Pad", "Harmonica", "Speaker",
        "Turntable", "Metronome", "Microphone", "Piano Keyboard", "Amplifier", "Mixtape", "Songbook", "Capo",
        "Tambourine", "Kalimba", "Violin", "Flute",
    ]),
    ("games", "Games", 3, 1, [
        "Board Game", "Puzzle Box", "Controller", "Card Deck", "Dice Set", "Chess Set", "Strategy Game",
        "Party Game", "Arcade Stick", "Gaming Mouse", "Gaming Headset", "Jigsaw", "Trivia Game", "Escape Kit",
        "Racing Wheel", "Handheld Console", "Miniatures", "Role-Playing Set", "Mahjong Set", "Puzzle Cube",
    ]),
    ("kitchen", "Kitchen", 0, 2, [
        "Kettle", "Skillet", "Teapot", "Knife Set", "Mixing Bowl", "Coffee Grinder", "French Press",
        "Cutting Board", "Dutch Oven", "Whisk", "Spice Rack", "Toaster", "Blender", "Ladle", "Apron", "Colander",
        "Mug", "Rolling Pin", "Wok", "Salad Spinner",
    ]),
    ("outdoor", "Outdoor", 0, 0, [
        "Backpack", "Tent", "Sleeping Bag", "Lantern", "Hammock", "Compass", "Canteen", "Trekking Poles",
        "Camp Stove", "Rain Shell", "Binoculars", "Cooler", "Headlamp", "Daypack", "Bivy Sack", "Camp Chair",
        "Multitool", "Map Case", "Trail Shoes", "Fleece",
    ]),
    ("fashion", "Fashion", 1, 0, [
        "Scarf", "Sneakers", "Jacket", "Hoodie", "Beanie", "Tote Bag", "Sunglasses", "Watch", "Belt", "Wallet",
        "Dress", "Cardigan", "Boots", "Cap", "Gloves", "Shirt", "Skirt", "Raincoat", "Sandals", "Bracelet",
    ]),
    ("tech", "Tech", 1, 1, [
        "Charger", "Mechanical Keyboard", "Smartwatch", "Power Bank", "Webcam", "Tablet Stand", "USB Hub",
        "Earbuds", "Monitor", "Router", "SSD", "Stylus", "Phone Case", "E-Reader", "Drone", "Smart Plug",
        "Cable Kit", "Laptop Sleeve", "Desk Lamp", "Projector",
    ]),
    ("home", "Home", 2, 2, [
        "Lamp", "Cushion", "Rug", "Vase", "Candle", "Blanket", "Mirror", "Wall Clock", "Planter", "Bookshelf",
        "Throw", "Curtains", "Picture Frame", "Diffuser", "Side Table", "Doormat", "Basket", "Coasters",
        "Bedspread", "Ottoman",
    ]),
    ("garden", "Garden", 0, 1, [
        "Watering Can", "Trowel", "Seed Kit", "Pruners", "Bird Feeder", "Garden Hose", "Wheelbarrow", "Rake",
        "Compost Bin", "Garden Gloves", "Sprinkler", "Plant Pot", "Greenhouse", "Hedge Shears", "Bird Bath",
        "Wind Chime", "Garden Bench", "Trellis", "Kneeler", "Seed Tray",
    ]),
    ("beauty", "Beauty", 2, 0, [
        "Lip Balm", "Face Cream", "Perfume", "Hair Brush", "Soap Bar", "Bath Salts", "Face Mask", "Shampoo",
        "Nail Kit", "Serum", "Body Lotion", "Hand Cream", "Comb", "Compact Mirror", "Eye Palette", "Sunscreen",
        "Toner", "Cleanser", "Bath Bomb", "Razor",
    ]),
    ("sports", "Sports", 0, 0, [
        "Yoga Mat", "Dumbbells", "Jump Rope", "Tennis Racket", "Football", "Basketball", "Sports Bottle",
        "Cycling Helmet", "Running Shoes", "Resistance Band", "Kettlebell", "Swim Goggles", "Foam Roller",
        "Skateboard", "Frisbee", "Climbing Chalk", "Boxing Gloves", "Badminton Set", "Golf Balls", "Ski Goggles",
    ]),
    ("toys", "Toys", 1, 2, [
        "Teddy Bear", "Kite", "Building Blocks", "Train Set", "Doll House", "Yo-Yo", "Spinning Top", "Marble Run",
        "Puppet", "Robot Kit", "Play Tent", "Rocking Horse", "Slime Kit", "Bubble Wand", "Toy Car",
        "Stacking Rings", "Xylophone", "Paint Set", "Craft Kit", "Water Pistol",
    ]),
];

/// The hidden truth of a synthetic item, beside its catalog entry (indices into the word lists).
#[derive(Clone, Copy, Debug)]
pub struct ItemTruth {
    pub category: usize,
    pub color: usize,
    pub style: usize,
    pub price: usize,
    pub quality: f32,
}

/// A synthetic user's planted tastes.
#[derive(Clone, Debug)]
pub struct Taste {
    /// Liked categories with their weight.
    pub categories: Vec<(usize, f32)>,
    pub color: usize,
    pub style: usize,
    pub price: usize,
    /// The device and time-of-day bucket the user is usually on (indices of [`DEVICES`], [`TIMES`]).
    pub device: usize,
    pub time: usize,
}

/// Planted utility of an item for a user in a context (time bucket, device, category of the last
/// chosen item); the choice model is a softmax over it: argmax of utility plus [`gumbel`] noise.
pub fn utility(t: &Taste, it: &ItemTruth, time: usize, device: usize, last_category: Option<usize>) -> f32 {
    let mut u = it.quality;
    if let Some(&(_, w)) = t.categories.iter().find(|(c, _)| *c == it.category) {
        u += 2.5 * w;
    }
    u += if it.color == t.color { 1.0 } else { 0.0 };
    u += if it.style == t.style { 0.8 } else { 0.0 };
    u += if it.price == t.price { 0.4 } else { 0.0 };
    let (_, _, cat_time, cat_device, _) = CATEGORIES[it.category];
    u += if cat_time == time { 0.8 } else { 0.0 };
    u += if cat_device == device { 0.5 } else { 0.0 };
    u += if last_category == Some(it.category) { 1.0 } else { 0.0 };
    u
}

/// A standard Gumbel draw.
pub fn gumbel(rng: &mut StdRng) -> f32 {
    let u: f32 = rng.random_range(1e-7f32..1.0);
    -(-u.ln()).ln()
}

/// The largest synthetic catalog: half the distinct item names, so that drawing unique names ends.
pub const MAX_ITEMS: usize = CATEGORIES.len() * 20 * COLORS.len() * 3 * STYLES.len() * 3 / 2;

/// The synthetic catalog (unique names) and its hidden truth.
fn synthetic_catalog(n: usize, rng: &mut StdRng) -> anyhow::Result<(Catalog, Vec<ItemTruth>)> {
    if n == 0 || n > MAX_ITEMS {
        bail!("the synthetic catalog holds between 1 and {MAX_ITEMS} items, not {n}");
    }
    let mut seen = std::collections::HashSet::new();
    let (mut items, mut truth) = (Vec::with_capacity(n), Vec::with_capacity(n));
    while items.len() < n {
        let category = items.len() % CATEGORIES.len();
        let (cat_id, _, _, _, nouns) = CATEGORIES[category];
        let (noun, color, cw, style, sw) = (
            rng.random_range(0..nouns.len()),
            rng.random_range(0..COLORS.len()),
            rng.random_range(0..3),
            rng.random_range(0..STYLES.len()),
            rng.random_range(0..3),
        );
        let name = format!("{} {} {}", STYLES[style].1[sw], COLORS[color].1[cw], nouns[noun]);
        if !seen.insert(name.clone()) {
            continue;
        }
        let price = rng.random_range(0..PRICES.len());
        let quality = 0.5 * (rng.random::<f32>() + rng.random::<f32>() + rng.random::<f32>() - 1.5);
        items.push(Item {
            id: format!("i{:05}", items.len()),
            name,
            category: cat_id.to_string(),
            attributes: vec![
                format!("color:{}", COLORS[color].0),
                format!("style:{}", STYLES[style].0),
                format!("price:{}", PRICES[price]),
            ],
        });
        truth.push(ItemTruth { category, color, style, price, quality });
    }
    let catalog = Catalog {
        source: "synthetic".into(),
        schema: SCHEMA.iter().map(|s| s.to_string()).collect(),
        history: HISTORY,
        times: times(),
        devices: DEVICES.iter().map(|s| s.to_string()).collect(),
        categories: CATEGORIES.iter().map(|c| Category { id: c.0.into(), name: c.1.into() }).collect(),
        items,
    };
    Ok((catalog, truth))
}

/// The synthetic catalog `write_demo` writes for `opts` (only `seed` and `items` matter), and its
/// hidden truth; with the random source, positioned where `write_demo` goes on to draw the events.
fn seeded_catalog(opts: &DemoOptions) -> anyhow::Result<(Catalog, Vec<ItemTruth>, StdRng)> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let (catalog, truth) = synthetic_catalog(opts.items, &mut rng)?;
    Ok((catalog, truth, rng))
}

/// The synthetic world of `write_demo(_, opts, None)` without its users: the catalog (exactly the
/// `catalog.json` written) and each item's hidden truth, for simulating new users of that world.
pub fn synthetic_world(opts: &DemoOptions) -> anyhow::Result<(Catalog, Vec<ItemTruth>)> {
    let (catalog, truth, _) = seeded_catalog(opts)?;
    Ok((catalog, truth))
}

fn times() -> Vec<TimeOfDay> {
    TIMES.iter().map(|&(id, _, hour)| TimeOfDay { id: id.into(), hour }).collect()
}

/// A user's tastes as the synthetic world draws them.
pub fn random_taste(rng: &mut StdRng) -> Taste {
    let mut cats: Vec<usize> = (0..CATEGORIES.len()).collect();
    cats.shuffle(rng);
    let k = rng.random_range(2..=3);
    let categories = cats[..k].iter().enumerate().map(|(i, &c)| (c, 1.0 - 0.2 * i as f32)).collect();
    let device = match rng.random_range(0..100) {
        0..55 => 0,
        55..85 => 1,
        _ => 2,
    };
    Taste {
        categories,
        color: rng.random_range(0..COLORS.len()),
        style: rng.random_range(0..STYLES.len()),
        price: rng.random_range(0..PRICES.len()),
        device,
        time: rng.random_range(0..TIMES.len()),
    }
}

/// Interaction logs drawn from planted tastes: sessions of 1-6 events in one context; each event
/// picks, from 200 random items, the one with the highest utility plus Gumbel noise (a softmax).
fn synthetic_events(opts: &DemoOptions, truth: &[ItemTruth], rng: &mut StdRng) -> Vec<Event> {
    let mut events = Vec::with_capacity(opts.users * opts.events_per_user);
    for user in 0..opts.users {
        let taste = random_taste(rng);
        let (mut n, mut last_category) = (0, None);
        while n < opts.events_per_user {
            let time = if rng.random_bool(0.6) { taste.time } else { rng.random_range(0..TIMES.len()) };
            let (_, start, _) = TIMES[time];
            let span = if time == 3 {
                7
            } else if time == 2 {
                5
            } else {
                6
            };
            let hour = (start + rng.random_range(0..span)) % 24;
            let device = if rng.random_bool(0.7) { taste.device } else { rng.random_range(0..DEVICES.len()) };
            let session = rng.random_range(1..=6).min(opts.events_per_user - n);
            for s in 0..session {
                let mut best = (f32::NEG_INFINITY, 0usize);
                for _ in 0..200 {
                    let i = rng.random_range(0..truth.len());
                    let u = utility(&taste, &truth[i], time, device, last_category) + gumbel(rng);
                    if u > best.0 {
                        best = (u, i);
                    }
                }
                last_category = Some(truth[best.1].category);
                events.push(Event {
                    user: user as u32,
                    item: best.1 as u32,
                    hour,
                    device: device as u32,
                    session_length: s as u32,
                });
            }
            n += session;
        }
    }
    events
}

// ---------------------------------------------------------------------------------------------
// MovieLens.

/// Splits one CSV line (RFC 4180 quotes) into fields.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut chars) = (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A token safe inside a TSV cell and a comma-separated bag.
fn token(s: &str) -> String {
    s.chars().map(|c| if c == ',' || c == '\t' || c.is_whitespace() { '_' } else { c }).collect()
}

/// The MovieLens catalog (movies.csv) and events (ratings.csv, rating >= 4, in time order per user;
/// a gap of over 30 minutes starts a new session). MovieLens has no device: it is always "web".
fn movielens(dir: &Path) -> anyhow::Result<(Catalog, Vec<Event>, usize)> {
    let movies_path = dir.join("movies.csv");
    let movies = std::fs::read_to_string(&movies_path).with_context(|| {
        format!("reading {} (is {} the ml-latest-small folder?)", movies_path.display(), dir.display())
    })?;
    let (mut items, mut index) = (Vec::new(), HashMap::new());
    let mut genres_seen: Vec<String> = Vec::new();
    for (n, line) in movies.lines().enumerate().skip(1) {
        let f = csv_fields(line);
        if f.len() != 3 {
            bail!("{}:{}: expected movieId,title,genres", movies_path.display(), n + 1);
        }
        let genres: Vec<String> = f[2].split('|').map(token).collect();
        for g in &genres {
            if !genres_seen.contains(g) {
                genres_seen.push(g.clone());
            }
        }
        let mut attributes: Vec<String> = genres.iter().map(|g| format!("genre:{g}")).collect();
        let title = f[1].trim();
        let year = title.rfind('(').and_then(|p| title[p + 1..].get(..4)).and_then(|y| y.parse::<u32>().ok());
        if let Some(y) = year {
            attributes.push(format!("decade:{}s", y / 10 * 10));
        }
        index.insert(f[0].clone(), items.len() as u32);
        items.push(Item { id: format!("m{}", f[0]), name: title.to_string(), category: genres[0].clone(), attributes });
    }
    let ratings_path = dir.join("ratings.csv");
    let ratings =
        std::fs::read_to_string(&ratings_path).with_context(|| format!("reading {}", ratings_path.display()))?;
    let mut by_user: HashMap<u32, Vec<(u64, u32)>> = HashMap::new();
    for (n, line) in ratings.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let parsed = (f.len() == 4)
            .then(|| Some((f[0].parse::<u32>().ok()?, f[2].parse::<f32>().ok()?, f[3].parse::<u64>().ok()?)))
            .flatten();
        let Some((user, rating, ts)) = parsed else {
            bail!("{}:{}: expected userId,movieId,rating,timestamp", ratings_path.display(), n + 1);
        };
        if let (true, Some(&item)) = (rating >= 4.0, index.get(f[1])) {
            by_user.entry(user).or_default().push((ts, item));
        }
    }
    let mut users: Vec<u32> = by_user.keys().copied().collect();
    users.sort_unstable();
    let mut events = Vec::new();
    for (u, id) in users.iter().enumerate() {
        let list = by_user.get_mut(id).expect("key exists");
        list.sort_unstable();
        let mut session = 0;
        for (k, &(ts, item)) in list.iter().enumerate() {
            session = if k > 0 && ts - list[k - 1].0 <= 1800 { session + 1 } else { 0 };
            events.push(Event {
                user: u as u32,
                item,
                hour: ((ts / 3600) % 24) as u32,
                device: 0,
                session_length: session,
            });
        }
    }
    let catalog = Catalog {
        source: "movielens-small".into(),
        schema: SCHEMA.iter().map(|s| s.to_string()).collect(),
        history: HISTORY,
        times: times(),
        devices: vec!["web".into()],
        categories: genres_seen.iter().map(|g| Category { id: g.clone(), name: g.replace('_', " ") }).collect(),
        items,
    };
    Ok((catalog, events, users.len()))
}

// ---------------------------------------------------------------------------------------------
// From events to rows.

/// The context of one row: what the page knows before it scores candidates.
#[derive(Clone, Debug, Default)]
pub struct RowContext<'a> {
    pub hour: u32,
    pub session_length: u32,
    pub history_length: u32,
    /// Most recent first, at most [`HISTORY`].
    pub recent: Vec<&'a Item>,
    pub time_of_day: &'a str,
    pub device: &'a str,
}

/// One schema-TSV line (no newline) for a context and a candidate item.
pub fn row(label: u8, ctx: &RowContext, item: &Item) -> String {
    let items: Vec<&str> = ctx.recent.iter().map(|i| i.id.as_str()).collect();
    let cats: Vec<&str> = ctx.recent.iter().map(|i| i.category.as_str()).collect();
    format!(
        "{label}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        ctx.hour,
        ctx.session_length,
        ctx.history_length,
        items.join(","),
        cats.join(","),
        ctx.time_of_day,
        ctx.device,
        item.id,
        item.category,
        item.attributes.join(","),
    )
}

/// Rows of every event: one positive plus `negatives` sampled ones, with the user's history before
/// the event. Each user's last `eval_fraction` of events (at least one when a user has five or
/// more) goes to eval. Train rows are shuffled.
fn rows(catalog: &Catalog, events: &[Event], opts: &DemoOptions, rng: &mut StdRng) -> (Vec<String>, Vec<String>) {
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < events.len() {
        let user = events[start].user;
        let end = start + events[start..].iter().take_while(|e| e.user == user).count();
        let n = end - start;
        let n_eval = if n >= 5 { ((n as f64 * opts.eval_fraction).round() as usize).max(1) } else { 0 };
        let mut history: VecDeque<&Item> = VecDeque::new();
        for (k, e) in events[start..end].iter().enumerate() {
            let ctx = RowContext {
                hour: e.hour,
                session_length: e.session_length,
                history_length: k as u32,
                recent: history.iter().copied().collect(),
                time_of_day: &catalog.times[time_of_day(e.hour)].id,
                device: &catalog.devices[e.device as usize],
            };
            let out = if k >= n - n_eval { &mut eval } else { &mut train };
            out.push(row(1, &ctx, &catalog.items[e.item as usize]));
            for _ in 0..opts.negatives {
                let mut neg = rng.random_range(0..catalog.items.len() as u32);
                while neg == e.item {
                    neg = rng.random_range(0..catalog.items.len() as u32);
                }
                out.push(row(0, &ctx, &catalog.items[neg as usize]));
            }
            history.push_front(&catalog.items[e.item as usize]);
            history.truncate(HISTORY);
        }
        start = end;
    }
    train.shuffle(rng);
    (train, eval)
}

/// The bytes of `catalog.json`.
pub fn catalog_json(catalog: &Catalog) -> anyhow::Result<String> {
    Ok(serde_json::to_string(catalog)?)
}

fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut w = crate::io::AtomicFile::create(path)?;
    writeln!(w, "{}", SCHEMA.join("\t"))?;
    for l in lines {
        writeln!(w, "{l}")?;
    }
    w.commit()
}

/// Builds the demo world and writes `catalog.json`, `train.tsv` and `eval.tsv` into `out`.
pub fn write_demo(out: &Path, opts: &DemoOptions, movielens_dir: Option<&Path>) -> anyhow::Result<DemoSummary> {
    if !(0.0..1.0).contains(&opts.eval_fraction) {
        bail!("the eval fraction must be in [0, 1)");
    }
    let (catalog, events, users, mut rng) = match movielens_dir {
        Some(dir) => {
            let (catalog, events, users) = movielens(dir)?;
            (catalog, events, users, StdRng::seed_from_u64(opts.seed))
        }
        None => {
            if opts.users == 0 || opts.events_per_user == 0 {
                bail!("the synthetic world needs at least 1 user and 1 event per user");
            }
            let (catalog, truth, mut rng) = seeded_catalog(opts)?;
            let events = synthetic_events(opts, &truth, &mut rng);
            (catalog, events, opts.users, rng)
        }
    };
    let (train, eval) = rows(&catalog, &events, opts, &mut rng);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    crate::io::write_atomic(out.join("catalog.json"), catalog_json(&catalog)?.as_bytes())?;
    write_lines(&out.join("train.tsv"), &train)?;
    write_lines(&out.join("eval.tsv"), &eval)?;
    Ok(DemoSummary {
        items: catalog.items.len(),
        users,
        events: events.len(),
        train_rows: train.len(),
        eval_rows: eval.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DemoOptions {
        DemoOptions { users: 200, events_per_user: 20, ..DemoOptions::default() }
    }

    #[test]
    fn synthetic_catalog_has_ten_thousand_unique_readable_items() {
        let mut rng = StdRng::seed_from_u64(1);
        let (cat, truth) = synthetic_catalog(10_000, &mut rng).unwrap();
        assert_eq!(cat.items.len(), 10_000);
        assert_eq!(truth.len(), 10_000);
        let names: std::collections::HashSet<_> = cat.items.iter().map(|i| &i.name).collect();
        assert_eq!(names.len(), 10_000);
        for (item, t) in cat.items.iter().zip(&truth) {
            assert!(item.name.split(' ').count() >= 3, "{}", item.name);
            assert_eq!(item.category, CATEGORIES[t.category].0);
            assert!(item.name.contains(COLORS[t.color].1.iter().find(|w| item.name.contains(*w)).unwrap()));
            assert_eq!(item.attributes.len(), 3);
            assert!(!item.name.contains(',') && !item.name.contains('\t'));
        }
    }

    /// The planted tastes show in the rows: a positive shares its category with the most recent
    /// history item far more often than a sampled negative does.
    #[test]
    fn rows_follow_planted_tastes() {
        let opts = small();
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let (cat, truth) = synthetic_catalog(opts.items, &mut rng).unwrap();
        let events = synthetic_events(&opts, &truth, &mut rng);
        assert_eq!(events.len(), opts.users * opts.events_per_user);
        let (train, eval) = rows(&cat, &events, &opts, &mut rng);
        assert_eq!(train.len() + eval.len(), events.len() * (1 + opts.negatives));
        assert_eq!(eval.len(), opts.users * 4 * (1 + opts.negatives));
        let (mut same, mut total) = ([0usize; 2], [0usize; 2]);
        for line in &train {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), SCHEMA.len(), "{line}");
            let label: usize = f[0].parse().unwrap();
            if let Some(last) = f[5].split(',').next().filter(|s| !s.is_empty()) {
                total[label] += 1;
                same[label] += (last == f[9]) as usize;
            }
        }
        let rate = |l: usize| same[l] as f64 / total[l] as f64;
        assert!(rate(1) > 0.3 && rate(0) < 0.15, "positives {:.3}, negatives {:.3}", rate(1), rate(0));
    }

    #[test]
    fn writes_catalog_and_tsv_with_the_schema_header() {
        let dir = std::env::temp_dir().join(format!("pocketrec-demo-{}", std::process::id()));
        let opts = DemoOptions { users: 20, events_per_user: 10, items: 500, ..DemoOptions::default() };
        let s = write_demo(&dir, &opts, None).unwrap();
        assert_eq!(s.items, 500);
        let train = std::fs::read_to_string(dir.join("train.tsv")).unwrap();
        assert_eq!(train.lines().next().unwrap(), SCHEMA.join("\t"));
        assert_eq!(train.lines().count(), s.train_rows + 1);
        let cat: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("catalog.json")).unwrap()).unwrap();
        assert_eq!(cat["items"].as_array().unwrap().len(), 500);
        assert_eq!(cat["schema"][4], "bag:recent_items");
        // The personalization benchmark regenerates the world without its users: the same catalog.
        let (world, truth) = synthetic_world(&opts).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("catalog.json")).unwrap(), catalog_json(&world).unwrap());
        assert_eq!(truth.len(), 500);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn csv_fields_handle_quotes() {
        assert_eq!(
            csv_fields(r#"11,"American President, The (1995)",Comedy|Drama|Romance"#),
            ["11", "American President, The (1995)", "Comedy|Drama|Romance"]
        );
        assert_eq!(csv_fields(r#"1,"Say ""Hi"" (2001)",Drama"#)[1], r#"Say "Hi" (2001)"#);
    }

    #[test]
    fn movielens_pipeline_when_present() {
        let Some(dir) = crate::shared_data_for_test("movielens-small/ratings.csv", "movielens_pipeline_when_present")
            .and_then(|p| p.parent().map(Path::to_path_buf))
        else {
            return;
        };
        let (cat, events, users) = movielens(&dir).unwrap();
        assert_eq!(cat.items.len(), 9742);
        assert_eq!(users, 609, "users with a rating >= 4");
        assert!(events.len() > 40_000, "{}", events.len());
        assert!(cat.items.iter().any(|i| i.name == "American President, The (1995)"));
        let toy = cat.items.iter().find(|i| i.id == "m1").unwrap();
        assert_eq!(toy.category, "Adventure");
        assert!(toy.attributes.contains(&"decade:1990s".to_string()));
        let mut rng = StdRng::seed_from_u64(3);
        let (train, eval) = rows(&cat, &events, &DemoOptions::default(), &mut rng);
        assert_eq!(train.len() + eval.len(), events.len() * 5);
        assert!(train.iter().all(|l| l.split('\t').count() == SCHEMA.len()));
    }
}
