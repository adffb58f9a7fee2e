//! The numbers in `docs/` are the code's: the hash constants and the golden table of
//! docs/hash.md, and the digest example of docs/model-file.md. A change to either side fails here.

use pocketrec::robe::{HashVariant, KeyMode, P, R1, R2, R3, RobeHash};

const HASH_MD: &str = include_str!("../../docs/hash.md");
const MODEL_FILE_MD: &str = include_str!("../../docs/model-file.md");

/// `"a..b"` is the inclusive run a..=b; anything else is one number.
fn expand(cell: &str) -> Vec<u32> {
    cell.split_whitespace()
        .flat_map(|t| match t.split_once("..") {
            Some((a, b)) => (a.parse::<u32>().unwrap()..=b.parse().unwrap()).collect::<Vec<_>>(),
            None => vec![t.parse().unwrap()],
        })
        .collect()
}

#[test]
fn hash_constants_are_the_codes() {
    for (name, value) in [("P", P), ("R1", R1), ("R2", R2), ("R3", R3)] {
        let line = HASH_MD
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(line.split_whitespace().nth(2), Some(value.to_string().as_str()), "{line}");
    }
}

#[test]
fn golden_table_is_what_the_code_computes() {
    let tables: Vec<u64> = HASH_MD
        .split("```")
        .find(|block| block.trim().starts_with("1460,583,"))
        .expect("table sizes block")
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert_eq!(tables.len(), 26);
    let mode = KeyMode::Dictionary { table_sizes: tables };
    let offsets = mode.table_offsets();
    let mut rows = 0;
    for line in HASH_MD.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(variant) = cells.get(1).and_then(|v| v.parse::<HashVariant>().ok()) else {
            continue;
        };
        if cells.len() != 9 {
            continue; // the table of formulas
        }
        let [m, z, d, field, id] = [2, 3, 4, 5, 6].map(|i| cells[i].parse::<u64>().unwrap());
        let h = RobeHash::new(m, z as u32, variant).unwrap();
        let x = mode.global_key(&offsets, field as usize, id as u32);
        let got: Vec<u32> = (0..d as u32).map(|i| h.index(x, i)).collect();
        assert_eq!(got, expand(cells[7]), "{line}");
        rows += 1;
    }
    assert_eq!(rows, 7, "docs/hash.md lists seven golden vectors");
}

#[test]
fn digest_example_is_xxh3_of_no_bytes() {
    let example = pocketrec::file::digest(b"");
    assert!(MODEL_FILE_MD.contains(&format!("`{example}`")), "docs/model-file.md must show {example}");
}
