"""Inference engine: device and precision, backends, colour handling, thermal gain, guided upsampling."""
