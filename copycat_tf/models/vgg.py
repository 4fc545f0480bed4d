"""VGG16 as in the paper: 13 convolutions in 5 blocks, then FC 4096-4096-K with dropout.

The network adapts to its input size (32 px and up): the five max-pools shrink the image 32 times,
and the classifier takes whatever the last block leaves. ``width`` scales every layer's size (a
small-scale copy trains on a CPU), ``batch_norm`` adds batch normalization after each convolution
(plain VGG16 from scratch with SGD did not learn in our measurements; the batch-normalized one did).
Inputs are float32 RGB pixels in 0..255; the model rescales them itself.
"""

import keras

from copycat_tf.errors import CopycatError
from copycat_tf.models.layers import classifier_head, pixel_input

BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def build_vgg16(num_classes: int, input_size: int = 224, width: float = 1.0, batch_norm: bool = False,
                dropout: float = 0.5, name: str = "vgg16") -> keras.Model:
    inputs, x = pixel_input(input_size, "VGG16")
    for block, (filters, convs) in enumerate(BLOCKS, start=1):
        for conv in range(1, convs + 1):
            x = keras.layers.Conv2D(max(1, round(filters * width)), 3, padding="same", use_bias=not batch_norm,
                                    name=f"block{block}_conv{conv}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn{conv}")(x)
            x = keras.layers.Activation("relu", name=f"block{block}_relu{conv}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    outputs = classifier_head(x, num_classes, width, dropout)
    return keras.Model(inputs, outputs, name=name)


def load_imagenet_convolutions(model: keras.Model) -> None:
    """Copy Keras' ImageNet VGG16 convolution weights into ``model`` (full width, no batch norm).

    Keras' VGG16 expects caffe-style inputs (BGR, mean-subtracted); the copied filters adapt during
    fine-tuning, as in the paper, which started from ImageNet weights.
    """
    try:
        reference = keras.applications.VGG16(weights="imagenet", include_top=False)
    except Exception as error:
        raise CopycatError(
            f"--init=imagenet needs Keras' VGG16 ImageNet weights, which could not be loaded ({error}); "
            "put vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 in ~/.keras/models/ or train from scratch"
        ) from None
    for layer in reference.layers:
        if layer.name.startswith("block") and "conv" in layer.name:
            target = model.get_layer(layer.name)
            if [w.shape for w in target.weights] != [w.shape for w in layer.weights]:
                raise CopycatError("--init=imagenet needs the full-width VGG16 without batch norm (--model=vgg16)")
            target.set_weights(layer.get_weights())
