//! The front end's branches as one matrix product each, pooled in place.
//!
//! Every branch is a convolution along one axis whose output is reduced by a maximum
//! over the other (frequency). Run as candle `conv1d`s, they cost an im2col, a transposed
//! copy of a 9 MB output, and strided max/min reductions per patch; profiled on one core
//! that was half of MusiCNN's time, the products themselves a third. Here the windows of
//! a patch are laid out once, row-major, in the order the pooling reads them (`position`
//! major, `pooled` minor), multiplied by the TensorFlow kernel `[taps, filters]` as it is
//! stored, and every position's `pooled` rows are folded into the branch's output as
//! they are read: `BN(ReLU(max + bias))`, taking the minimum instead where the batch
//! norm's scale is negative (bias and ReLU are monotone, so they commute with the
//! extreme; a negative scale flips it).

use candle_core::{Device, Tensor};

use super::checkpoint::TensorBundle;
use super::error::CheckpointError;

/// One branch: kernel, bias, and the folded batch norm that follows its ReLU.
pub struct ConvPool {
    /// `[taps, filters]`, TensorFlow's kernel layout flattened.
    kernel: Tensor,
    filters: usize,
    bias: Vec<f32>,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl ConvPool {
    /// Loads `conv/kernel` (TensorFlow shape `tf_shape`, filters last) and `conv/bias`,
    /// with the batch norm `bn` folded to `(scale, shift)`.
    pub fn load(
        ckpt: &TensorBundle,
        conv: &str,
        tf_shape: &[usize],
        (scale, shift): (Vec<f32>, Vec<f32>),
        dev: &Device,
    ) -> Result<Self, CheckpointError> {
        let (shape, kernel) = ckpt.f32_tensor(&format!("{conv}/kernel"))?;
        let bad = |detail: String| CheckpointError::Tensor {
            name: conv.to_string(),
            detail,
        };
        if shape != tf_shape {
            return Err(bad(format!(
                "kernel shape {shape:?}, expected {tf_shape:?}"
            )));
        }
        let (_, bias) = ckpt.f32_tensor(&format!("{conv}/bias"))?;
        let filters = tf_shape[tf_shape.len() - 1];
        if [bias.len(), scale.len(), shift.len()] != [filters; 3] {
            return Err(bad(format!("bias or batch norm not of {filters} values")));
        }
        let taps = kernel.len() / filters;
        let kernel =
            Tensor::from_vec(kernel, (taps, filters), dev).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            kernel,
            filters,
            bias,
            scale,
            shift,
        })
    }

    pub fn taps(&self) -> usize {
        self.kernel.dims()[0]
    }

    pub fn filters(&self) -> usize {
        self.filters
    }

    /// `windows` holds `positions × pooled` rows of [`ConvPool::taps`] values, each
    /// position's `pooled` rows together; returns `[positions, filters]`, row-major.
    pub fn apply(
        &self,
        windows: Vec<f32>,
        positions: usize,
        pooled: usize,
    ) -> candle_core::Result<Vec<f32>> {
        let dev = self.kernel.device();
        let x = Tensor::from_vec(windows, (positions * pooled, self.taps()), dev)?;
        let y = x.matmul(&self.kernel)?.flatten_all()?.to_vec1::<f32>()?;
        let f = self.filters;
        let mut out = vec![0f32; positions * f];
        for (position, rows) in y.chunks_exact(pooled * f).enumerate() {
            let mut hi = rows[..f].to_vec();
            let mut lo = hi.clone();
            for row in rows.chunks_exact(f).skip(1) {
                for ((h, l), &v) in hi.iter_mut().zip(&mut lo).zip(row) {
                    *h = h.max(v);
                    *l = l.min(v);
                }
            }
            let dst = &mut out[position * f..(position + 1) * f];
            for (o, d) in dst.iter_mut().enumerate() {
                let extreme = if self.scale[o] >= 0.0 { hi[o] } else { lo[o] };
                *d = (extreme + self.bias[o]).max(0.0) * self.scale[o] + self.shift[o];
            }
        }
        Ok(out)
    }
}

/// The timbral windows of one patch `[frames, mels]` (time padded by `pad` zero frames
/// on both sides, the kernel `height` frames by `width` mel bands, 'valid' in frequency):
/// row `(frame, band)` holds the `height × width` values the kernel meets there, frame
/// by frame. Returns the windows and the number of bands per frame.
pub fn timbral_windows(
    patch: &[f32],
    mels: usize,
    height: usize,
    width: usize,
    pad: usize,
) -> (Vec<f32>, usize) {
    let frames = patch.len() / mels;
    let bands = mels - width + 1;
    let mut out = vec![0f32; frames * bands * height * width];
    for (row, window) in out.chunks_exact_mut(height * width).enumerate() {
        let (frame, band) = (row / bands, row % bands);
        for (dt, taps) in window.chunks_exact_mut(width).enumerate() {
            // Frame `frame + dt` of the padded patch: absent (zero) outside the patch.
            let Some(src) = (frame + dt).checked_sub(pad).filter(|&s| s < frames) else {
                continue;
            };
            taps.copy_from_slice(&patch[src * mels + band..src * mels + band + width]);
        }
    }
    (out, bands)
}

/// The temporal windows of one patch `[frames, mels]` for a kernel of `taps` frames with
/// TensorFlow's 'same' padding (`(taps - 1) / 2` zeros before, the rest after): row
/// `(frame, band)` holds band `band`'s values from `frame - (taps - 1) / 2` on.
pub fn temporal_windows(patch: &[f32], mels: usize, taps: usize) -> Vec<f32> {
    let frames = patch.len() / mels;
    let before = (taps - 1) / 2;
    let mut out = vec![0f32; frames * mels * taps];
    for (row, window) in out.chunks_exact_mut(taps).enumerate() {
        let (frame, band) = (row / mels, row % mels);
        for (j, v) in window.iter_mut().enumerate() {
            if let Some(src) = (frame + j).checked_sub(before).filter(|&s| s < frames) {
                *v = patch[src * mels + band];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows against the convolution's definition on a small patch: every value is the
    /// patch's where the kernel covers it and zero in the padding.
    #[test]
    fn windows_read_the_patch_where_the_kernel_lies() {
        let (frames, mels) = (5, 6);
        let patch: Vec<f32> = (0..frames * mels).map(|i| i as f32 + 1.0).collect();
        let at = |t: isize, f: usize| {
            if (0..frames as isize).contains(&t) {
                patch[t as usize * mels + f]
            } else {
                0.0
            }
        };
        let (w, bands) = timbral_windows(&patch, mels, 3, 2, 1);
        assert_eq!(bands, 5);
        for frame in 0..frames {
            for band in 0..bands {
                for dt in 0..3 {
                    for k in 0..2 {
                        let got = w[((frame * bands + band) * 3 + dt) * 2 + k];
                        assert_eq!(got, at(frame as isize + dt as isize - 1, band + k));
                    }
                }
            }
        }
        let taps = 4; // one zero before, two after
        let w = temporal_windows(&patch, mels, taps);
        for frame in 0..frames {
            for band in 0..mels {
                for j in 0..taps {
                    let got = w[(frame * mels + band) * taps + j];
                    assert_eq!(got, at(frame as isize + j as isize - 1, band));
                }
            }
        }
    }
}
