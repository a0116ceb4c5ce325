from fastssl.models.alexnet3d import AlexNet3D, SiameseNet, flat_features
from fastssl.models.build import ARCHS, build_classifier, build_features, build_siamese

__all__ = ["ARCHS", "AlexNet3D", "SiameseNet", "flat_features", "build_classifier", "build_features",
           "build_siamese"]
