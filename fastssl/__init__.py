"""fastssl: video-order self-supervision (Suzuki et al.) for 3D CNNs.

Dependencies point one way: cli -> train -> {data, pretext, kernels, models}.
"""
__version__ = "0.1.0"
