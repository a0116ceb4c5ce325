"""Procedural *action* videos in UCF101's layout: classes are motion patterns, not looks.

    motions.py   what the object does over a clip (Track), the MOTIONS registry: time-symmetric
                 and time-asymmetric motions, so PB is learnable for some classes only
    render.py    random looks (sprites, backgrounds), scenes, `render_video`
    writer.py    `make_synthetic_dataset`: the class plan, argument checks, the output folder

The same seed gives the same frames (every random choice of video i of class k comes from
`video_rng(seed, k, i)`), so a video does not change when other classes or videos are added.
"""
from fastssl.data.synth.motions import MOTIONS, Box, Motion, Track
from fastssl.data.synth.render import Scene, Sprite, make_scene, render_video, video_rng
from fastssl.data.synth.writer import REGIME_SUFFIXES, class_plan, is_test_group, make_synthetic_dataset

__all__ = ["MOTIONS", "Motion", "Track", "Box", "Scene", "Sprite", "make_scene", "render_video",
           "video_rng", "REGIME_SUFFIXES", "class_plan", "is_test_group", "make_synthetic_dataset"]
