"""Reference fixtures for audiorec's audio front end and MusiCNN port, made with the original code.

Environment (outside the repository):
    python3 -m venv /work/venv-audio
    /work/venv-audio/bin/pip install tensorflow-cpu==2.15.1 "numpy<2" librosa soundfile
    /work/venv-audio/bin/pip install --no-deps musicnn==0.1.0
Needs Debian's `wesnoth-1.16-music` (GPL-2+) for the real music, and `flac`, `lame`,
`oggenc` (vorbis-tools) for the encoded decoder fixtures.

    /work/venv-audio/bin/python scripts/musicnn_fixtures.py [OUT_DIR]

Writes into tests/fixtures/audio/ (or OUT_DIR):
    wesnoth_battle_16k.wav   10 s excerpt of Wesnoth's battle.ogg, mono 16 kHz PCM16 (MusiCNN input)
    wesnoth_battle_22k.wav   4 s of the same excerpt, mono 22,050 Hz PCM16 (MFCC input)
    musicnn_patch0_logmel.npy   [187, 96] log-mel of the first patch as musicnn batches it
    musicnn_penultimate.npy     [patches, 200] penultimate (bn_dense) per patch (see session_outputs)
    musicnn_tags.npy            [patches, 50] sigmoid tag probabilities per patch
    musicnn_checkpoint_summary.json  shape, sum, first values of each model variable (TF reader)
    tone_mel_power.npy          [96, frames] librosa melspectrogram of a synthetic tone (power)
    tone_logmel.npy             [frames, 96] the same through musicnn's float16 + log10(10000 x + 1)
    mfcc_frames.npy             [13, frames] librosa.feature.mfcc(n_mfcc=13) of the 22 kHz clip
    mfcc_track.npy              [104] mean (13) + upper triangle of the ddof-1 covariance (91)
    tone_stereo.{wav,flac,mp3,ogg}  0.5 s stereo tone (440 Hz left, 660 Hz right, 44.1 kHz)
"""

import json
import os
import subprocess
import sys

import librosa
import numpy as np
import soundfile as sf
import tensorflow as tf

import musicnn
from musicnn import configuration as config
from musicnn import extractor as mx
from musicnn import models

SOURCE = "/usr/share/games/wesnoth/1.16/data/core/music/battle.ogg"
OFFSET_S = 30.0
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "audio")


def save(name, array):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(array, dtype=np.float32))


def write_clip(name, sr, duration):
    y, _ = librosa.load(SOURCE, sr=sr, offset=OFFSET_S, duration=duration)
    path = os.path.join(OUT, name)
    sf.write(path, y, sr, subtype="PCM_16")
    return path


def checked_extractor(wav):
    """Runs the original extractor and fails loudly unless the trained weights were restored.

    `extractor()` wraps `saver.restore` in a bare `except:` and goes on with random weights,
    so the restore is wrapped here to record that it really returned.
    """
    restored = []
    original_restore = tf.compat.v1.train.Saver.restore

    def checked_restore(self, sess, save_path):
        out = original_restore(self, sess, save_path)
        restored.append(save_path)
        return out

    tf.compat.v1.train.Saver.restore = checked_restore
    try:
        taggram, labels, features = mx.extractor(wav, model="MSD_musicnn", input_length=3,
                                                 input_overlap=False, extract_features=True)
    finally:
        tf.compat.v1.train.Saver.restore = original_restore
    assert restored, "MSD_musicnn weights were NOT restored (extractor ran on random weights)"
    assert labels == config.MSD_LABELS
    return taggram, features


def session_outputs(batch):
    """Penultimate features and tags of every patch, from a graph built and restored exactly
    as extractor() builds it.

    extractor() cannot give per-patch features: after the first batch it appends the first
    batch's `penultimate` (and cnn1-3) again, because its loop unpacks the new values into
    other names (`backend_`, `midend1_`...). Its tags are right.
    """
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, batch.shape[1], config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        out = models.define_model(x, is_training, "MSD_musicnn", 50)
        tags = tf.nn.sigmoid(out[0])
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().restore(sess, os.path.dirname(musicnn.__file__) + "/MSD_musicnn/")
        # One patch per run, as extractor() feeds them (BATCH_SIZE = 1).
        runs = [sess.run([out[-1], tags], feed_dict={x: batch[i:i + 1], is_training: False})
                for i in range(batch.shape[0])]
    return np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs])


def musicnn_reference(wav):
    taggram, features = checked_extractor(wav)
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE,
                                      hop_length=config.FFT_HOP) + 1
    assert n_frames == 187, n_frames
    batch, _ = mx.batch_data(wav, n_frames, n_frames)
    penultimate, tags = session_outputs(batch)
    assert penultimate.shape == (batch.shape[0], 200), penultimate.shape
    # The same graph and weights: the extractor's (correct) tags and first-patch features agree.
    assert np.abs(tags - taggram).max() < 1e-5
    assert np.abs(penultimate[0] - features["penultimate"][0]).max() < 1e-5
    save("musicnn_patch0_logmel.npy", batch[0])
    save("musicnn_penultimate.npy", penultimate)
    save("musicnn_tags.npy", taggram)
    mean = taggram.mean(axis=0)
    top = np.argsort(-mean)[:5]
    print("patches", batch.shape[0], "top tags", [(config.MSD_LABELS[i], round(float(mean[i]), 3)) for i in top])


def checkpoint_summary():
    """Shape, sum and first values of every model variable, read with TensorFlow's reader."""
    prefix = os.path.join(os.path.dirname(musicnn.__file__), "MSD_musicnn") + "/"
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    shapes = reader.get_variable_to_shape_map()
    summary = {}
    for name in sorted(shapes):
        if "Adam" in name or name.endswith("_power"):
            continue
        value = reader.get_tensor(name).astype(np.float64)
        summary[name] = {"shape": list(shapes[name]), "sum": float(value.sum()),
                         "first": [float(v) for v in value.ravel()[:3]]}
    with open(os.path.join(OUT, "musicnn_checkpoint_summary.json"), "w") as f:
        json.dump({"tensors": len(shapes), "variables": summary}, f, indent=1, sort_keys=True)


def tone_mel():
    sr = config.SR
    t = np.arange(sr, dtype=np.float64) / sr
    y = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.25 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, hop_length=config.FFT_HOP,
                                         n_fft=config.FFT_SIZE, n_mels=config.N_MELS)
    save("tone_mel_power.npy", mel)
    save("tone_logmel.npy", np.log10(10000 * mel.T.astype(np.float16) + 1))


def mfcc_reference(wav):
    y, sr = librosa.load(wav, sr=22050)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
    mean = mfcc.mean(axis=1)
    cov = np.cov(mfcc, ddof=1)
    upper = cov[np.triu_indices(13)]
    save("mfcc_frames.npy", mfcc)
    save("mfcc_track.npy", np.concatenate([mean, upper]))


def encoded_tones():
    sr = 44100
    t = np.arange(sr // 2, dtype=np.float64) / sr
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)], axis=1)
    wav = os.path.join(OUT, "tone_stereo.wav")
    sf.write(wav, stereo, sr, subtype="PCM_16")
    stem = os.path.join(OUT, "tone_stereo")
    subprocess.run(["flac", "--silent", "--force", "-o", stem + ".flac", wav], check=True)
    subprocess.run(["lame", "--quiet", "-b", "64", wav, stem + ".mp3"], check=True)
    subprocess.run(["oggenc", "--quiet", "--serial", "1", "-q", "0", "-o", stem + ".ogg", wav], check=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    print("musicnn", musicnn.__file__, "librosa", librosa.__version__, "numpy", np.__version__,
          "tensorflow", tf.__version__)
    wav16 = write_clip("wesnoth_battle_16k.wav", 16000, 10.0)
    wav22 = write_clip("wesnoth_battle_22k.wav", 22050, 4.0)
    musicnn_reference(wav16)
    checkpoint_summary()
    tone_mel()
    mfcc_reference(wav22)
    encoded_tones()


if __name__ == "__main__":
    main()
