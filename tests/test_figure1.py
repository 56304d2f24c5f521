"""Tests for the Figure 1 study (alexnet_tf.studies.figure1) and the per-unit bias init it relies on."""

import numpy as np
import pytest

from alexnet_tf.models.alexnet import build_alexnet

TINY = dict(num_classes=5, width=0.125, fc_width=32, input_size=67)

# -- the bias init per unit type -------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation, expected_in_bias_one_layers", [("relu", 1.0), ("tanh", 0.0)])
def test_biases_start_at_1_for_relus_and_at_0_for_tanh(activation, expected_in_bias_one_layers):
    model = build_alexnet(**TINY, activation=activation)
    seen = set()
    for layer in model.layers:
        if getattr(layer, "bias", None) is None:
            continue
        stem = layer.name.split("_")[0]
        # Section 5: conv2, conv4, conv5, fc6 and fc7 start at 1 (for ReLUs); conv1, conv3 and fc8 always at 0.
        expected = expected_in_bias_one_layers if stem in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        np.testing.assert_array_equal(layer.bias.numpy(), expected, err_msg=layer.name)
        seen.add(stem)
    assert seen == {"conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"}
