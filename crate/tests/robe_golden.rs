//! The golden index vectors of docs/hash.md (dictionary mode, Criteo Kaggle table sizes), exact, and the
//! equivalence of the 32-bit limb form with the u64 reference on millions of random keys.

use pocketrec::robe::{HashVariant, KeyMode, RobeHash, limbs};
use rand::{Rng, SeedableRng, rngs::StdRng};

const KAGGLE_TABLES: [u64; 26] = [
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992, 5461306, 10, 5652,
    2173, 4, 7046547, 18, 15, 286181, 105, 142572,
];

/// The slots of the `d` dimensions of a (field, id), by the u64 reference; asserts first that the
/// GPU's block walk (its CPU twin, [`limbs::BlockWalk`]) reads the same slots.
fn indices(variant: HashVariant, m: u64, z: u32, d: u32, field: usize, id: u32) -> Vec<u32> {
    let mode = KeyMode::Dictionary { table_sizes: KAGGLE_TABLES.to_vec() };
    let offsets = mode.table_offsets();
    let x = mode.global_key(&offsets, field, id);
    let h = RobeHash::new(m, z, variant).unwrap();
    let reference: Vec<u32> = (0..d).map(|i| h.index(x, i)).collect();
    let starts = walk(&h, x, d.div_ceil(z) as usize);
    let walked: Vec<u32> = (0..d).map(|i| starts[(i / z) as usize] + i % z).collect();
    assert_eq!(walked, reference, "the GPU walk, {variant} M={m} Z={z} field {field} id {id}");
    reference
}

/// The first slots of blocks `0..blocks` of key `x` as the GPU gather walks them.
fn walk(h: &RobeHash, x: u64, blocks: usize) -> Vec<u32> {
    limbs::BlockWalk::new(h.variant(), limbs::range(h), x as u32, (x >> 32) as u32).take(blocks).collect()
}

/// A random key: any u64, raw mode (field in the high word), dictionary mode, or near the top.
fn random_key(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..4) {
        0 => rng.random(),
        1 => ((rng.random_range(0..64u64)) << 32) | rng.random::<u32>() as u64,
        2 => rng.random_range(0..40_000_000),
        _ => u64::MAX - rng.random_range(0..1000),
    }
}

/// A random array shape: small, medium, 10 MB-sized or near-2^32, with a block length below it.
fn random_shape(rng: &mut StdRng, round: usize) -> (u64, u32) {
    let m: u64 = match round % 4 {
        0 => rng.random_range(2..1000),
        1 => rng.random_range(1000..10_000_000),
        2 => 2_024_015,
        _ => rng.random_range((1u64 << 31)..(1u64 << 32)),
    };
    (m, rng.random_range(1..=(m - 1).min(128)) as u32)
}

fn runs(starts: &[u32], z: u32) -> Vec<u32> {
    starts.iter().flat_map(|&s| s..s + z).collect()
}

#[test]
fn table_offsets_match_design() {
    let offsets = KeyMode::Dictionary { table_sizes: KAGGLE_TABLES.to_vec() }.table_offsets();
    assert_eq!(&offsets[..4], &[0, 1460, 2043, 10133270]);
}

#[test]
fn golden_uma_v1_z1() {
    let u = HashVariant::UmaV1;
    assert_eq!(
        indices(u, 540201, 1, 16, 0, 0),
        [
            133045, 149737, 166429, 79491, 96183, 112875, 129567, 146259, 162951, 179643, 196335, 213027, 229719,
            142781, 159473, 176165
        ]
    );
    assert_eq!(
        indices(u, 540201, 1, 16, 0, 1),
        [
            534389, 10880, 27572, 44264, 60956, 77648, 94340, 111032, 24094, 40786, 57478, 74170, 90862, 107554,
            124246, 140938
        ]
    );
    assert_eq!(
        indices(u, 540201, 1, 16, 25, 142571),
        [
            476592, 493284, 509976, 526668, 3159, 456422, 473114, 489806, 506498, 523190, 539882, 16373, 33065, 49757,
            66449, 519712
        ]
    );
}

#[test]
fn golden_uma_v1_blocks() {
    let u = HashVariant::UmaV1;
    assert_eq!(indices(u, 540201, 4, 16, 0, 0), runs(&[136567, 152077, 167587, 90786], 4));
    assert_eq!(indices(u, 540201, 4, 16, 2, 12345), runs(&[356995, 372505, 388015, 403525], 4));
    assert_eq!(indices(u, 2621440, 16, 16, 2, 12345), runs(&[1073572], 16));
}

#[test]
fn golden_new_robez() {
    assert_eq!(indices(HashVariant::NewRobez, 540201, 4, 16, 0, 0), runs(&[422908, 438024, 453140, 468256], 4));
}

#[test]
fn raw_keys_put_the_field_in_the_high_word() {
    assert_eq!(KeyMode::Raw.global_key(&[], 25, 0xdead_beef), (25u64 << 32) | 0xdead_beef);
}

/// The limb form must equal the u64 reference for every key, M, Z, block and variant.
#[test]
fn limbs_equal_u64_on_millions_of_random_keys() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut checked = 0u64;
    for round in 0..64 {
        let (m, z) = random_shape(&mut rng, round);
        for variant in HashVariant::ALL {
            let Some(h) = RobeHash::new(m, z, variant) else {
                continue;
            };
            let range = limbs::range(&h);
            for _ in 0..20_000 {
                let x = random_key(&mut rng);
                let c = if rng.random_bool(0.9) { rng.random_range(0..64) } else { rng.random() };
                let (lo, hi) = (x as u32, (x >> 32) as u32);
                assert_eq!(
                    limbs::block_offset(variant, range, lo, hi, c),
                    h.block_offset(x, c),
                    "x = {x}, c = {c}, M = {m}, Z = {z}, {variant}"
                );
                checked += 1;
            }
            // The batched form (x mod P once, division-free range) agrees too.
            let mut batched = [0u32; 40];
            for _ in 0..2_000 {
                let x: u64 = rng.random();
                h.block_offsets(x, &mut batched);
                for (c, &o) in batched.iter().enumerate() {
                    assert_eq!(o, h.block_offset(x, c as u32), "x = {x}, c = {c}, M = {m}, Z = {z}, {variant}");
                }
            }
        }
    }
    assert!(checked >= 2_000_000, "{checked}");
}

/// The GPU gather's block walk (`hash.wgsl`'s `walk_begin` / `walk_next`, ported line for line
/// as [`limbs::BlockWalk`]) must give the u64 reference's slots for every key, M, Z, block and
/// variant: 2M random keys, each walked over 1 to 16 blocks (a few dozen blocks now and then).
#[test]
fn gpu_block_walk_equals_u64_on_millions_of_random_keys() {
    let mut rng = StdRng::seed_from_u64(8);
    let mut keys = 0u64;
    for round in 0..60 {
        let (m, z) = random_shape(&mut rng, round);
        for variant in HashVariant::ALL {
            let Some(h) = RobeHash::new(m, z, variant) else {
                continue;
            };
            for _ in 0..11_200 {
                let x = random_key(&mut rng);
                let blocks = if rng.random_bool(0.98) { rng.random_range(1..=16) } else { rng.random_range(17..=80) };
                for (c, start) in walk(&h, x, blocks).into_iter().enumerate() {
                    assert_eq!(start, h.block_offset(x, c as u32), "x = {x}, c = {c}, M = {m}, Z = {z}, {variant}");
                }
                keys += 1;
            }
        }
    }
    assert!(keys >= 2_000_000, "{keys}");
}

#[test]
fn limb_arithmetic_edges() {
    let p = limbs::P;
    for (a, b) in [(0, 0), (1, p - 1), (p - 1, p - 1), (p - 1, 2), (1 << 30, 1 << 30)] {
        assert_eq!(limbs::mul_mod(a, b) as u64, (a as u64 * b as u64) % pocketrec::robe::P);
    }
    for (lo, hi) in [(0, 0), (u32::MAX, u32::MAX), (p, 0), (p - 1, p), (0, 1)] {
        let x = ((hi as u64) << 32) | lo as u64;
        assert_eq!(limbs::key_mod_p(lo, hi) as u64, x % pocketrec::robe::P);
    }
}
