"""Training: datasets, losses and trainers for the fusion and segmentation networks."""
