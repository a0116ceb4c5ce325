"""The paper's figures (Suzuki et al., Table 2: UCF101 split 1, 3D-AlexNet, clip / video accuracy
in %, and the pretext accuracy of each mode). `None` where the paper gives no figure."""

PAPER = {
    "scratch": {"pretext": None, "clip": 40.98, "video": 45.21},
    "inflated": {"pretext": None, "clip": 55.12, "video": 60.13},
    "rp": {"pretext": 99.21, "clip": 44.96, "video": 49.20},
    "ss": {"pretext": 98.00, "clip": 44.75, "video": 49.07},
    "pb": {"pretext": 17.65, "clip": 40.01, "video": 44.97},
}
