"""PASCAL VOC transfer: classification, detection and segmentation (issue 7)."""
