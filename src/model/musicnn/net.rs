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
//! statistics. Convolutions run as candle `conv1d`: a 2-D kernel that spans 7 frames is a
//! 1-D convolution along frequency whose 7 input channels are the 7 shifted frames.

use candle_core::{Device, Tensor};

use super::checkpoint::TensorBundle;
use super::error::CheckpointError;

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

impl BatchNorm {
    fn load(ckpt: &TensorBundle, name: &str, dev: &Device) -> Result<Self, CheckpointError> {
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

/// One front-end branch: convolution, ReLU, batch norm, max over frequency.
struct Branch {
    conv: Layer,
    bn: BatchNorm,
    /// 1 where the batch norm's scale is non-negative, else 0.
    non_negative: Tensor,
}

impl Branch {
    fn new(conv: Layer, bn: BatchNorm) -> candle_core::Result<Self> {
        let non_negative = bn.scale.ge(0f32)?.to_dtype(bn.scale.dtype())?;
        Ok(Self {
            conv,
            bn,
            non_negative,
        })
    }

    /// `max over pool_dim of BN(ReLU(y + bias))` for a convolution output `y` whose channels
    /// are dimension 1 once `pool_dim` is gone, computed on the pooled values: bias and ReLU
    /// are monotone per channel, so they commute with the maximum, and so does the batch
    /// norm where its scale is non-negative; where it is negative the maximum of the output
    /// comes from the minimum of the input. This keeps the element-wise work off the large
    /// pre-pooling tensor.
    fn pool(&self, y: &Tensor, pool_dim: usize) -> candle_core::Result<Tensor> {
        let (hi, lo) = (y.max(pool_dim)?, y.min(pool_dim)?);
        let mut shape = vec![1; hi.rank()];
        shape[1] = self.non_negative.dim(0)?;
        let keep = self.non_negative.reshape(shape.as_slice())?;
        let picked = (hi.broadcast_mul(&keep)? + lo.broadcast_mul(&(1.0 - &keep)?)?)?;
        self.bn.forward(&self.conv.bias_relu(&picked, 1)?, 1)
    }
}

/// The whole network.
pub struct MusicnnNet {
    input_bn: BatchNorm,
    timbral: [Branch; 2],
    temporal: [Branch; 3],
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
        let bn = |i: usize| {
            let name = if i == 0 {
                "batch_normalization".to_string()
            } else {
                format!("batch_normalization_{i}")
            };
            BatchNorm::load(ckpt, &name, dev)
        };
        let conv = |i: usize| {
            if i == 0 {
                "conv2d".to_string()
            } else {
                format!("conv2d_{i}")
            }
        };
        // TF [7, w, 1, 204] -> conv1d [204, 7 shifted frames, w frequency taps].
        let timbral = |i: usize, w: usize| -> Result<Branch, CheckpointError> {
            let layer = Layer::load(
                ckpt,
                &conv(i),
                &[7, w, 1, 204],
                &[7, w, 204],
                &[2, 0, 1],
                dev,
            )?;
            Branch::new(layer, bn(i + 1)?).map_err(|e| candle_error(&conv(i), e))
        };
        // TF [k, 1, 1, 51] -> conv1d [51, 1, k] along time.
        let temporal = |i: usize, k: usize| -> Result<Branch, CheckpointError> {
            let layer = Layer::load(ckpt, &conv(i), &[k, 1, 1, 51], &[1, k, 51], &[2, 0, 1], dev)?;
            Branch::new(layer, bn(i + 1)?).map_err(|e| candle_error(&conv(i), e))
        };
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

        // Timbral: the 7 time shifts of every frame become channels of a conv along frequency.
        let padded = x.pad_with_zeros(1, PAD_7, PAD_7)?;
        let shifts: Vec<Tensor> = (0..7)
            .map(|dt| padded.narrow(1, dt, t))
            .collect::<candle_core::Result<_>>()?;
        let rows = Tensor::stack(&shifts, 2)?.reshape((b * t, 7, f))?;
        let mut front = Vec::with_capacity(5);
        for branch in &self.timbral {
            let y = branch.pool(&branch.conv.conv(&rows, 0, 0)?, 2)?;
            front.push(y.reshape((b, t, ()))?.transpose(1, 2)?);
        }

        // Temporal: every mel band is a 1-channel signal over time.
        let bands = x.transpose(1, 2)?.contiguous()?.reshape((b * f, 1, t))?;
        for branch in &self.temporal {
            let k = branch.conv.weight.dim(2)?;
            // TensorFlow's 'same' puts the odd extra zero after the signal.
            let y = branch.conv.conv(&bands, (k - 1) / 2, k / 2)?;
            front.push(branch.pool(&y.reshape((b, f, (), t))?, 1)?);
        }
        let front = Tensor::cat(&front, 1)?.contiguous()?;

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
