"""Segmentation side of SeAFusion: weak labels, losses, data, training and task-driven evaluation.

ROS-free. The network itself lives in ``seafusion_ros.models.segmentation``.
"""
