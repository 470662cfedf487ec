//! The max-margin hinge loss over (positive, negative-user) score pairs, and the batch
//! forward pass that produces those scores.
//!
//! candle computes a matmul's gradient for both operands even when one is constant, so
//! the tower runs once per *distinct* user and item row of a batch and the scores gather
//! from those outputs, rather than running the tower on all `B x (1 + negatives)` rows.
//! On the CPU the scores come from [`PairDot`], which never materialises the gathered
//! rows; on a GPU from `index_select` and a batched matmul.

use candle_core::{Device, Result, Tensor};

use crate::model::shallow::ShallowNet;
use crate::model::shallow::pairdot::PairDot;

/// `mean(max(0, margin - s_pos + s_neg))` over every (pair, negative); `s_pos: [B]`,
/// `s_neg: [B, n]`.
pub fn hinge(s_pos: &Tensor, s_neg: &Tensor, margin: f64) -> Result<Tensor> {
    let diff = s_neg.broadcast_sub(&s_pos.unsqueeze(1)?)?;
    (diff + margin)?.relu()?.mean_all()
}

/// Sorted distinct ids and each input's position among them.
struct Distinct {
    rows: Vec<u32>,
    local: Vec<u32>,
}

fn distinct(ids: &[&[u32]]) -> Distinct {
    let mut rows: Vec<u32> = ids.iter().flat_map(|s| s.iter().copied()).collect();
    rows.sort_unstable();
    rows.dedup();
    let max = rows.last().map_or(0, |&m| m as usize + 1);
    let mut lookup = vec![0u32; max];
    for (i, &r) in rows.iter().enumerate() {
        lookup[r as usize] = i as u32;
    }
    let local = ids
        .iter()
        .flat_map(|s| s.iter().map(|&r| lookup[r as usize]))
        .collect();
    Distinct { rows, local }
}

fn index(ids: Vec<u32>, device: &Device) -> Result<Tensor> {
    let n = ids.len();
    Tensor::from_vec(ids, n, device)
}

/// The scores of a batch: `s_pos[b] = cos(user_b, item_b)` and
/// `s_neg[b, j] = cos(negative_{b,j}, item_b)`, with `negatives` flattened row-major
/// (`per_pair` per positive). Returns `(s_pos [B], s_neg [B, per_pair])`.
pub fn batch_scores(
    net: &ShallowNet,
    users: &[u32],
    items: &[u32],
    negatives: &[u32],
    per_pair: usize,
) -> Result<(Tensor, Tensor)> {
    // The fused op's loops are this crate's code, which debug builds leave unoptimised
    // (dependencies are optimised even there); candle's gather kernels are faster then.
    let fused = net.weight.device().is_cpu() && !cfg!(debug_assertions);
    batch_scores_with(net, users, items, negatives, per_pair, fused)
}

/// [`batch_scores`] with the score path chosen: `fused` = [`PairDot`] (CPU only), else
/// `index_select` plus a batched matmul (any device). Both give the same numbers.
pub fn batch_scores_with(
    net: &ShallowNet,
    users: &[u32],
    items: &[u32],
    negatives: &[u32],
    per_pair: usize,
    fused: bool,
) -> Result<(Tensor, Tensor)> {
    let device = net.weight.device();
    let b = users.len();
    let u = distinct(&[users, negatives]);
    let i = distinct(&[items]);
    let user_rows = net
        .users
        .tensor()
        .index_select(&index(u.rows, device)?, 0)?;
    let item_rows = net
        .items
        .tensor()
        .index_select(&index(i.rows, device)?, 0)?;
    let user_out = net.embed(&user_rows)?;
    let item_out = net.embed(&item_rows)?;
    let mut local_users = u.local;
    let local_negs = local_users.split_off(b);
    if fused {
        // One fused op for the B positive and B x per_pair negative dot products.
        let mut left = local_users;
        left.extend_from_slice(&local_negs);
        let mut right = Vec::with_capacity(left.len());
        right.extend_from_slice(&i.local);
        i.local
            .iter()
            .for_each(|&x| right.extend(std::iter::repeat_n(x, per_pair)));
        let all = PairDot::new(left, right).apply(&user_out, &item_out)?;
        let s_pos = all.narrow(0, 0, b)?;
        let s_neg = all.narrow(0, b, b * per_pair)?.reshape((b, per_pair))?;
        return Ok((s_pos, s_neg));
    }
    let pos_u = user_out.index_select(&index(local_users, device)?, 0)?;
    let pos_i = item_out.index_select(&index(i.local, device)?, 0)?;
    let s_pos = (&pos_u * &pos_i)?.sum(1)?;
    let d = net.d_out();
    let neg_u = user_out
        .index_select(&index(local_negs, device)?, 0)?
        .reshape((b, per_pair, d))?;
    let s_neg = neg_u.matmul(&pos_i.unsqueeze(2)?)?.squeeze(2)?;
    Ok((s_pos, s_neg))
}

/// The training loss of one batch of positive pairs and their negative users.
pub fn batch_loss(
    net: &ShallowNet,
    users: &[u32],
    items: &[u32],
    negatives: &[u32],
    per_pair: usize,
    margin: f64,
) -> Result<Tensor> {
    let (s_pos, s_neg) = batch_scores(net, users, items, negatives, per_pair)?;
    hinge(&s_pos, &s_neg, margin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::shallow::net::{Table, matrix};

    #[test]
    fn hinge_matches_hand_computed_values() {
        let dev = Device::Cpu;
        let s_pos = Tensor::new(&[0.5f32, 0.1], &dev).unwrap();
        let s_neg = Tensor::new(&[[0.4f32, 0.0], [0.2, -0.5]], &dev).unwrap();
        // terms: 0.2-0.5+0.4=0.1, 0.2-0.5+0.0<0, 0.2-0.1+0.2=0.3, 0.2-0.1-0.5<0 -> 0.4/4
        let loss = hinge(&s_pos, &s_neg, 0.2)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((loss - 0.1).abs() < 1e-6, "{loss}");
        let zero = hinge(&s_pos, &(s_neg - 1.0).unwrap(), 0.2).unwrap();
        assert_eq!(zero.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn batch_scores_are_cosines_through_the_tower() {
        let dev = Device::Cpu;
        // Identity tower with zero bias: scores are the plain cosines of the rows.
        let items = matrix(&[3.0, 4.0, 1.0, 0.0, 0.0, 2.0], 2, &dev).unwrap();
        let users = matrix(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 2, &dev).unwrap();
        let net = ShallowNet::new(
            Table::new(items, false).unwrap(),
            Table::new(users, true).unwrap(),
            2,
            0,
            &dev,
        )
        .unwrap();
        net.weight
            .set(&matrix(&[1.0, 0.0, 0.0, 1.0], 2, &dev).unwrap())
            .unwrap();
        net.bias
            .set(&Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap())
            .unwrap();
        // pairs (user 0, item 0), (user 2, item 2); negatives [1, 2] and [0, 1]
        let (s_pos, s_neg) = batch_scores(&net, &[0, 2], &[0, 2], &[1, 2, 0, 1], 2).unwrap();
        let s_pos = s_pos.to_vec1::<f32>().unwrap();
        let s_neg = s_neg.to_vec2::<f32>().unwrap();
        let r = 1.0 / 2f32.sqrt();
        let expect_pos = [0.6, r]; // cos([1,0],[3,4]) = 0.6; cos([1,1],[0,2]) = 1/sqrt2
        // cos([0,1],[3,4]) = 0.8; cos([1,1],[3,4]) = 7/(5 sqrt2);
        // cos([1,0],[0,2]) = 0; cos([0,1],[0,2]) = 1
        let expect_neg = [[0.8, 7.0 / (5.0 * 2f32.sqrt())], [0.0, 1.0]];
        for (a, e) in s_pos.iter().zip(expect_pos) {
            assert!((a - e).abs() < 1e-6, "{s_pos:?}");
        }
        for (row, erow) in s_neg.iter().zip(expect_neg) {
            for (a, e) in row.iter().zip(erow) {
                assert!((a - e).abs() < 1e-6, "{s_neg:?}");
            }
        }
        let loss = batch_loss(&net, &[0, 2], &[0, 2], &[1, 2, 0, 1], 2, 0.2)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // terms: 0.2-0.6+0.8=0.4, 0.2-0.6+0.98995=0.58995, 0.2-0.7071+0<0, 0.2-0.7071+1=0.4929
        let expected = (0.4 + (0.2 - 0.6 + 7.0 / (5.0 * 2f32.sqrt())) + (0.2 - r + 1.0)) / 4.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }
}
