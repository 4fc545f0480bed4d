"""AlexNet (Krizhevsky et al. 2012): 5 convolutions and 3 fully connected layers.

At 128 px and up the first convolution is the original 11x11 with stride 4; below that (32 px and
up) it is 5x5 with stride 1, and the pools use 'same' padding, so small inputs keep a spatial map.
``width`` scales every layer, ``batch_norm`` adds batch normalization (in place of the original local
response normalization). Inputs are float32 RGB pixels in 0..255.
"""

import keras

from copycat_tf.models.layers import classifier_head, pixel_input

CONVS = ((96, 11, 4, True), (256, 5, 1, True), (384, 3, 1, False), (384, 3, 1, False), (256, 3, 1, True))


def build_alexnet(num_classes: int, input_size: int = 227, width: float = 1.0, batch_norm: bool = False,
                  dropout: float = 0.5, name: str = "alexnet") -> keras.Model:
    inputs, x = pixel_input(input_size, "AlexNet")
    for index, (filters, kernel, stride, pool) in enumerate(CONVS, start=1):
        if index == 1 and input_size < 128:
            kernel, stride = 5, 1
        x = keras.layers.Conv2D(max(1, round(filters * width)), kernel, strides=stride, padding="same",
                                use_bias=not batch_norm, name=f"conv{index}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{index}")(x)
        x = keras.layers.Activation("relu", name=f"relu{index}")(x)
        if pool:
            x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{index}")(x)
    outputs = classifier_head(x, num_classes, width, dropout)
    return keras.Model(inputs, outputs, name=name)
