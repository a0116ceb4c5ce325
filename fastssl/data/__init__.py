"""Datasets (synthetic, UCF101-style index) and loaders (PyAV, DALI).

Every loader honours one contract: uint8 frames in FHWC order plus small integer tensors
(question starts/orders, labels, video ids). Loaders know nothing of training.
"""
