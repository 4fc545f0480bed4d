"""Layer-wise Relevance Propagation for the project's VGG and AlexNet Keras models.

The explained quantity is the chosen class's logit (the input of the final softmax). Relevance flows
back layer by layer; at each convolution or dense layer a rule decides how a neuron's relevance is
shared among its inputs, computed with the usual gradient trick (z = forward pass with the rule's
weights, s = R / z, c = dz/da · s, R_in = a · c):

  LRP-0   the plain rule (conservative: with zero biases, input relevance sums to the logit)
  LRP-ε   z stabilized by ε · rms(z): noise from weak, contradictory evidence is absorbed
  LRP-γ   positive weights favoured (w + γ·w⁺): steadier maps in the lower layers
  z^B     for the input layer: relevance bounded by the pixel range (here -1..1, after rescaling)

Rule presets: ``lrp0``, ``epsilon``, ``gamma`` (the rule everywhere), ``zb`` (z^B at the input, LRP-0
elsewhere) and ``composite`` (z^B at the input, LRP-γ in the lower half of the convolutions, LRP-ε in
the upper half, LRP-0 at the dense layers). Batch normalization is folded into the layer before it,
dropout is the identity at inference, max-pooling passes relevance to the winning input, flatten
reshapes, and the model's input rescaling is elementwise (relevance of a rescaled pixel is the
pixel's).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from copycat_tf.errors import CopycatError

RULES = ("lrp0", "epsilon", "gamma", "zb", "composite")
INPUT_RANGE = (-1.0, 1.0)  # the models rescale 0..255 pixels to -1..1


@dataclasses.dataclass
class _Linear:
    kind: str  # "conv" or "dense"
    kernel: tf.Tensor
    bias: tf.Tensor
    strides: tuple = (1, 1)
    padding: str = "SAME"

    def forward(self, a, kernel=None, bias=None):
        kernel = self.kernel if kernel is None else kernel
        bias = self.bias if bias is None else bias
        if self.kind == "conv":
            return tf.nn.conv2d(a, kernel, self.strides, self.padding) + bias
        return tf.matmul(a, kernel) + bias


@dataclasses.dataclass
class _Pool:
    size: tuple
    strides: tuple
    padding: str

    def forward(self, a):
        return tf.nn.max_pool2d(a, self.size, self.strides, self.padding)


class _Flatten:
    def forward(self, a):
        return tf.reshape(a, (tf.shape(a)[0], -1))


def _plan(model: keras.Model) -> list:
    """The model as a chain of linear layers (BN folded), ReLUs, pools and reshapes."""
    steps = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout, keras.layers.Rescaling)):
            continue
        if isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel.numpy()
            bias = layer.bias.numpy() if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
            steps.append(_Linear("conv", kernel, bias, tuple(layer.strides), layer.padding.upper()))
            if layer.activation is keras.activations.relu:
                steps.append("relu")
        elif isinstance(layer, keras.layers.Dense):
            kernel = layer.kernel.numpy()
            bias = layer.bias.numpy() if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
            steps.append(_Linear("dense", kernel, bias))
            if layer.activation is keras.activations.relu:
                steps.append("relu")
        elif isinstance(layer, keras.layers.BatchNormalization):
            previous = steps[-1]
            if not isinstance(previous, _Linear):
                raise CopycatError(f"LRP: batch normalization {layer.name} must follow a convolution or dense layer")
            gamma = layer.gamma.numpy() if layer.scale else 1.0
            beta = layer.beta.numpy() if layer.center else 0.0
            scale = gamma / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
            previous.kernel = previous.kernel * scale
            previous.bias = (previous.bias - layer.moving_mean.numpy()) * scale + beta
        elif isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.relu:
            steps.append("relu")
        elif isinstance(layer, keras.layers.MaxPooling2D):
            steps.append(_Pool(tuple(layer.pool_size), tuple(layer.strides), layer.padding.upper()))
        elif isinstance(layer, keras.layers.Flatten):
            steps.append(_Flatten())
        else:
            raise CopycatError(f"LRP does not know layer {layer.name} ({type(layer).__name__}); "
                               "it explains the project's VGG and AlexNet models")
    last = steps[-1]
    if not isinstance(last, _Linear) or last.kind != "dense":
        raise CopycatError("LRP: the model must end in a dense (softmax) layer")
    for step in steps:
        if isinstance(step, _Linear):
            step.kernel = tf.constant(step.kernel, tf.float32)
            step.bias = tf.constant(step.bias, tf.float32)
    return steps


def _rules_for(steps: list, preset: str) -> list:
    linear = [i for i, s in enumerate(steps) if isinstance(s, _Linear)]
    convs = [i for i in linear if steps[i].kind == "conv"]
    rules = {}
    for i in linear:
        if preset in ("lrp0", "epsilon", "gamma"):
            rules[i] = preset
        elif preset == "zb":
            rules[i] = "lrp0"
        else:  # composite
            if steps[i].kind == "dense":
                rules[i] = "lrp0"
            else:
                rules[i] = "gamma" if convs.index(i) < len(convs) / 2 else "epsilon"
    if preset in ("zb", "composite"):
        rules[linear[0]] = "zb"
    return rules


def _stabilize(z, epsilon):
    return z + epsilon * tf.where(z >= 0, 1.0, -1.0)


def _linear_relevance(step: _Linear, a, relevance, rule: str, epsilon: float, gamma: float):
    if rule == "zb":
        low, high = (tf.fill(tf.shape(a), v) for v in INPUT_RANGE)
        positive, negative = tf.maximum(step.kernel, 0.0), tf.minimum(step.kernel, 0.0)
        zero = tf.zeros_like(step.bias)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([a, low, high])
            z = step.forward(a, bias=zero) - step.forward(low, positive, zero) - step.forward(high, negative, zero)
            s = tf.stop_gradient(relevance / _stabilize(z, 1e-9))
            total = tf.reduce_sum(z * s)
        c_a, c_low, c_high = tape.gradient(total, [a, low, high])
        return a * c_a + low * c_low + high * c_high
    kernel, bias = step.kernel, step.bias
    if rule == "gamma":
        kernel, bias = kernel + gamma * tf.maximum(kernel, 0.0), bias + gamma * tf.maximum(bias, 0.0)
    with tf.GradientTape() as tape:
        tape.watch(a)
        z = step.forward(a, kernel, bias)
        scale = epsilon * tf.sqrt(tf.reduce_mean(tf.square(z))) if rule == "epsilon" else 1e-9
        s = tf.stop_gradient(relevance / _stabilize(z, scale))
        total = tf.reduce_sum(z * s)
    return a * tape.gradient(total, a)


def lrp(model: keras.Model, images: np.ndarray, class_ids=None, rule: str = "composite",
        epsilon: float = 0.25, gamma: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Relevance of every input value ([N, H, W, C]) for each image's class, and the explained logits.

    ``images``: float pixels 0..255, the model's input. ``class_ids``: the classes to explain (default:
    the model's own top-1 class).
    """
    if rule not in RULES:
        raise CopycatError(f"unknown LRP rule {rule!r}; use one of {', '.join(RULES)}")
    steps = _plan(model)
    rules = _rules_for(steps, rule)
    a = tf.constant(np.asarray(images, np.float32) / 127.5 - 1.0)
    inputs = []
    for step in steps:
        inputs.append(a)
        a = tf.nn.relu(a) if step == "relu" else step.forward(a)
    logits = a
    if class_ids is None:
        class_ids = tf.argmax(logits, axis=1)
    mask = tf.one_hot(class_ids, logits.shape[-1])
    relevance = logits * mask
    for index in reversed(range(len(steps))):
        step, a = steps[index], inputs[index]
        if step == "relu":
            continue
        if isinstance(step, _Flatten):
            relevance = tf.reshape(relevance, tf.shape(a))
        elif isinstance(step, _Pool):
            with tf.GradientTape() as tape:
                tape.watch(a)
                z = step.forward(a)
                total = tf.reduce_sum(z * tf.stop_gradient(relevance / _stabilize(z, 1e-9)))
            relevance = a * tape.gradient(total, a)
        else:
            relevance = _linear_relevance(step, a, relevance, rules[index], epsilon, gamma)
    return relevance.numpy(), tf.reduce_sum(logits * mask, axis=1).numpy()


def relevance_map(relevance: np.ndarray) -> np.ndarray:
    """[N, H, W] maps: relevance summed over the colour channels."""
    return np.asarray(relevance).sum(axis=-1)
