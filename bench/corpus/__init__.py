"""The development corpus: real recordings from public repositories, split by source.

The audio never enters this repository. ``manifest.csv`` names every clip (repository, commit,
path, sha256, licence, category, recording and recorder) and which half it belongs to;
:mod:`bench.corpus.build` rebuilds the audio from local copies of those repositories into the
folder named by ``SOUNDALERT_CORPUS``; :mod:`bench.corpus.windows` caches each model's (YAMNet's,
mn04's) per-window scores for each clip, so fitting and benchmarks do not run a model twice.
"""
