from fastssl.models.alexnet3d import AlexNet3D, SiameseNet, flat_features
from fastssl.models.build import build_classifier, build_siamese

__all__ = ["AlexNet3D", "SiameseNet", "flat_features", "build_classifier", "build_siamese"]
