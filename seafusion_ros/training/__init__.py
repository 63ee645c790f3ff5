"""Training: losses and the fusion, segmentation and joint adaptive trainers."""
