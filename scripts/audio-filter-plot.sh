#!/bin/sh
# Draws the resampler's measured response, docs/audio-filter.png (shown in
# docs/audio.md), with the standard library alone: the test measures the
# gain of a sine at each frequency and plots it beside soxr's
# (internal/audio/testdata/soxr-response.txt, made by testdata/soxr.sh).
set -eu
cd "$(dirname "$0")/.."
go test -count=1 -run '^TestFilterPlot$' ./internal/audio/ -args -plot "$PWD/docs/audio-filter.png"
