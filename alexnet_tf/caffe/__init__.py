"""Caffe's AlexNet: reading Caffe's files, checking the net, mapping its weights onto the two towers."""
