"""The model registry: architecture name → builder (unknown names fail with the list).

    vgg16        VGG16 as in the paper (13 conv + FC 4096-4096-K, dropout)
    vgg16_bn     the same with batch normalization (trains from scratch with SGD)
    alexnet      AlexNet (5 conv + 3 FC)
    alexnet_bn   the same with batch normalization

Every builder takes ``num_classes``, ``input_size`` (32 px and up), ``width`` (a multiplier of every
layer's size, for small-scale runs) and ``dropout``; models take float32 RGB pixels in 0..255 and
end in a softmax. ``architecture_word`` gives the paper's name for run names (VGG, Alex).
"""

import importlib

from copycat_tf.errors import CopycatError

# name -> (module, builder, options): the builders (and Keras) load on first use, so a binary can check
# --model against this table without starting TensorFlow.
MODELS = {
    "vgg16": ("copycat_tf.models.vgg", "build_vgg16", {"batch_norm": False}),
    "vgg16_bn": ("copycat_tf.models.vgg", "build_vgg16", {"batch_norm": True}),
    "alexnet": ("copycat_tf.models.alexnet", "build_alexnet", {"batch_norm": False}),
    "alexnet_bn": ("copycat_tf.models.alexnet", "build_alexnet", {"batch_norm": True}),
}
ARCHITECTURE_WORDS = {"vgg16": "VGG", "vgg16_bn": "VGG", "alexnet": "Alex", "alexnet_bn": "Alex"}


def build_model(name: str, num_classes: int, input_size: int, width: float = 1.0, dropout: float = 0.5):
    """A fresh ``keras.Model`` of the named architecture."""
    if name not in MODELS:
        raise CopycatError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    if not 0 < width <= 4:
        raise CopycatError(f"--width={width} must be in (0, 4]")
    module, builder, options = MODELS[name]
    build = getattr(importlib.import_module(module), builder)
    return build(num_classes=num_classes, input_size=input_size, width=width, dropout=dropout, name=name, **options)


def load_imagenet_convolutions(*args, **kwargs):
    from copycat_tf.models.vgg import load_imagenet_convolutions as load

    return load(*args, **kwargs)


def architecture_word(name: str) -> str:
    return ARCHITECTURE_WORDS.get(name, name)


__all__ = ["MODELS", "architecture_word", "build_model", "load_imagenet_convolutions"]
