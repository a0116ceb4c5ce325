from fastssl.models.alexnet3d import AlexNet3D, SiameseNet, flat_features

__all__ = ["AlexNet3D", "SiameseNet", "flat_features"]
