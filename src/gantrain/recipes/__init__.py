"""One module per GAN family: its networks, losses and one training step.

``gan``: the original MLP GAN; ``dcgan``: the all-convolutional DCGAN;
``wgan``: Wasserstein GAN with weight clipping; ``wgan_gp``: with a gradient penalty.
"""
