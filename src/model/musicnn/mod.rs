//! MusiCNN (MSD_musicnn) in candle: the pretrained network the paper found best for
//! recommendation, reading the original TensorFlow checkpoint from the musicnn 0.1.0 wheel.
//!
//! A track is cut into non-overlapping 3-second patches exactly as musicnn's `extractor()`
//! cuts them; its embedding is the mean of the patches' 200-d `penultimate` features, and
//! its tags the mean of the patches' 50 MSD tag probabilities.

pub mod checkpoint;
mod error;
mod frontend;
pub mod labels;
pub mod net;
pub mod setup;
mod sstable;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::audio::mel::{self, MelSpectrogram};
pub use checkpoint::TensorBundle;
pub use error::CheckpointError;
pub use net::{MusicnnNet, N_MELS, N_TAGS, PATCH_FRAMES, PENULTIMATE_DIM, PatchOutputs};

/// Environment variable naming the weights folder.
pub const DIR_ENV: &str = "AUDIOREC_MUSICNN_DIR";
/// Where `audiorec setup musicnn` puts the weights unless told otherwise.
pub const DEFAULT_DIR: &str = "audiorec-data/pretrained/MSD_musicnn";
/// Patches per forward pass: bounds the im2col buffers (~12 MB per patch) of long tracks.
const MAX_BATCH: usize = 8;

/// `$AUDIOREC_MUSICNN_DIR`, else [`DEFAULT_DIR`].
pub fn default_dir() -> PathBuf {
    std::env::var_os(DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

#[derive(Debug, thiserror::Error)]
pub enum MusicnnError {
    #[error(
        "no MusiCNN weights in {dir}: run `audiorec setup musicnn` (downloads the musicnn 0.1.0 \
         wheel with pip and unpacks MSD_musicnn/ there), or point {DIR_ENV} at a folder holding \
         MSD_musicnn's .index and .data-00000-of-00001"
    )]
    WeightsMissing { dir: PathBuf },
    #[error("MusiCNN checkpoint in {dir}: {source}")]
    Checkpoint {
        dir: PathBuf,
        source: CheckpointError,
    },
    #[error("the audio holds no samples")]
    NoAudio,
    #[error("setting up MusiCNN weights: {0}")]
    Setup(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// A track's MusiCNN outputs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrackEmbedding {
    /// Mean over patches of the 200-d `penultimate` features: the paper's MusiCNN row.
    pub penultimate: Vec<f32>,
    /// Mean over patches of each MSD tag's probability, in the model's label order.
    pub tags: Vec<(String, f32)>,
    /// Number of 3-second patches averaged.
    pub patches: usize,
}

impl TrackEmbedding {
    /// The `n` most probable tags, most probable first.
    pub fn top_tags(&self, n: usize) -> Vec<(String, f32)> {
        let mut tags = self.tags.clone();
        tags.sort_by(|a, b| b.1.total_cmp(&a.1));
        tags.truncate(n);
        tags
    }
}

/// The loaded model plus its mel front end.
pub struct Musicnn {
    net: MusicnnNet,
    mel: MelSpectrogram,
    device: Device,
}

impl Musicnn {
    /// Loads the checkpoint from `dir` (the unpacked `MSD_musicnn/` folder).
    pub fn load(dir: &Path, device: &Device) -> Result<Self, MusicnnError> {
        if !dir.join(".index").is_file() {
            return Err(MusicnnError::WeightsMissing { dir: dir.into() });
        }
        let bad = |source| MusicnnError::Checkpoint {
            dir: dir.into(),
            source,
        };
        let bundle = TensorBundle::open(&prefix(dir)).map_err(bad)?;
        let net = MusicnnNet::load(&bundle, device).map_err(bad)?;
        Ok(Self {
            net,
            mel: MelSpectrogram::new(mel::MUSICNN),
            device: device.clone(),
        })
    }

    /// Embeds mono 16 kHz samples.
    pub fn embed(&self, samples_16k: &[f32]) -> Result<TrackEmbedding, MusicnnError> {
        if samples_16k.is_empty() {
            return Err(MusicnnError::NoAudio);
        }
        let log_mel = mel::musicnn_log_mel(&self.mel, samples_16k);
        let patches = patches(&log_mel);
        let n = patches.len() / (PATCH_FRAMES * N_MELS);
        let mut penultimate = vec![0f32; PENULTIMATE_DIM];
        let mut tags = vec![0f32; N_TAGS];
        for chunk in patches.chunks(MAX_BATCH * PATCH_FRAMES * N_MELS) {
            let b = chunk.len() / (PATCH_FRAMES * N_MELS);
            let x = Tensor::from_slice(chunk, (b, PATCH_FRAMES, N_MELS), &self.device)?;
            let out = self.net.forward(&x)?;
            add_rows(&mut penultimate, &out.penultimate)?;
            add_rows(&mut tags, &out.tags)?;
        }
        let scale = 1.0 / n as f32;
        penultimate.iter_mut().for_each(|v| *v *= scale);
        Ok(TrackEmbedding {
            penultimate,
            tags: labels::MSD_LABELS
                .iter()
                .zip(tags)
                .map(|(l, p)| (l.to_string(), p * scale))
                .collect(),
            patches: n,
        })
    }

    /// Runs log-mel patches `[B, 187, 96]` through the network.
    pub fn forward(&self, patches: &Tensor) -> Result<PatchOutputs, MusicnnError> {
        Ok(self.net.forward(patches)?)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// musicnn's checkpoint prefix is the folder itself plus `/`.
pub fn prefix(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push("/");
    PathBuf::from(p)
}

/// Cuts a `[frames, 96]` log-mel into non-overlapping 187-frame patches as musicnn's
/// `batch_data` does (a trailing remainder shorter than a patch is dropped). A track
/// shorter than one patch is repeated to fill it, as musicnn's training did
/// (`pad_short: repeat-pad`); the original `extractor()` fails on such a track.
pub fn patches(log_mel: &[f32]) -> Vec<f32> {
    let frames = log_mel.len() / N_MELS;
    let patch = PATCH_FRAMES * N_MELS;
    if frames >= PATCH_FRAMES {
        let n = (frames - PATCH_FRAMES) / PATCH_FRAMES + 1;
        return log_mel[..n * patch].to_vec();
    }
    log_mel.iter().copied().cycle().take(patch).collect()
}

/// Adds the sum over rows of a `[B, n]` tensor to `acc`.
fn add_rows(acc: &mut [f32], t: &Tensor) -> candle_core::Result<()> {
    for row in t.to_vec2::<f32>()? {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    Ok(())
}
