//! The MSD_musicnn network (Pons & Serra, musicnn 0.1.0 `models.py`, `build_musicnn` with
//! 64 mid-end filters and 200 back-end units), inference only, with the checkpoint's
//! weights. Shapes below are for a batch of `B` patches of `T = 187` frames × 96 mel bands.
//!
//! - input batch norm (one channel);
//! - timbral front end: 7×38 and 7×67 convolutions ('valid' in frequency, time padded by 3
//!   both sides), ReLU, batch norm, max over frequency → 204 channels each;
//! - temporal front end: 128×1, 64×1 and 32×1 convolutions ('same' in time, TensorFlow's
//!   asymmetric padding), ReLU, batch norm, max over frequency → 51 channels each;
//! - mid-end: three 7-frame convolutions of 64 filters over the 561 front-end channels,
//!   ReLU then batch norm, the second and third with residual connections; dense
//!   connection: front end and all three outputs concatenated (753 channels);
//! - back-end: max and mean over time, interleaved per channel (1506), batch norm, dense
//!   200 + ReLU, batch norm = the `penultimate` features; dense 50 + sigmoid = MSD tags.
//!
//! Every batch norm is TensorFlow's inference form with epsilon 1e-3 and the stored moving
//! statistics. The front end's branches run as one matrix product each, pooled as it is
//! read ([`super::frontend`]); the mid-end's convolutions as candle `conv1d` along time.

use candle_core::{Device, Tensor};

use super::checkpoint::TensorBundle;
use super::error::CheckpointError;
use super::frontend::{self, ConvPool};

/// Frames per patch: `librosa.time_to_frames(3 s) + 1` at 16 kHz, hop 256.
pub const PATCH_FRAMES: usize = 187;
pub const N_MELS: usize = 96;
pub const PENULTIMATE_DIM: usize = 200;
pub const N_TAGS: usize = 50;
const BN_EPSILON: f64 = 1e-3;
/// Time padding of the timbral and mid-end convolutions (kernel height 7).
const PAD_7: usize = 3;

/// Inference-mode batch norm folded to `x * scale + shift` per channel.
struct BatchNorm {
    scale: Tensor,
    shift: Tensor,
}

/// A batch norm's `(scale, shift)` per channel, folded from its stored statistics.
fn folded(ckpt: &TensorBundle, name: &str) -> Result<(Vec<f32>, Vec<f32>), CheckpointError> {
    let get = |p: &str| ckpt.f32_tensor(&format!("{name}/{p}")).map(|(_, v)| v);
    let (gamma, beta) = (get("gamma")?, get("beta")?);
    let (mean, var) = (get("moving_mean")?, get("moving_variance")?);
    let c = gamma.len();
    if [beta.len(), mean.len(), var.len()] != [c, c, c] {
        return Err(tensor_error(name, "batch-norm parameters differ in length"));
    }
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| (f64::from(*g) / (f64::from(*v) + BN_EPSILON).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    Ok((scale, shift))
}

impl BatchNorm {
    fn load(ckpt: &TensorBundle, name: &str, dev: &Device) -> Result<Self, CheckpointError> {
        let (scale, shift) = folded(ckpt, name)?;
        let c = scale.len();
        Ok(Self {
            scale: Tensor::from_vec(scale, c, dev).map_err(|e| candle_error(name, e))?,
            shift: Tensor::from_vec(shift, c, dev).map_err(|e| candle_error(name, e))?,
        })
    }

    /// Applies along `dim` of `x`.
    fn forward(&self, x: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
        let mut shape = vec![1; x.rank()];
        shape[dim] = self.scale.dim(0)?;
        x.broadcast_mul(&self.scale.reshape(shape.as_slice())?)?
            .broadcast_add(&self.shift.reshape(shape.as_slice())?)
    }
}

/// A convolution or dense layer: weight in candle's layout, bias per output channel.
struct Layer {
    weight: Tensor,
    bias: Tensor,
}

impl Layer {
    /// Loads `name/kernel` of TensorFlow shape `tf_shape`, reshaped to `shape` after the
    /// axes permutation `perm`.
    fn load(
        ckpt: &TensorBundle,
        name: &str,
        tf_shape: &[usize],
        reshape: &[usize],
        perm: &[usize],
        dev: &Device,
    ) -> Result<Self, CheckpointError> {
        let (shape, kernel) = ckpt.f32_tensor(&format!("{name}/kernel"))?;
        if shape != tf_shape {
            return Err(tensor_error(
                name,
                &format!("kernel shape {shape:?}, expected {tf_shape:?}"),
            ));
        }
        let (_, bias) = ckpt.f32_tensor(&format!("{name}/bias"))?;
        let weight = Tensor::from_vec(kernel, reshape, dev)
            .and_then(|w| w.permute(perm))
            .and_then(|w| w.contiguous())
            .map_err(|e| candle_error(name, e))?;
        let bias = Tensor::from_vec(bias, tf_shape[tf_shape.len() - 1], dev)
            .map_err(|e| candle_error(name, e))?;
        Ok(Self { weight, bias })
    }

    /// `conv1d` with zero padding (`left`, `right`) along time, no bias.
    fn conv(&self, x: &Tensor, left: usize, right: usize) -> candle_core::Result<Tensor> {
        let x = if left + right > 0 {
            x.pad_with_zeros(2, left, right)?
        } else {
            x.clone()
        };
        x.conv1d(&self.weight, 0, 1, 1, 1)
    }

    /// Adds the bias along `dim` (channels) and applies the ReLU.
    fn bias_relu(&self, x: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
        let mut shape = vec![1; x.rank()];
        shape[dim] = self.bias.dim(0)?;
        x.broadcast_add(&self.bias.reshape(shape.as_slice())?)?
            .relu()
    }

    fn dense(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// The whole network.
pub struct MusicnnNet {
    input_bn: BatchNorm,
    /// 7×38 and 7×67 kernels over (frames, mel bands).
    timbral: [ConvPool; 2],
    /// 128, 64 and 32 frames over each mel band.
    temporal: [ConvPool; 3],
    midend: [(Layer, BatchNorm); 3],
    pool_bn: BatchNorm,
    dense: Layer,
    dense_bn: BatchNorm,
    output: Layer,
}

/// Outputs for a batch of patches.
pub struct PatchOutputs {
    /// `[B, 200]`, the `penultimate` features.
    pub penultimate: Tensor,
    /// `[B, 50]`, sigmoid probabilities of the MSD tags.
    pub tags: Tensor,
}

impl MusicnnNet {
    pub fn load(ckpt: &TensorBundle, dev: &Device) -> Result<Self, CheckpointError> {
        let bn_name = |i: usize| {
            if i == 0 {
                "batch_normalization".to_string()
            } else {
                format!("batch_normalization_{i}")
            }
        };
        let bn = |i: usize| BatchNorm::load(ckpt, &bn_name(i), dev);
        let folded_bn = |i: usize| folded(ckpt, &bn_name(i));
        let conv = |i: usize| {
            if i == 0 {
                "conv2d".to_string()
            } else {
                format!("conv2d_{i}")
            }
        };
        // The branches keep TensorFlow's kernel layout: [7, w, 1, 204] and [k, 1, 1, 51].
        let branch = |i: usize, tf_shape: &[usize]| {
            ConvPool::load(ckpt, &conv(i), tf_shape, folded_bn(i + 1)?, dev)
        };
        let timbral = |i: usize, w: usize| branch(i, &[7, w, 1, 204]);
        let temporal = |i: usize, k: usize| branch(i, &[k, 1, 1, 51]);
        // TF [7, c, 1, 64] -> conv1d [64, c, 7] along time.
        let midend = |i: usize, c: usize| -> Result<(Layer, BatchNorm), CheckpointError> {
            Ok((
                Layer::load(ckpt, &conv(i), &[7, c, 1, 64], &[7, c, 64], &[2, 1, 0], dev)?,
                bn(i + 1)?,
            ))
        };
        let dense = |name: &str, n_in: usize, n_out: usize| {
            Layer::load(ckpt, name, &[n_in, n_out], &[n_in, n_out], &[0, 1], dev)
        };
        Ok(Self {
            input_bn: bn(0)?,
            timbral: [timbral(0, 38)?, timbral(1, 67)?],
            temporal: [temporal(2, 128)?, temporal(3, 64)?, temporal(4, 32)?],
            midend: [midend(5, 561)?, midend(6, 64)?, midend(7, 64)?],
            pool_bn: bn(9)?,
            dense: dense("dense", 1506, PENULTIMATE_DIM)?,
            dense_bn: bn(10)?,
            output: dense("dense_1", PENULTIMATE_DIM, N_TAGS)?,
        })
    }

    /// Runs a batch of log-mel patches `[B, 187, 96]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<PatchOutputs> {
        let (b, t, f) = x.dims3()?;
        let x = self.input_bn.forward(&x.unsqueeze(1)?, 1)?.squeeze(1)?;

        // The front end on the host, patch by patch (see `frontend`).
        let patches = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut front = Vec::with_capacity(5);
        for branch in &self.timbral {
            let mut out = Vec::with_capacity(b * t * branch.filters());
            let width = branch.taps() / 7;
            for patch in patches.chunks_exact(t * f) {
                let (windows, bands) = frontend::timbral_windows(patch, f, 7, width, PAD_7);
                out.extend(branch.apply(windows, t, bands)?);
            }
            front.push(Tensor::from_vec(out, (b, t, branch.filters()), x.device())?);
        }
        for branch in &self.temporal {
            let mut out = Vec::with_capacity(b * t * branch.filters());
            for patch in patches.chunks_exact(t * f) {
                let windows = frontend::temporal_windows(patch, f, branch.taps());
                out.extend(branch.apply(windows, t, f)?);
            }
            front.push(Tensor::from_vec(out, (b, t, branch.filters()), x.device())?);
        }
        // [B, T, 561] -> channels first, as the mid-end convolves along time.
        let front = Tensor::cat(&front, 2)?.transpose(1, 2)?.contiguous()?;

        // Mid-end with residual connections, densely concatenated.
        let mut features = vec![front];
        for (i, (conv, bn)) in self.midend.iter().enumerate() {
            let last = features.last().expect("front end");
            let y = bn.forward(&conv.bias_relu(&conv.conv(last, PAD_7, PAD_7)?, 1)?, 1)?;
            features.push(if i == 0 { y } else { (y + last)? });
        }
        let features = Tensor::cat(&features, 1)?;

        // Back-end: [max, mean] per channel, interleaved as TensorFlow flattens [753, 2].
        let pooled = Tensor::stack(&[features.max(2)?, features.mean(2)?], 2)?.reshape((b, ()))?;
        let h = self.pool_bn.forward(&pooled, 1)?;
        let h = self.dense.dense(&h)?.relu()?;
        let penultimate = self.dense_bn.forward(&h, 1)?;
        let logits = self.output.dense(&penultimate)?;
        let tags = candle_nn::ops::sigmoid(&logits)?;
        Ok(PatchOutputs { penultimate, tags })
    }
}

fn tensor_error(name: &str, detail: &str) -> CheckpointError {
    CheckpointError::Tensor {
        name: name.to_string(),
        detail: detail.to_string(),
    }
}

fn candle_error(name: &str, e: candle_core::Error) -> CheckpointError {
    tensor_error(name, &e.to_string())
}
