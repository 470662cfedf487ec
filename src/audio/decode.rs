//! Decoding with symphonia (wav/PCM, flac, mp3, ogg/vorbis), mixed down to mono as
//! `librosa.to_mono` does (the mean of the channels).

use std::io::Cursor;
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use super::AudioError;

/// Mono samples in [-1, 1] at the file's own sample rate.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Decoded {
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Decodes a file; its extension is the format hint.
pub fn decode_file(path: &Path) -> Result<Decoded, AudioError> {
    let file = std::fs::File::open(path).map_err(|source| AudioError::Io {
        path: path.into(),
        source,
    })?;
    let ext = path.extension().and_then(|e| e.to_str());
    decode_source(Box::new(file), ext)
}

/// Decodes audio held in memory (an upload). `hint` is a file extension or `None`; the
/// content decides in the end.
pub fn decode_bytes(bytes: &[u8], hint: Option<&str>) -> Result<Decoded, AudioError> {
    decode_source(Box::new(Cursor::new(bytes.to_vec())), hint)
}

fn decode_source(source: Box<dyn MediaSource>, ext: Option<&str>) -> Result<Decoded, AudioError> {
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let mss = MediaSourceStream::new(source, Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| classify(e, "no known container"))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Unsupported("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported("the track is not audio".into()))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| classify(e, "no decoder for the codec"))?;
    let mut sample_rate = params.sample_rate;
    let mut samples = Vec::new();
    let mut planes: Vec<Vec<f32>> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(classify(e, "demuxing failed")),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder
            .decode(&packet)
            .map_err(|e| classify(e, "decoding failed"))?;
        sample_rate.get_or_insert(buf.spec().rate());
        buf.copy_to_vecs_planar(&mut planes);
        mix_into(&mut samples, &planes);
    }
    let sample_rate = sample_rate.ok_or_else(|| AudioError::Corrupt("no sample rate".into()))?;
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    if let Some(pos) = samples.iter().position(|s| !s.is_finite()) {
        return Err(AudioError::Corrupt(format!("sample {pos} is not finite")));
    }
    Ok(Decoded {
        samples,
        sample_rate,
    })
}

/// Appends the mean of the channel planes.
fn mix_into(out: &mut Vec<f32>, planes: &[Vec<f32>]) {
    match planes {
        [] => {}
        [mono] => out.extend_from_slice(mono),
        _ => {
            let frames = planes[0].len();
            let scale = 1.0 / planes.len() as f32;
            out.extend((0..frames).map(|i| planes.iter().map(|p| p[i]).sum::<f32>() * scale));
        }
    }
}

fn classify(e: SymError, context: &str) -> AudioError {
    match e {
        SymError::Unsupported(what) => AudioError::Unsupported(format!("{context}: {what}")),
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::Corrupt(format!("{context}: truncated stream"))
        }
        other => AudioError::Corrupt(format!("{context}: {other}")),
    }
}
