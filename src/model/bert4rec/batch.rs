//! Building token batches: masked-item training batches (seeded, never masking padding)
//! and prediction batches (history + [MASK]). Rows are left-padded to the longest row of
//! the batch, so the last column is always a real token.

use rand::Rng;
use rand::rngs::StdRng;

/// Token ids of a batch plus, for training, where the masks are and what they hide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `rows * len` token ids, row-major.
    pub tokens: Vec<u32>,
    pub rows: usize,
    pub len: usize,
    /// Flat indices (into `tokens`) of the masked positions, increasing.
    pub masked: Vec<u32>,
    /// The true track at each masked position.
    pub targets: Vec<u32>,
}

/// The special tokens of a model (see the encoder: `n` and `n + 1`).
#[derive(Debug, Clone, Copy)]
pub struct Specials {
    pub mask: u32,
    pub pad: u32,
}

/// The most recent `max_len` items of each sequence, each real item replaced by [MASK] with
/// probability `mask_prob`; a sequence that drew no mask gets one at a uniformly chosen
/// position, so every row contributes to the loss. Padding is never masked.
pub fn training_batch(
    sequences: &[&[u32]],
    max_len: usize,
    mask_prob: f64,
    specials: Specials,
    rng: &mut StdRng,
) -> Batch {
    let mut batch = padded(sequences, max_len, specials.pad);
    for (r, seq) in sequences.iter().enumerate() {
        let real = seq.len().min(max_len);
        if real == 0 {
            continue;
        }
        let start = r * batch.len + batch.len - real;
        let before = batch.masked.len();
        for i in start..start + real {
            if rng.random_bool(mask_prob) {
                batch.masked.push(i as u32);
            }
        }
        if batch.masked.len() == before {
            batch
                .masked
                .push((start + rng.random_range(0..real)) as u32);
        }
    }
    for &i in &batch.masked {
        batch.targets.push(batch.tokens[i as usize]);
        batch.tokens[i as usize] = specials.mask;
    }
    batch
}

/// Each history's most recent `max_len - 1` items followed by [MASK]: the model's input at
/// prediction time. The masked position is the last column of every row.
pub fn prediction_batch(histories: &[&[u32]], max_len: usize, specials: Specials) -> Batch {
    let with_mask: Vec<Vec<u32>> = histories
        .iter()
        .map(|h| {
            let keep = h.len().min(max_len - 1);
            let mut s = h[h.len() - keep..].to_vec();
            s.push(specials.mask);
            s
        })
        .collect();
    let refs: Vec<&[u32]> = with_mask.iter().map(Vec::as_slice).collect();
    let mut batch = padded(&refs, max_len, specials.pad);
    batch.masked = (0..batch.rows)
        .map(|r| (r * batch.len + batch.len - 1) as u32)
        .collect();
    batch
}

/// Left-pads the last `max_len` items of each sequence to the longest such row.
fn padded(sequences: &[&[u32]], max_len: usize, pad: u32) -> Batch {
    let len = sequences
        .iter()
        .map(|s| s.len().min(max_len))
        .max()
        .unwrap_or(0)
        .max(1);
    let mut tokens = Vec::with_capacity(sequences.len() * len);
    for seq in sequences {
        let keep = seq.len().min(max_len);
        tokens.extend(std::iter::repeat_n(pad, len - keep));
        tokens.extend_from_slice(&seq[seq.len() - keep..]);
    }
    Batch {
        tokens,
        rows: sequences.len(),
        len,
        masked: Vec::new(),
        targets: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const S: Specials = Specials {
        mask: 100,
        pad: 101,
    };

    #[test]
    fn pads_on_the_left_and_keeps_the_most_recent_items() {
        let b = prediction_batch(&[&[1, 2, 3, 4, 5], &[7]], 4, S);
        assert_eq!((b.rows, b.len), (2, 4));
        assert_eq!(b.tokens, vec![3, 4, 5, 100, 101, 101, 7, 100]);
        assert_eq!(b.masked, vec![3, 7]);
    }

    #[test]
    fn masking_never_touches_padding_and_is_seeded() {
        let short: Vec<u32> = vec![5, 6];
        let long: Vec<u32> = (0..40).collect();
        let seqs: Vec<&[u32]> = vec![&short, &long, &short[..1]];
        let mut total = 0;
        for seed in 0..200 {
            let b = training_batch(&seqs, 30, 0.5, S, &mut StdRng::seed_from_u64(seed));
            assert_eq!((b.rows, b.len), (3, 30));
            for (&i, &t) in b.masked.iter().zip(&b.targets) {
                assert_ne!(t, S.pad, "a pad position was masked (seed {seed})");
                assert_eq!(b.tokens[i as usize], S.mask);
            }
            // Padding stays padding; every row has at least one mask.
            assert_eq!(b.tokens.iter().filter(|&&t| t == S.pad).count(), 28 + 29);
            for r in 0..3u32 {
                assert!(b.masked.iter().any(|&i| i / 30 == r), "row {r} has no mask");
            }
            // Targets restore the original sequences.
            let mut restored = b.tokens.clone();
            for (&i, &t) in b.masked.iter().zip(&b.targets) {
                restored[i as usize] = t;
            }
            assert_eq!(&restored[30..60], &long[10..]);
            assert_eq!(&restored[28..30], &short[..]);
            total += b.masked.len();
        }
        // Mask rate close to 0.5 over 200 * 33 real positions (plus forced masks).
        let rate = total as f64 / (200.0 * 33.0);
        assert!((0.45..0.56).contains(&rate), "mask rate {rate}");
        let a = training_batch(&seqs, 30, 0.2, S, &mut StdRng::seed_from_u64(7));
        let b = training_batch(&seqs, 30, 0.2, S, &mut StdRng::seed_from_u64(7));
        assert_eq!(a, b, "same seed, same batch");
    }
}
