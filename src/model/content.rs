//! Content rows from decoded audio: what `audiorec embed` writes and what an upload to
//! the service gets, computed one way for both.

use crate::audio::decode::Decoded;
use crate::audio::mel::MelSpectrogram;
use crate::audio::{AudioError, MUSICNN_SAMPLE_RATE, mfcc, resample};
use crate::model::musicnn::{Musicnn, MusicnnError, TrackEmbedding};

/// What a manifest entry's `extractor` names when a backend's rows were made the way
/// [`musicnn_row`] makes them: only then may a row computed here join that backend.
pub const MUSICNN_EXTRACTOR: &str = "audiorec-musicnn";
/// The same for [`mfcc_row`].
pub const MFCC_EXTRACTOR: &str = "audiorec-mfcc";

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Musicnn(#[from] MusicnnError),
}

/// MusiCNN's outputs for a decoded track (resampled to 16 kHz first).
pub fn musicnn_row(model: &Musicnn, decoded: &Decoded) -> Result<TrackEmbedding, ContentError> {
    let samples = resample::resample(&decoded.samples, decoded.sample_rate, MUSICNN_SAMPLE_RATE)?;
    Ok(model.embed(&samples)?)
}

/// The 104-d MFCC row of a decoded track (resampled to 22,050 Hz first); `mel` is built
/// from [`mfcc::SETTINGS`].
pub fn mfcc_row(mel: &MelSpectrogram, decoded: &Decoded) -> Result<Vec<f32>, ContentError> {
    let samples = resample::resample(&decoded.samples, decoded.sample_rate, mfcc::SAMPLE_RATE)?;
    Ok(mfcc::track_vector(mel, &samples)?.to_vec())
}

/// Both in-process backends, loaded once for a service: an upload is decoded once and
/// embedded by MusiCNN and MFCC side by side.
pub struct AudioEmbedder {
    musicnn: Musicnn,
    mfcc: MelSpectrogram,
    /// The served backend each kind of row joins.
    pub musicnn_backend: String,
    pub mfcc_backend: String,
}

/// An upload's rows by served backend, with what a person can read of it.
pub struct Embedded {
    pub rows: std::collections::BTreeMap<String, Vec<f32>>,
    /// The five most probable MSD tags, best first.
    pub top_tags: Vec<(String, f32)>,
    pub duration_s: f64,
}

impl AudioEmbedder {
    pub fn new(musicnn: Musicnn, musicnn_backend: String, mfcc_backend: String) -> Self {
        Self {
            musicnn,
            mfcc: MelSpectrogram::new(mfcc::SETTINGS),
            musicnn_backend,
            mfcc_backend,
        }
    }

    /// Decodes `bytes` (`hint`: a file extension) and embeds them with both backends.
    pub fn embed(&self, bytes: &[u8], hint: Option<&str>) -> Result<Embedded, ContentError> {
        let decoded = crate::audio::decode_bytes(bytes, hint)?;
        let (musicnn, mfcc) = rayon::join(
            || musicnn_row(&self.musicnn, &decoded),
            || mfcc_row(&self.mfcc, &decoded),
        );
        let musicnn = musicnn?;
        Ok(Embedded {
            top_tags: musicnn.top_tags(5),
            rows: [
                (self.musicnn_backend.clone(), musicnn.penultimate),
                (self.mfcc_backend.clone(), mfcc?),
            ]
            .into(),
            duration_s: decoded.duration_s(),
        })
    }
}
