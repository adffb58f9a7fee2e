//! Evaluation metrics over a whole eval set: exact ROC AUC and logloss.

/// Exact ROC AUC: the probability that a random positive scores above a random negative, ties
/// counting one half (the Mann-Whitney U statistic with averaged ranks). O(n log n).
/// Labels are 0 or 1 (anything > 0.5 counts as positive). Returns NaN when one class is absent.
pub fn auc(scores: &[f32], labels: &[f32]) -> f64 {
    assert_eq!(scores.len(), labels.len(), "auc: {} scores but {} labels", scores.len(), labels.len());
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = labels.iter().filter(|&&l| l > 0.5).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        let tied_positives = order[i..j].iter().filter(|&&k| labels[k] > 0.5).count();
        rank_sum += average_rank * tied_positives as f64;
        i = j;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Probabilities are clamped to `[EPS, 1 - EPS]` so one confident mistake cannot make logloss infinite.
pub const LOGLOSS_EPS: f64 = 1e-7;

/// Mean binary cross-entropy of probabilities against 0/1 labels (natural log). NaN when empty.
pub fn logloss(probs: &[f32], labels: &[f32]) -> f64 {
    assert_eq!(probs.len(), labels.len(), "logloss: {} probabilities but {} labels", probs.len(), labels.len());
    let total: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = (p as f64).clamp(LOGLOSS_EPS, 1.0 - LOGLOSS_EPS);
            let y = y as f64;
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum();
    total / probs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_hand_computed() {
        // Perfect and reversed rankings.
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[0.0, 0.0, 1.0, 1.0]), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[0.0, 0.0, 1.0, 1.0]), 0.0);
        // Pairs (pos, neg): positives 0.35, 0.8; negatives 0.1, 0.4, 0.9.
        // 0.35 beats 0.1 only (1/3); 0.8 beats 0.1 and 0.4 (2/3): 3 of 6 pairs.
        assert_eq!(auc(&[0.1, 0.35, 0.4, 0.8, 0.9], &[0.0, 1.0, 0.0, 1.0, 0.0]), 0.5);
        // Scores 0.1(neg) 0.4(pos) 0.35(neg) 0.8(pos): positives win 2 + 2 of 4 pairs.
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 1.0, 0.0, 1.0]), 1.0);
    }

    #[test]
    fn auc_averages_ties() {
        // All tied: every pair counts one half.
        assert_eq!(auc(&[0.5; 4], &[0.0, 1.0, 0.0, 1.0]), 0.5);
        // pos {0.5, 0.9}, neg {0.5, 0.1}: 0.5 vs 0.5 is 1/2, 0.5 > 0.1, 0.9 > both: 3.5 / 4.
        assert_eq!(auc(&[0.5, 0.9, 0.5, 0.1], &[1.0, 1.0, 0.0, 0.0]), 0.875);
    }

    #[test]
    fn auc_matches_pair_counting() {
        let mut rng = crate::data::rng::Rng::new(3);
        let n = 300;
        let scores: Vec<f32> = (0..n).map(|_| (rng.below(20) as f32) / 20.0).collect();
        let labels: Vec<f32> = (0..n).map(|_| rng.below(2) as f32).collect();
        let (mut wins, mut pairs) = (0.0, 0.0);
        for i in 0..n {
            for j in 0..n {
                if labels[i] == 1.0 && labels[j] == 0.0 {
                    pairs += 1.0;
                    wins += if scores[i] > scores[j] {
                        1.0
                    } else if scores[i] == scores[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((auc(&scores, &labels) - wins / pairs).abs() < 1e-12);
    }

    #[test]
    fn auc_of_one_class_is_nan() {
        assert!(auc(&[0.1, 0.2], &[1.0, 1.0]).is_nan());
        assert!(auc(&[], &[]).is_nan());
    }

    #[test]
    fn logloss_hand_computed() {
        let ln2 = std::f64::consts::LN_2;
        assert!((logloss(&[0.5, 0.5], &[0.0, 1.0]) - ln2).abs() < 1e-12);
        // -(ln 0.8 + ln 0.75) / 2
        let expected = -((0.8f64).ln() + (0.75f64).ln()) / 2.0;
        assert!((logloss(&[0.8, 0.25], &[1.0, 0.0]) - expected).abs() < 1e-7);
        // Clamped: a certain mistake costs -ln(1e-7), not infinity.
        assert!((logloss(&[0.0], &[1.0]) - (-(LOGLOSS_EPS).ln())).abs() < 1e-6);
        assert!(logloss(&[1.0], &[1.0]) < 1e-6);
        assert!(logloss(&[], &[]).is_nan());
    }
}
