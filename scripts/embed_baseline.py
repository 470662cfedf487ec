"""Baseline for benches/embed.rs: the original musicnn extractor and librosa's MFCC on one file.

    python scripts/embed_baseline.py AUDIO_16K AUDIO_22K REPEATS

Prints one JSON line: seconds of audio embedded per second of wall time for each, single
process. `extractor()` builds the TensorFlow graph and restores the weights on every call,
as a caller of the original API pays; `musicnn_warm_session` times only the spectrogram and
the forward passes in an already loaded session (the fair per-track cost).
"""

import json
import os
import sys
import time

import librosa
import numpy as np
import tensorflow as tf

from musicnn import configuration as config
from musicnn import extractor as mx
from musicnn import models


def musicnn_extractor(path, repeats):
    mx.extractor(path, model="MSD_musicnn", extract_features=True)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        mx.extractor(path, model="MSD_musicnn", extract_features=True)
    return time.perf_counter() - start


def musicnn_warm_session(path, repeats):
    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, 187, config.N_MELS])
    out = models.define_model(x, False, "MSD_musicnn", 50)
    penultimate = out[-1]
    sess = tf.compat.v1.Session()
    saver = tf.compat.v1.train.Saver()
    saver.restore(sess, os.path.join(os.path.dirname(mx.__file__), "MSD_musicnn") + "/")
    batch, _ = mx.batch_data(path, 187, 187)
    sess.run(penultimate, feed_dict={x: batch})  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        batch, _ = mx.batch_data(path, 187, 187)
        sess.run(penultimate, feed_dict={x: batch}).mean(axis=0)
    elapsed = time.perf_counter() - start
    sess.close()
    return elapsed


def mfcc(path, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        y, sr = librosa.load(path, sr=22050)
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
        np.concatenate([m.mean(axis=1), np.cov(m, ddof=1)[np.triu_indices(13)]])
    return time.perf_counter() - start


def main():
    path16, path22, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    audio16 = librosa.get_duration(path=path16) * repeats
    audio22 = librosa.get_duration(path=path22) * repeats
    result = {
        "musicnn_extractor": audio16 / musicnn_extractor(path16, repeats),
        "musicnn_warm_session": audio16 / musicnn_warm_session(path16, repeats),
        "mfcc_librosa": audio22 / mfcc(path22, repeats),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
