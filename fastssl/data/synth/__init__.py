"""Procedural *action* videos in UCF101's layout: classes are motion patterns, not looks.

    motions.py   what the object does over a clip (Track), the MOTIONS registry: time-symmetric
                 and time-asymmetric motions, so PB is learnable for some classes only; and
                 CONTROL_MOTIONS (`static`), never in a default class list
    render.py    random looks (sprites, backgrounds), scenes, `render_video`
    writer.py    `make_synthetic_dataset`: the class plan, argument checks, the output folder,
                 the split choice and the rate control (crf, or cqp: no first-GOP quality step)

The same seed gives the same frames (every random choice of video i of class k comes from
`video_rng(seed, k, i)`), so a video does not change when other classes or videos are added.
"""
from fastssl.data.synth.motions import CONTROL_MOTIONS, MOTIONS, Box, Motion, Track, get_motion
from fastssl.data.synth.render import Scene, Sprite, make_scene, render_video, video_rng
from fastssl.data.synth.writer import (RATE_CONTROLS, REGIME_SUFFIXES, class_plan, is_test_group,
                                       make_synthetic_dataset, write_video_cqp)

__all__ = ["MOTIONS", "CONTROL_MOTIONS", "get_motion", "Motion", "Track", "Box", "Scene", "Sprite",
           "make_scene", "render_video", "video_rng", "REGIME_SUFFIXES", "RATE_CONTROLS", "class_plan",
           "is_test_group", "make_synthetic_dataset", "write_video_cqp"]
